/* ISC license. */
#ifndef RELAY_H
#define RELAY_H

#include <stddef.h>
#include <openssl/ssl.h>

#define RELAY_BUFSIZE 65536

#define RELAY_DONE 0
#define RELAY_TIMEOUT 1
#define RELAY_ERROR 2

/*
 * Moves cleartext between a TLS session (network read fd netr, write fd netw,
 * the same socket under sslserver) and the application (toapp: the write end
 * of its stdin pipe; fromapp: the read end of its stdout pipe) until both
 * directions are finished:
 *  - the application's EOF becomes a close_notify once its bytes are sent;
 *  - the peer's close_notify (or EOF) becomes EOF on the application's stdin;
 *  - an application that has closed its stdin gets no more bytes.
 * first (firstlen bytes, or 0) goes to the peer before anything the
 * application writes (the -B banner when the engine started the program).
 * idlesecs (0 = none) bounds the time without any byte moving either way.
 * What the application writes in one pass (up to RELAY_BUFSIZE) goes to the
 * network as its TLS records in one write: while it runs, the session's
 * write BIO is a buffer of the relay's (given back to the session before
 * it returns), and its read-ahead is on.
 * Closes toapp and fromapp. On RELAY_ERROR, *why says what failed. The
 * buffers are static; before it returns, whatever part of them it used is
 * wiped, so a reused engine keeps no byte of the connection.
 */
extern int relay_run (SSL *ssl, int netr, int netw, int toapp, int fromapp, char const *first, size_t firstlen, unsigned int idlesecs, char const **why) ;

#endif
