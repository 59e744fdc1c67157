/* ISC license. */

#include <errno.h>
#include <string.h>

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <skalibs/iopause.h>
#include <skalibs/tai.h>

#include "log.h"
#include "handshake.h"

 /* A certificate problem is reported by the verify result when the chain was
    rejected, or by the handshake error when no certificate came at all. */
static int refused (SSL *ssl, char const **why)
{
  long v = SSL_get_verify_result(ssl) ;
  unsigned long e = ERR_peek_error() ;
  if (v != X509_V_OK)
  {
    *why = X509_verify_cert_error_string(v) ;
    ERR_clear_error() ;
    return 1 ;
  }
  if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
  {
    *why = "peer did not return a certificate" ;
    ERR_clear_error() ;
    return 1 ;
  }
  return 0 ;
}

int handshake_run (SSL *ssl, int netr, int netw, unsigned int timeoutsecs, char const **why)
{
  tain deadline ;
  tain_now_g() ;
  if (timeoutsecs) tain_addsec_g(&deadline, timeoutsecs) ; else deadline = tain_infinite ;
  for (;;)
  {
    iopause_fd x ;
    int r ;
    ERR_clear_error() ;
    r = SSL_do_handshake(ssl) ;
    if (r == 1) return HANDSHAKE_OK ;
    switch (SSL_get_error(ssl, r))
    {
      case SSL_ERROR_WANT_READ : x.fd = netr ; x.events = IOPAUSE_READ ; break ;
      case SSL_ERROR_WANT_WRITE : x.fd = netw ; x.events = IOPAUSE_WRITE ; break ;
      case SSL_ERROR_SYSCALL :
        if (refused(ssl, why)) return HANDSHAKE_REFUSED ;
        *why = errno ? strerror(errno) : "connection closed by peer" ;
        return HANDSHAKE_FAILED ;
      default :
        if (refused(ssl, why)) return HANDSHAKE_REFUSED ;
        *why = ERR_peek_error() ? log_tlserror() : "connection closed by peer" ;
        return HANDSHAKE_FAILED ;
    }
    r = iopause_g(&x, 1, &deadline) ;
    if (r == -1 && errno != EINTR) { *why = strerror(errno) ; return HANDSHAKE_FAILED ; }
    if (!r) { *why = "timed out" ; return HANDSHAKE_FAILED ; }
  }
}
