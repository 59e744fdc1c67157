/* ISC license. */
#ifndef NOTIFY_H
#define NOTIFY_H

#include <sys/socket.h>
#include <sys/un.h>

/*
 * Readiness for systemd (Type=notify, Type=notify-reload): the sd_notify
 * datagram protocol, without libsystemd. NOTIFY_SOCKET names an AF_UNIX
 * datagram socket, an absolute path or "@name" in the abstract namespace;
 * each notification is one datagram of "NAME=value" lines.
 *
 * notify_init reads NOTIFY_SOCKET and removes it from the environment, so
 * that the program never inherits it; without it (or with a value it
 * cannot use, which is warned about) every notification does nothing.
 * A notification that cannot be sent is a warning, never fatal: the
 * server goes on serving. Nothing here dies.
 */
typedef struct notify_s notify ;
struct notify_s
{
  int fd ;                      /* -1: nobody to notify */
  struct sockaddr_un sa ;
  socklen_t salen ;
} ;
#define NOTIFY_ZERO { .fd = -1 }

extern void notify_init (notify *) ;
extern void notify_ready (notify const *) ;       /* READY=1 */
extern void notify_reloading (notify const *) ;   /* RELOADING=1 and MONOTONIC_USEC= */
extern void notify_stopping (notify const *) ;    /* STOPPING=1 */

#endif
