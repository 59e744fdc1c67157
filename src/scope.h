/* ISC license. */
#ifndef SCOPE_H
#define SCOPE_H

#include <openssl/ssl.h>

/*
 * Which sessions may resume where. Every server context carries a scope
 * id: the service (or the rule) it was built for, its SNI name, and a
 * digest of the trust it verified client certificates with. A connection's
 * scope is its context's id and the server name the client asked for; a
 * ticket carries the scope it was issued under and resumes only under the
 * same one, so a session never resumes under another name, another rule,
 * or after a reload that changed the trusted CAs, the CRLs or the client
 * certificate settings. A session whose client certificate has expired
 * never resumes either. OpenSSL's own session id context check does not
 * cover TLS 1.3 tickets in every path, so this does not rely on it.
 */

#define SCOPE_LEN 32

/* Gives ctx the scope id (SCOPE_LEN bytes), also as its session id
   context. Returns 0 on failure (OpenSSL's error queue says why). */
extern int scope_ctx (SSL_CTX *ctx, unsigned char const *id) ;

/* The connection's scope, once its context is chosen (from the client
   hello callback): the id of SSL_get_SSL_CTX(ssl) and name (the server
   name sent, or 0). Returns 0 on failure. */
extern int scope_connection (SSL *ssl, char const *name) ;

/* Issue tickets that carry the scope, and accept only tickets issued
   under the connection's scope. Returns 0 on failure. */
extern int scope_tickets (SSL_CTX *ctx) ;

#endif
