/* ISC license. */
#ifndef FRONT_H
#define FRONT_H

#include <openssl/ssl.h>

/*
 * The STARTTLS front (DESIGN.md section 11): the engine speaks a
 * protocol's STARTTLS step itself, in front of a daemon that knows nothing
 * of TLS and runs on pipes from the start.
 *
 * One line filter between the client and the daemon, used over both of
 * the client's transports: front_run with ssl 0 reads and writes the
 * socket in clear, with an SSL it goes through the session. What the
 * filter knows (the replies the daemon still owes, in order; a mail
 * transaction; a reply half read) stays in this module across the switch,
 * so the engine calls front_run twice: in clear until the client's
 * STARTTLS has been answered, then does the handshake itself, then calls
 * it again over TLS until the end. After TLS the filter goes on: a second
 * STARTTLS is refused by the engine and the capability is no longer added.
 *
 * Client commands are lines of at most FRONT_LINEMAX bytes: a longer one
 * gets the protocol's error reply, is dropped and logged. Message data,
 * literals (IMAP), BDAT chunks (SMTP) and the daemon's lines pass through
 * in pieces, never buffered whole. Everything the client sent after its
 * STARTTLS line is discarded, never read as TLS or given to the daemon.
 * One front per process: the state is static.
 */

#define FRONT_NONE 0
#define FRONT_SMTP 1
#define FRONT_POP3 2
#define FRONT_IMAP 3

#define FRONT_LINEMAX 8192

/* FRONT_SMTP, FRONT_POP3 or FRONT_IMAP for "smtp", "pop3", "imap";
   FRONT_NONE for anything else. */
extern int front_protocol (char const *name) ;

/* Before the first front_run: the protocol, whether TLSREQUIRED is set,
   the write end of the daemon's input and the read end of its output, and
   the connection's pid for log lines. */
extern void front_init (int protocol, int tlsrequired, int toapp, int fromapp, char const *pid) ;

#define FRONT_DONE 0      /* the daemon's output ended and reached the client */
#define FRONT_TIMEOUT 1   /* idlesecs (0 = none) without a byte moving */
#define FRONT_ERROR 2     /* *why says what failed */
#define FRONT_STARTTLS 3  /* (in clear only) the client's STARTTLS is answered: start TLS */

/* Closes toapp and fromapp on every return but FRONT_STARTTLS. With ssl,
   the daemon's end of output becomes our close_notify. */
extern int front_run (SSL *ssl, int netr, int netw, unsigned int idlesecs, char const **why) ;

/* Overwrites what front_run buffered of a session: an engine that serves
   another connection next keeps nothing of this one. */
extern void front_wipe (void) ;

#endif
