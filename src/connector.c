/* ISC license. */

#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <skalibs/djbunix.h>
#include <skalibs/iopause.h>
#include <skalibs/tai.h>

#include "connector.h"

#define MAXADDR 32

 /* 1 connected, 0 timed out, -1 failed (errno). */
static int try_connect (struct addrinfo const *a, struct addrinfo const *local, unsigned int timeout, int *fd)
{
  int one = 1, r ;
  tain deadline ;
  iopause_fd x ;
  int s = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) ;
  if (s == -1) return -1 ;
  if (local)
  {
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ;
    if (bind(s, local->ai_addr, local->ai_addrlen) == -1) { int e = errno ; close(s) ; errno = e ; return -1 ; }
  }
  if (connect(s, a->ai_addr, a->ai_addrlen) == 0) goto ok ;
  if (errno != EINPROGRESS) { int e = errno ; close(s) ; errno = e ; return -1 ; }
  tain_now_g() ;
  tain_addsec_g(&deadline, timeout) ;
  x.fd = s ; x.events = IOPAUSE_WRITE ;
  for (;;)
  {
    r = iopause_g(&x, 1, &deadline) ;
    if (r == -1 && errno == EINTR) continue ;
    break ;
  }
  if (r <= 0) { close(s) ; errno = ETIMEDOUT ; return r ? -1 : 0 ; }
  {
    int err = 0 ;
    socklen_t len = sizeof(err) ;
    if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) == -1) err = errno ;
    if (err) { close(s) ; errno = err ; return -1 ; }
  }
 ok:
  if (ndelay_off(s) == -1) { close(s) ; return -1 ; }
  *fd = s ;
  return 1 ;
}

int connector_open (char const *host, char const *port, char const *localip, char const *localport,
                    int prefer4, int prefer6, unsigned int timeout1, unsigned int timeout2, int *refused, char const **why)
{
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *p, *local = 0 ;
  struct addrinfo const *list[MAXADDR], *again[MAXADDR] ;
  unsigned int n = 0, nagain = 0, nrefused = 0, nfailed = 0 ;
  int fd = -1, r, e = 0 ;
  *refused = 0 ;
  if (!strcmp(host, "0")) host = "127.0.0.1" ;
  hints.ai_family = prefer4 ? AF_INET : prefer6 ? AF_INET6 : AF_UNSPEC ;
  r = getaddrinfo(host, port, &hints, &res) ;
  if (r) { *why = r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r) ; return -1 ; }
  if (localip || localport)
  {
    struct addrinfo lh = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICHOST, .ai_family = res->ai_family } ;
    r = getaddrinfo(localip, localport ? localport : "0", &lh, &local) ;
    if (r) { freeaddrinfo(res) ; *why = gai_strerror(r) ; return -1 ; }
  }
  for (p = res ; p && n < MAXADDR ; p = p->ai_next)
    if (!local || p->ai_family == local->ai_family) list[n++] = p ;
  for (unsigned int i = 0 ; i < n && fd < 0 ; i++)
  {
    r = try_connect(list[i], local, n == 1 ? timeout1 + timeout2 : timeout1, &fd) ;
    if (r == 0 && n > 1) again[nagain++] = list[i] ;
    else if (r < 0) { e = errno ; if (e == ECONNREFUSED) nrefused++ ; else nfailed++ ; }
    else if (r == 0) { e = ETIMEDOUT ; nfailed++ ; }
  }
  for (unsigned int i = 0 ; i < nagain && fd < 0 ; i++)
  {
    r = try_connect(again[i], local, timeout2, &fd) ;
    if (r <= 0) { e = r ? errno : ETIMEDOUT ; if (e == ECONNREFUSED) nrefused++ ; else nfailed++ ; }
  }
  freeaddrinfo(res) ;
  if (local) freeaddrinfo(local) ;
  if (fd >= 0) return fd ;
  *refused = nrefused && !nfailed ;
  *why = n ? strerror(e) : "no address of the requested family" ;
  return -1 ;
}
