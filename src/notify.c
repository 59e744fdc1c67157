/* ISC license. */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <skalibs/types.h>

#include "log.h"
#include "notify.h"

static int notify_address (notify *n, char const *s)
{
  size_t len = strlen(s) ;
  memset(&n->sa, 0, sizeof(n->sa)) ;
  n->sa.sun_family = AF_UNIX ;
  if ((s[0] != '/' && s[0] != '@') || len < 2)
  {
    log_warn("unable to notify the service manager: NOTIFY_SOCKET is not an absolute path or @name: ", s) ;
    return 0 ;
  }
  /* a path needs room for its NUL; "@name" is in the abstract namespace,
     where the name starts with a NUL and its length is the address's */
  if (len + (s[0] == '/') > sizeof(n->sa.sun_path))
  {
    log_warn("unable to notify the service manager: NOTIFY_SOCKET too long: ", s) ;
    return 0 ;
  }
  memcpy(n->sa.sun_path, s, len) ;
  if (s[0] == '@') n->sa.sun_path[0] = 0 ;
  n->salen = offsetof(struct sockaddr_un, sun_path) + len + (s[0] == '/') ;
  return 1 ;
}

void notify_init (notify *n)
{
  char const *s = getenv("NOTIFY_SOCKET") ;
  n->fd = -1 ;
  if (s && notify_address(n, s))
  {
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) ;
    if (n->fd == -1) log_warn("unable to create a socket to notify the service manager: ", strerror(errno)) ;
  }
  unsetenv("NOTIFY_SOCKET") ;
}

static void notify_send (notify const *n, char const *msg, size_t len)
{
  if (n->fd == -1) return ;
  if (sendto(n->fd, msg, len, MSG_NOSIGNAL, (struct sockaddr const *)&n->sa, n->salen) == -1)
    log_warn("unable to notify the service manager: ", strerror(errno)) ;
}

void notify_ready (notify const *n)
{
  notify_send(n, "READY=1\n", 8) ;
}

 /* systemd (Type=notify-reload) matches the reload to its SIGHUP by the
    monotonic time. */
void notify_reloading (notify const *n)
{
  char msg[12 + 15 + UINT64_FMT + 1] ;
  struct timespec ts ;
  size_t len = 0 ;
  uint64_t usec ;
  if (n->fd == -1) return ;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1) { notify_send(n, "RELOADING=1\n", 12) ; return ; }
  usec = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000 ;
  memcpy(msg, "RELOADING=1\n", 12) ; len += 12 ;
  memcpy(msg + len, "MONOTONIC_USEC=", 15) ; len += 15 ;
  len += uint64_fmt(msg + len, usec) ;
  msg[len++] = '\n' ;
  notify_send(n, msg, len) ;
}

void notify_stopping (notify const *n)
{
  notify_send(n, "STOPPING=1\n", 11) ;
}
