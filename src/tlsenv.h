/* ISC license. */
#ifndef TLSENV_H
#define TLSENV_H

#include <openssl/ssl.h>
#include <skalibs/stralloc.h>

#define TLSENV_INTERFACE "sslsuite/0.1"

/*
 * The SSL_* variables of an established session (mod_ssl's names),
 * appended to sa as "NAME=value\0" entries: the format of a skalibs
 * environment modifier string and of the UCSPI-TLS block, minus its final NUL.
 * A value that would carry a NUL, or a newline outside a PEM block, is left
 * out rather than altered. Returns 0 on allocation failure.
 *
 * tlsenv_server: the view of the server: own certificate as SSL_SERVER_*,
 * the client's as SSL_CLIENT_*, SSL_CLIENT_VERIFY.
 * tlsenv_client: the view of a client: the server's certificate as
 * SSL_SERVER_*, our own as SSL_CLIENT_*.
 */
extern int tlsenv_server (stralloc *sa, SSL *ssl) ;
extern int tlsenv_client (stralloc *sa, SSL *ssl) ;

/* Overwrites all sa holds (certificates, session id) and frees it. */
extern void tlsenv_wipe (stralloc *sa) ;

#endif
