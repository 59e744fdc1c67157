/* ISC license. */
#ifndef POOL_H
#define POOL_H

#include <sys/socket.h>

/*
 * sslserver's reusable engines: the channel between the main process and
 * one engine process, a SOCK_SEQPACKET socketpair made before the engine is
 * forked, close-on-exec. Only the main process holds the other end.
 *
 * The main process hands an idle engine its next connection: the accepted
 * socket, the rules cdb the main process opened for it, the report socket
 * of a connection behind a balancer (each -1 when there is none), the
 * peer's address as accept gave it, and the client's connection count.
 * The engine says when a connection has ended well, with the program's
 * exit status; it says nothing else. A connection that fails ends its
 * engine instead (the main process then reaps it as any connection
 * process), so an engine is only reused after connections that ended well,
 * one at a time.
 */

/* What the main process passes with a connection besides descriptors. */
typedef struct pool_conn_s pool_conn ;
struct pool_conn_s
{
  struct sockaddr_storage peer ;
  unsigned int samehost ;    /* this client's connections, this one counted; 0 behind a balancer */
  int rulesmissing ;         /* the rules cdb does not exist */
} ;

 /* rulesfd when the engine is to open the cdb by name itself. */
#define POOL_RULES_BYNAME (-1)

/* Main side. Returns 1, 0 on failure (errno): the engine is gone. */
extern int pool_send (int chan, int fd, int rulesfd, int report, pool_conn const *) ;

/* Main side, chan readable (or the engine gone): 1 and *status when the
   engine reported an end, 0 when it has nothing to say or is gone. */
extern int pool_read_end (int chan, int *status) ;

/* Engine side: blocks for the next connection. 1 with *fd, *rulesfd,
   *report (each -1 when not sent) and *c; 0 when the main process has
   closed the channel (retire) or sent something that is not a connection
   (every descriptor that came with it closed). */
extern int pool_receive (int chan, int *fd, int *rulesfd, int *report, pool_conn *c) ;

/* Engine side: the connection ended well with status. Returns 1, 0 when
   the main process no longer listens. */
extern int pool_report_end (int chan, int status) ;

#endif
