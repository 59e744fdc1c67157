/* ISC license. */

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "scope.h"

static int ctx_index = -1 ;
static int ssl_index = -1 ;

static void scope_free (void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
  (void)parent ; (void)ad ; (void)idx ; (void)argl ; (void)argp ;
  OPENSSL_free(ptr) ;
}

int scope_ctx (SSL_CTX *ctx, unsigned char const *id)
{
  unsigned char *copy ;
  if (ctx_index < 0) ctx_index = SSL_CTX_get_ex_new_index(0, 0, 0, 0, &scope_free) ;
  if (ctx_index < 0) return 0 ;
  copy = OPENSSL_memdup(id, SCOPE_LEN) ;
  if (!copy) return 0 ;
  OPENSSL_free(SSL_CTX_get_ex_data(ctx, ctx_index)) ;
  if (!SSL_CTX_set_ex_data(ctx, ctx_index, copy)) { OPENSSL_free(copy) ; return 0 ; }
  return SSL_CTX_set_session_id_context(ctx, id, SCOPE_LEN) ;
}

int scope_connection (SSL *ssl, char const *name)
{
  unsigned char const *id = ctx_index < 0 ? 0 : SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index) ;
  unsigned char *scope ;
  unsigned int len = SCOPE_LEN ;
  int ok ;
  if (!id) return 0 ;
  if (ssl_index < 0) ssl_index = SSL_get_ex_new_index(0, 0, 0, 0, &scope_free) ;
  if (ssl_index < 0) return 0 ;
  scope = OPENSSL_malloc(SCOPE_LEN) ;
  if (!scope) return 0 ;
  {
    EVP_MD_CTX *md = EVP_MD_CTX_new() ;
    ok = md && EVP_DigestInit_ex(md, EVP_sha256(), 0) && EVP_DigestUpdate(md, id, SCOPE_LEN)
      && EVP_DigestUpdate(md, name ? name : "", name ? strlen(name) + 1 : 0) && EVP_DigestFinal_ex(md, scope, &len) ;
    EVP_MD_CTX_free(md) ;
  }
  /* a second ClientHello (after a HelloRetryRequest) replaces the first's */
  if (ok) OPENSSL_free(SSL_get_ex_data(ssl, ssl_index)) ;
  if (!ok || !SSL_set_ex_data(ssl, ssl_index, scope)) { OPENSSL_free(scope) ; return 0 ; }
  return 1 ;
}

static unsigned char const *connection_scope (SSL *ssl)
{
  return ssl_index < 0 ? 0 : SSL_get_ex_data(ssl, ssl_index) ;
}

 /* A ticket without a scope is issued anyway and simply never resumes. */
static int ticket_issue (SSL *ssl, void *arg)
{
  unsigned char const *scope = connection_scope(ssl) ;
  (void)arg ;
  if (scope) SSL_SESSION_set1_ticket_appdata(SSL_get_session(ssl), scope, SCOPE_LEN) ;
  return 1 ;
}

static int resumable (SSL *ssl, SSL_SESSION *sess)
{
  unsigned char const *scope = connection_scope(ssl) ;
  void *data ;
  size_t len ;
  X509 *peer = SSL_SESSION_get0_peer(sess) ;
  if (!scope || !SSL_SESSION_get0_ticket_appdata(sess, &data, &len)) return 0 ;
  if (len != SCOPE_LEN || CRYPTO_memcmp(data, scope, SCOPE_LEN)) return 0 ;
  return !peer || X509_cmp_current_time(X509_get0_notAfter(peer)) > 0 ;
}

static SSL_TICKET_RETURN ticket_open (SSL *ssl, SSL_SESSION *sess, unsigned char const *keyname, size_t keynamelen,
                                      SSL_TICKET_STATUS status, void *arg)
{
  (void)keyname ; (void)keynamelen ; (void)arg ;
  switch (status)
  {
    case SSL_TICKET_SUCCESS :
      return resumable(ssl, sess) ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_IGNORE_RENEW ;
    case SSL_TICKET_SUCCESS_RENEW :
      return resumable(ssl, sess) ? SSL_TICKET_RETURN_USE_RENEW : SSL_TICKET_RETURN_IGNORE_RENEW ;
    case SSL_TICKET_NONE :
    case SSL_TICKET_EMPTY :
    case SSL_TICKET_NO_DECRYPT :
      return SSL_TICKET_RETURN_IGNORE_RENEW ;
    default :
      return SSL_TICKET_RETURN_ABORT ;
  }
}

int scope_tickets (SSL_CTX *ctx)
{
  return SSL_CTX_set_session_ticket_cb(ctx, &ticket_issue, &ticket_open, 0) ;
}
