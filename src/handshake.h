/* ISC license. */
#ifndef HANDSHAKE_H
#define HANDSHAKE_H

#include <openssl/ssl.h>

#define HANDSHAKE_OK 0
#define HANDSHAKE_FAILED 1   /* protocol error, timeout, peer gone: 111 */
#define HANDSHAKE_REFUSED 2  /* the peer's certificate was refused: 110 */

/*
 * Runs the TLS handshake of ssl (accept or connect state already set) on
 * non-blocking descriptors netr/netw, giving up after timeoutsecs (0 = no
 * limit). On failure, *why is a one-line reason.
 */
extern int handshake_run (SSL *ssl, int netr, int netw, unsigned int timeoutsecs, char const **why) ;

#endif
