/* ISC license. */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <skalibs/djbunix.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>
#include <skalibs/uint64.h>

#include "log.h"
#include "counters.h"

 /* A report: "K\0first\0second\0" with K one of T (handshake: version,
    cipher; R for a resumed one), F (failed: class), X (refused: reason). */
#define REPORT_MAX 200
#define LABEL_MAX 64
#define LABELS_MAX 64   /* distinct labels per family; more count as "other" */

static void report (int fd, char kind, char const *a, char const *b)
{
  char buf[REPORT_MAX] ;
  size_t alen = strlen(a), blen = strlen(b) ;
  if (fd < 0 || alen >= LABEL_MAX || blen >= LABEL_MAX) return ;
  buf[0] = kind ;
  buf[1] = 0 ;
  memcpy(buf + 2, a, alen + 1) ;
  memcpy(buf + 3 + alen, b, blen + 1) ;
  send(fd, buf, 4 + alen + blen, MSG_DONTWAIT | MSG_NOSIGNAL) ;
}

void counters_tls (int fd, char const *version, char const *cipher, int resumed)
{
  report(fd, resumed ? 'R' : 'T', version, cipher) ;
}

 /* OpenSSL's reasons, by what an operator does about them. */
static char const *failure_class (char const *why, int refused)
{
  static struct { char const *part ; char const *class ; } const table[] =
  {
    { "timed out", "timeout" },
    { "wrong version number", "not_tls" },
    { "http request", "not_tls" },
    { "https proxy request", "not_tls" },
    { "unsupported protocol", "protocol_version" },
    { "version too low", "protocol_version" },
    { "no shared cipher", "no_shared_cipher" },
    { "no suitable signature algorithm", "no_shared_cipher" },
    { "no suitable key share", "no_shared_cipher" },
    { "closed by peer", "closed" },
    { "reset by peer", "closed" },
    { "unexpected eof", "closed" },
    { "no error reported", "closed" },
  } ;
  if (refused) return "client_certificate" ;
  for (size_t i = 0 ; i < sizeof(table) / sizeof(table[0]) ; i++)
    if (strstr(why, table[i].part)) return table[i].class ;
  return "other" ;
}

void counters_failed (int fd, char const *why, int refused)
{
  report(fd, 'F', failure_class(why ? why : "", refused), "") ;
}

void counters_refused (int fd, char const *reason)
{
  report(fd, 'X', reason, "") ;
}

 /* ------------------------------------------------------------ main side */

typedef struct label_s label ;
struct label_s
{
  char a[LABEL_MAX] ;
  char b[LABEL_MAX] ;
  unsigned long long n ;
} ;

typedef struct family_s family ;
struct family_s
{
  unsigned int n ;
  label l[LABELS_MAX + 1] ;   /* the last one is "other" */
} ;

 /* The one set of counters of the process (sslserver's main process). */
static struct
{
  int fd ;
  unsigned long long connections, resumed ;
  unsigned int current, peak ;
  family tls, failed, refused ;
} c = { .fd = -1 } ;

static void count (family *f, char const *a, char const *b)
{
  unsigned int i ;
  for (i = 0 ; i < f->n ; i++)
    if (!strcmp(f->l[i].a, a) && !strcmp(f->l[i].b, b)) break ;
  if (i == f->n)
  {
    if (f->n < LABELS_MAX)
    {
      strcpy(f->l[i].a, a) ;
      strcpy(f->l[i].b, b) ;
      f->n++ ;
    }
    else
    {
      i = LABELS_MAX ;
      strcpy(f->l[i].a, "other") ;
      strcpy(f->l[i].b, *b ? "other" : "") ;
    }
  }
  f->l[i].n++ ;
}

 /* A label as the report gave it: printable, no quote or backslash, short. */
static int label_ok (char const *s, size_t len)
{
  if (len >= LABEL_MAX) return 0 ;
  for (size_t i = 0 ; i < len ; i++)
    if (s[i] < 33 || s[i] > 126 || s[i] == '"' || s[i] == '\\' || s[i] == '=') return 0 ;
  return 1 ;
}

static void take (char const *buf, size_t len)
{
  char const *a, *b ;
  size_t alen, blen ;
  if (len < 4 || buf[1] || buf[len - 1]) return ;
  a = buf + 2 ;
  alen = strlen(a) ;
  if (3 + alen >= len) return ;
  b = a + alen + 1 ;
  blen = strlen(b) ;
  if (3 + alen + blen + 1 != len || !label_ok(a, alen) || !label_ok(b, blen) || !alen) return ;
  switch (buf[0])
  {
    case 'R' : c.resumed++ ; /* fallthrough */
    case 'T' : if (blen) count(&c.tls, a, b) ; break ;
    case 'F' : if (!blen) count(&c.failed, a, "") ; break ;
    case 'X' : if (!blen) count(&c.refused, a, "") ; break ;
  }
}

int counters_open (int *reportfd)
{
  int p[2] ;
  if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, p) == -1) return 0 ;
  c.fd = p[0] ;
  *reportfd = p[1] ;
  return 1 ;
}

int counters_fd (void)
{
  return c.fd ;
}

void counters_read (void)
{
  /* bounded, so that a flood of reports cannot hold the main loop */
  for (unsigned int i = 0 ; i < 256 ; i++)
  {
    char buf[REPORT_MAX] ;
    ssize_t r = recv(c.fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC) ;
    if (r < 0) { if (errno == EINTR) continue ; return ; }
    if ((size_t)r <= sizeof(buf)) take(buf, r) ;
  }
}

