/* ISC license. */

 /* log_tlserror (declared in log.h) lives apart from the rest of log.c so
    that a program that never touches TLS (sslrules) does not link OpenSSL. */

#include <string.h>

#include <openssl/err.h>

#include "log.h"

char const *log_tlserror (void)
{
  static char buf[256] ;
  unsigned long code = ERR_get_error() ;
  char const *reason ;
  if (!code) return "no error reported by the TLS library" ;
  reason = ERR_reason_error_string(code) ;
  if (reason) strncpy(buf, reason, sizeof(buf) - 1) ;
  else ERR_error_string_n(code, buf, sizeof(buf)) ;
  ERR_clear_error() ;
  return buf ;
}
