/* ISC license. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <skalibs/cdbmake.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "log.h"
#include "rules.h"

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
static char const *linetext ;

static void syntax (char const *why) __attribute__((noreturn)) ;
static void syntax (char const *why)
{
  char n[UINT_FMT] ;
  n[uint_fmt(n, lineno)] = 0 ;
  cleanup_die(100, "unable to parse line ", n, ": ", linetext) ;
  (void)why ;
}

static void add (cdbmaker *c, char const *key, size_t klen, stralloc const *data)
{
  if (!cdbmake_add(c, key, klen, data->s, data->len))
    cleanup_die(111, "unable to write to ", tmpname, ": ", strerror(errno)) ;
}

 /* tcprules' range rule: the first '-' splits the number between the '.'
    before it and the '.' after it; keys in decimal, high end clipped at 255. */
static void add_range (cdbmaker *c, char const *a, size_t len, stralloc const *data)
{
  char const *dash = memchr(a, '-', len) ;
  size_t i = dash - a, left = i, right = i + 1 ;
  unsigned long lo = 0, hi = 0 ;
  while (left && a[left-1] != '.') left-- ;
  while (right < len && a[right] != '.') right++ ;
  for (size_t k = left ; k < i ; k++)
  {
    if (a[k] < '0' || a[k] > '9') syntax("range") ;
    if (lo < 1000) lo = lo * 10 + (a[k] - '0') ;
  }
  for (size_t k = i + 1 ; k < right ; k++)
  {
    if (a[k] < '0' || a[k] > '9') syntax("range") ;
    if (hi < 1000) hi = hi * 10 + (a[k] - '0') ;
  }
  if (hi > 255) hi = 255 ;
  for (unsigned long n = lo ; n <= hi ; n++)
  {
    char key[len + UINT_FMT] ;
    size_t k = left ;
    memcpy(key, a, left) ;
    k += uint_fmt(key + k, n) ;
    memcpy(key + k, a + right, len - right) ;
    add(c, key, k + len - right, data) ;
  }
}

 /* An address with a '/': a CIDR block, stored as ucspi-tcp6's bit key. */
static int add_cidr (cdbmaker *c, char const *a, size_t len, stralloc const *data)
{
  char const *slash = memchr(a, '/', len) ;
  char ip[64], key[130] ;
  unsigned char addr[16] ;
  unsigned int bits = 0 ;
  size_t iplen = slash - a, klen ;
  int is6 ;
  if (iplen >= sizeof(ip) || slash + 1 == a + len || len - iplen - 1 > 3) return 0 ;
  memcpy(ip, a, iplen) ;
  ip[iplen] = 0 ;
  for (char const *p = slash + 1 ; p < a + len ; p++)
  {
    if (*p < '0' || *p > '9') return 0 ;
    bits = bits * 10 + (*p - '0') ;
  }
  is6 = !!memchr(ip, ':', iplen) ;
  if (inet_pton(is6 ? AF_INET6 : AF_INET, ip, addr) != 1) return 0 ;
  klen = rules_cidrkey(key, addr, is6, bits) ;
  if (!klen) return 0 ;
  add(c, key, klen, data) ;
  return 1 ;
}

 /* A full IPv6 address, alone or after "info@", in the spelling sslserver
    looks up; a prefix ending in ':' stays as written, lower-cased. */
static void add_ip6 (cdbmaker *c, char const *a, size_t len, stralloc const *data)
{
  char const *at = memchr(a, '@', len) ;
  size_t pre = at ? (size_t)(at - a) + 1 : 0 ;
  char ip[64] ;
  unsigned char addr[16] ;
  if (len - pre < sizeof(ip))
  {
    memcpy(ip, a + pre, len - pre) ;
    ip[len - pre] = 0 ;
    if (inet_pton(AF_INET6, ip, addr) == 1)
    {
      char key[pre + 48] ;
      memcpy(key, a, pre) ;
      rules_ip6_fefe(key + pre, addr) ;
      add(c, key, pre + strlen(key + pre), data) ;
      return ;
    }
  }
  {
    char key[len] ;
    for (size_t i = 0 ; i < len ; i++) key[i] = i >= pre && a[i] >= 'A' && a[i] <= 'F' ? a[i] + 32 : a[i] ;
    add(c, key, len, data) ;
  }
}

 /* The address ends at the first ':' in tcprules 0.88; if what follows is
    not allow or deny, at the first ':' that is (IPv6 addresses, as Debian's
    ucspi-tcp-ipv6 reads them). */
