/* ISC license. */
#ifndef TICKETS_H
#define TICKETS_H

#include <openssl/ssl.h>

/*
 * Session-ticket keys held by sslserver's main process. Every engine is
 * forked from it and inherits the keys, so a ticket issued by one
 * connection's engine is accepted by its siblings. tickets_rotate makes a
 * new current key and keeps the previous one for decryption only (tickets
 * it opens are renewed); call it on a schedule and on SIGHUP.
 */
#define TICKETS_ROTATE_SECS 3600

extern int tickets_rotate (void) ;
extern int tickets_attach (SSL_CTX *) ;

#endif
