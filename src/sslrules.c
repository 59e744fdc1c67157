/* ISC license. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <skalibs/cdbmake.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "log.h"
#include "rules.h"
#include "rulestext.h"

#define USAGE "sslrules rules.cdb rules.tmp < rules.txt, or sslrules -c rules.cdb ip [ host [ info ] ]"
#define dieusage() do { log_line("usage: ", USAGE) ; _exit(100) ; } while (0)

static char const *tmpname ;
static int tmpfd = -1 ;

 /* Every failure after the tmp file exists goes through here: the tmp file
    goes away and the old cdb stays as it was. */
static void cleanup_die (int e, char const *a, char const *b, char const *c, char const *d) __attribute__((noreturn)) ;
static void cleanup_die (int e, char const *a, char const *b, char const *c, char const *d)
{
  if (tmpfd >= 0) { close(tmpfd) ; unlink(tmpname) ; }
  if (e == 100) log_line("fatal: (100) ", a, b, c, d) ;
  else log_line("fatal: (111) ", a, b, c, d) ;
  _exit(e) ;
}

static void nomem (void)
{
  cleanup_die(111, "out of memory", "", "", "") ;
}

static unsigned int lineno ;

static void warn_key (char const *key, size_t klen, char const *what, char const *why)
{
  char raw[LOG_FIELD_MAX + 2], field[LOG_FIELD_FMT], n[UINT_FMT] ;
  size_t len = klen < LOG_FIELD_MAX + 1 ? klen : LOG_FIELD_MAX + 1 ;
  for (size_t i = 0 ; i < len ; i++) raw[i] = key[i] ? key[i] : '?' ;
  raw[len] = 0 ;
  n[uint_fmt(n, lineno)] = 0 ;
  log_line("warning: line ", n, ": ", klen ? log_sanitize(field, raw, 1) : "(empty key)", what, why) ;
}

 /* The cdb stays what tcprules would write: a key the lookup can never
    produce is only pointed out. */
static int add (char const *key, size_t klen, char const *data, size_t dlen, void *arg)
{
  char const *why = rulestext_never(key, klen) ;
  if (why) warn_key(key, klen, " can never match: ", why) ;
  return cdbmake_add((cdbmaker *)arg, key, klen, data, dlen) ;
}

static void compile_line (cdbmaker *c, char *s, size_t len)
{
  static stralloc data = STRALLOC_ZERO ;
  char n[UINT_FMT] ;
  switch (rulestext_line(s, len, &data, &add, c))
  {
    case RULESTEXT_OK : return ;
    case RULESTEXT_SYNTAX :
      n[uint_fmt(n, lineno)] = 0 ;
      while (len && (s[len-1] == ' ' || s[len-1] == '\t')) len-- ;
      s[len] = 0 ;
      for (size_t i = 0 ; i < len ; i++) if ((unsigned char)s[i] < 32 || s[i] == 127) s[i] = '?' ;
      cleanup_die(100, "unable to parse line ", n, ": ", s) ;
    default :
      cleanup_die(111, "unable to write to ", tmpname, ": ", strerror(errno)) ;
  }
}

static int check (char const *file, char const *ip, char const *host, char const *info)
{
  rules_result r = RULES_RESULT_ZERO ;
  int e = rules_lookup(file, ip, host, info, &r) ;
  if (e == RULES_NOFILE) { errno = ENOENT ; e = RULES_ERROR ; }
  if (e == RULES_ERROR) die_sys(111, "unable to read ", file) ;
  if (e == RULES_TOOBIG) die_x(111, "unable to read ", file, ": rule ", r.key.len ? r.key.s : "(empty key)", " carries over " RULES_LIMITS) ;
  if (e == RULES_NOMATCH) { printf("default:\nallow connection\n") ; return 0 ; }
  printf("rule %.*s:\n", (int)r.key.len, r.key.s) ;
  /* tcprulescheck stops at the deny */
  if (!r.deny)
    for (size_t i = 0 ; i < r.env.len ; i += strlen(r.env.s + i) + 1)
      printf("set environment variable %s\n", r.env.s + i) ;
  printf("%s connection\n", r.deny ? "deny" : "allow") ;
  return fflush(stdout) ? 111 : 0 ;
}

int main (int argc, char const *const *argv)
{
  cdbmaker c = CDBMAKER_ZERO ;
  stralloc line = STRALLOC_ZERO ;
  char buf[8192] ;
  size_t start = 0 ;
  int eof = 0 ;

  PROG = "sslrules" ;
  if (argc >= 2 && !strcmp(argv[1], "-c"))
  {
    if (argc < 4 || argc > 6) dieusage() ;
    return check(argv[2], argv[3], argc > 4 && *argv[4] ? argv[4] : 0, argc > 5 ? argv[5] : 0) ;
  }
  if (argc != 3) dieusage() ;
  tmpname = argv[2] ;
  tmpfd = open(tmpname, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) ;
  if (tmpfd == -1) die_sys(111, "unable to create ", tmpname) ;
  if (!cdbmake_start(&c, tmpfd)) cleanup_die(111, "unable to write to ", tmpname, ": ", strerror(errno)) ;

  while (!eof)
  {
    ssize_t r = read(0, buf, sizeof(buf)) ;
    if (r == -1)
    {
      if (errno == EINTR) continue ;
      cleanup_die(111, "unable to read input: ", strerror(errno), "", "") ;
    }
    if (!r) eof = 1 ;
    else if (!stralloc_catb(&line, buf, r)) nomem() ;
    for (;;)
    {
      char *nl = line.len > start ? memchr(line.s + start, '\n', line.len - start) : 0 ;
      size_t len ;
      if (!nl && !(eof && line.len > start)) break ;
      len = nl ? (size_t)(nl - line.s) - start : line.len - start ;
      if (!stralloc_readyplus(&line, 1)) nomem() ;
      lineno++ ;
      {
        char save = line.s[start + len] ;
        compile_line(&c, line.s + start, len) ;
        line.s[start + len] = save ;
      }
      start += len + (nl ? 1 : 0) ;
      if (!nl) break ;
    }
    if (start == line.len) line.len = start = 0 ;
  }

  if (!cdbmake_finish(&c)) cleanup_die(111, "unable to write to ", tmpname, ": ", strerror(errno)) ;
  if (fsync(tmpfd) == -1) cleanup_die(111, "unable to sync ", tmpname, ": ", strerror(errno)) ;
  if (close(tmpfd) == -1) { tmpfd = -1 ; unlink(tmpname) ; die_sys(111, "unable to close ", tmpname) ; }
  tmpfd = -1 ;
  if (rename(tmpname, argv[1]) == -1)
  {
    int e = errno ;
    unlink(tmpname) ;
    errno = e ;
    die_sys(111, "unable to move ", tmpname, " to ", argv[1]) ;
  }
  return 0 ;
}