void counters_accepted (void)
{
  c.connections++ ;
}

void counters_refused_here (char const *reason)
{
  count(&c.refused, reason, "") ;
}

void counters_current (unsigned int n)
{
  c.current = n ;
  if (n > c.peak) c.peak = n ;
}

static unsigned long long handshakes (void)
{
  unsigned long long n = 0 ;
  for (unsigned int i = 0 ; i <= LABELS_MAX ; i++) n += c.tls.l[i].n ;
  return n ;
}

static int catnum (stralloc *sa, unsigned long long n)
{
  char fmt[UINT64_FMT] ;
  return stralloc_catb(sa, fmt, uint64_fmt(fmt, (uint64_t)n)) ;
}

 /* " a=n" (or " a:b=n") for each label of f. */
static int catfamily (stralloc *sa, family const *f)
{
  for (unsigned int i = 0 ; i <= LABELS_MAX ; i++)
  {
    label const *l = &f->l[i] ;
    if (!l->n) continue ;
    if (!stralloc_catb(sa, " ", 1) || !stralloc_cats(sa, l->a)
     || (*l->b && (!stralloc_catb(sa, ":", 1) || !stralloc_cats(sa, l->b)))
     || !stralloc_catb(sa, "=", 1) || !catnum(sa, l->n)) return 0 ;
  }
  return 1 ;
}

void counters_log (void)
{
  stralloc sa = STRALLOC_ZERO ;
  if (stralloc_cats(&sa, "connections ") && catnum(&sa, c.connections)
   && stralloc_cats(&sa, " current ") && catnum(&sa, c.current)
   && stralloc_cats(&sa, " peak ") && catnum(&sa, c.peak)
   && stralloc_cats(&sa, " handshakes ") && catnum(&sa, handshakes())
   && stralloc_cats(&sa, " resumed ") && catnum(&sa, c.resumed)
   && stralloc_cats(&sa, " tls") && catfamily(&sa, &c.tls)
   && stralloc_cats(&sa, " failed") && catfamily(&sa, &c.failed)
   && stralloc_cats(&sa, " refused") && catfamily(&sa, &c.refused)
   && stralloc_0(&sa))
    log_line("counters: ", sa.s) ;
  else log_warn("unable to format the counters: out of memory") ;
  stralloc_free(&sa) ;
}

static void metric (FILE *f, char const *name, char const *type, char const *help)
{
  fprintf(f, "# HELP sslserver_%s %s\n# TYPE sslserver_%s %s\n", name, help, name, type) ;
}

static void labelled (FILE *f, char const *name, family const *fam, char const *la, char const *lb)
{
  for (unsigned int i = 0 ; i <= LABELS_MAX ; i++)
  {
    label const *l = &fam->l[i] ;
    if (!l->n) continue ;
    if (lb) fprintf(f, "sslserver_%s{%s=\"%s\",%s=\"%s\"} %llu\n", name, la, l->a, lb, l->b, l->n) ;
    else fprintf(f, "sslserver_%s{%s=\"%s\"} %llu\n", name, la, l->a, l->n) ;
  }
}

int counters_write (char const *path)
{
  char pid[PID_FMT] ;
  stralloc tmp = STRALLOC_ZERO ;
  FILE *f ;
  int ok ;
  pid[pid_fmt(pid, getpid())] = 0 ;
  if (!stralloc_cats(&tmp, path) || !stralloc_cats(&tmp, ".tmp.") || !stralloc_cats(&tmp, pid) || !stralloc_0(&tmp)) return 0 ;
  f = fopen(tmp.s, "we") ;
  if (!f) { stralloc_free(&tmp) ; return 0 ; }
  metric(f, "connections_total", "counter", "Connections accepted.") ;
  fprintf(f, "sslserver_connections_total %llu\n", c.connections) ;
  metric(f, "connections_current", "gauge", "Connections being served.") ;
  fprintf(f, "sslserver_connections_current %u\n", c.current) ;
  metric(f, "connections_peak", "gauge", "Most connections served at once since the start.") ;
  fprintf(f, "sslserver_connections_peak %u\n", c.peak) ;
  metric(f, "handshakes_total", "counter", "Successful TLS handshakes, by protocol version and cipher.") ;
  labelled(f, "handshakes_total", &c.tls, "version", "cipher") ;
  metric(f, "resumed_total", "counter", "Successful TLS handshakes that resumed a session.") ;
  fprintf(f, "sslserver_resumed_total %llu\n", c.resumed) ;
  metric(f, "handshake_failures_total", "counter", "Failed TLS handshakes, by reason.") ;
  labelled(f, "handshake_failures_total", &c.failed, "reason", 0) ;
  metric(f, "refused_total", "counter", "Connections refused before TLS, by reason.") ;
  labelled(f, "refused_total", &c.refused, "reason", 0) ;
  ok = !ferror(f) ;
  ok = !fflush(f) && ok ;
  ok = !fclose(f) && ok ;
  ok = ok && rename(tmp.s, path) == 0 ;
  if (!ok) { int e = errno ; unlink(tmp.s) ; errno = e ; }
  stralloc_free(&tmp) ;
  return ok ;
}