static size_t find_colon (char const *s, size_t len)
{
  char const *p = memchr(s, ':', len) ;
  size_t first ;
  if (!p) return len ;
  first = p - s ;
  for (size_t i = first ; i < len ; i++)
  {
    if (s[i] != ':') continue ;
    if ((len - i - 1 >= 5 && !memcmp(s + i + 1, "allow", 5)) || (len - i - 1 >= 4 && !memcmp(s + i + 1, "deny", 4))) return i ;
  }
  return first ;
}

static void compile_line (cdbmaker *c, char *s, size_t len)
{
  static stralloc data = STRALLOC_ZERO ;
  size_t colon, i ;
  char const *x ;
  size_t left ;
  while (len && (s[len-1] == ' ' || s[len-1] == '\t' || s[len-1] == '\n')) len-- ;
  if (!len || s[0] == '#') return ;
  s[len] = 0 ;
  linetext = s ;
  colon = find_colon(s, len) ;
  if (colon == len) return ;   /* no colon: ignored, as tcprules 0.88 does */
  data.len = 0 ;
  x = s + colon + 1 ;
  left = len - colon - 1 ;
  if (left >= 5 && !memcmp(x, "allow", 5)) { x += 5 ; left -= 5 ; }
  else if (left >= 4 && !memcmp(x, "deny", 4))
  {
    x += 4 ; left -= 4 ;
    if (!stralloc_catb(&data, "D", 2)) nomem() ;
  }
  else syntax("allow or deny") ;
  while (left)
  {
    char delim ;
    char const *end ;
    if (*x != ',') syntax("comma") ;
    x++ ; left-- ;
    end = memchr(x, '=', left) ;
    if (!end) syntax("=") ;
    i = end - x ;
    if (!stralloc_catb(&data, "+", 1) || !stralloc_catb(&data, x, i + 1)) nomem() ;
    x += i + 1 ; left -= i + 1 ;
    if (!left) syntax("value") ;
    delim = *x++ ; left-- ;
    end = memchr(x, delim, left) ;
    if (!end) syntax("delimiter") ;
    i = end - x ;
    if (!stralloc_catb(&data, x, i) || !stralloc_0(&data)) nomem() ;
    x += i + 1 ; left -= i + 1 ;
  }
  if (!memchr(s, '=', colon) && !memchr(s, '@', colon) && memchr(s, '/', colon))
  {
    if (add_cidr(c, s, colon, &data)) return ;
    syntax("cidr") ;
  }
  if (!memchr(s, '=', colon) && memchr(s, ':', colon)) { add_ip6(c, s, colon, &data) ; return ; }
  if (!memchr(s, '=', colon) && !memchr(s, '@', colon) && memchr(s, '-', colon)) { add_range(c, s, colon, &data) ; return ; }
  add(c, s, colon, &data) ;
}

static int check (char const *file, char const *ip, char const *host, char const *info)
{
  rules_result r = RULES_RESULT_ZERO ;
  int e = rules_lookup(file, ip, host, info, &r) ;
  if (e == RULES_NOFILE) { errno = ENOENT ; e = RULES_ERROR ; }
  if (e == RULES_ERROR) die_sys(111, "unable to read ", file) ;
  if (e == RULES_NOMATCH) { printf("default:\nallow connection\n") ; return 0 ; }
  printf("rule %.*s:\n", (int)r.key.len, r.key.s) ;
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
      char *nl = memchr(line.s + start, '\n', line.len - start) ;
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
