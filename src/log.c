/* ISC license. */

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <skalibs/strerr.h>

#include "log.h"

#define LOG_LINE_MAX 4096

unsigned int verbosity = 1 ;

static void log_write (char const *const *v, unsigned int n)
{
  char buf[LOG_LINE_MAX] ;
  size_t len = 0 ;
  char const *prefix[2] = { PROG, ": " } ;
  for (unsigned int i = 0 ; i < 2 + n ; i++)
  {
    char const *s = i < 2 ? prefix[i] : v[i-2] ;
    size_t l ;
    if (!s) continue ;
    l = strlen(s) ;
    if (l > LOG_LINE_MAX - 1 - len) l = LOG_LINE_MAX - 1 - len ;
    memcpy(buf + len, s, l) ;
    len += l ;
  }
  buf[len++] = '\n' ;
  while (write(2, buf, len) == -1 && errno == EINTR) ;
}

void log_linev (char const *const *v, unsigned int n)
{
  int e = errno ;
  log_write(v, n) ;
  errno = e ;
}

void log_dielinev (int e, int withsys, char const *const *v, unsigned int n)
{
  if (verbosity)
  {
    if (withsys)
    {
      char const *err = strerror(errno) ;
      char const *w[n + 2] ;
      for (unsigned int i = 0 ; i < n ; i++) w[i] = v[i] ;
      w[n] = ": " ;
      w[n+1] = err ;
      log_write(w, n + 2) ;
    }
    else log_write(v, n) ;
  }
  _exit(e) ;
}

void log_cleartext (char const *pid)
{
  log_status("cleartext ", pid) ;
}

 /* The earliest error in OpenSSL's queue is the cause; later ones are context. */

char const *log_sanitizen (char *buf, char const *s, size_t len, unsigned int flags)
{
  size_t i = 0 ;
  for (; i < len && i < LOG_FIELD_MAX ; i++)
  {
    unsigned char c = s[i] ;
    buf[i] = (c == ' ' && flags & LOG_KEEPSPACE) || (c == ':' && flags & LOG_KEEPCOLON) || (c >= 33 && c <= 126 && c != '%' && c != ':') ? c : '?' ;
  }
  if (i < len) { memcpy(buf + i, "...", 3) ; i += 3 ; }
  buf[i] = 0 ;
  return buf ;
}

char const *log_sanitize (char *buf, char const *s, unsigned int flags)
{
  return log_sanitizen(buf, s ? s : "", s ? strnlen(s, LOG_FIELD_MAX + 1) : 0, flags) ;
}
