/* ISC license. */

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <fcntl.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "log.h"
#include "connenv.h"
#include "listener.h"
#include "number.h"

static unsigned int port_scan (char const *s)
{
  unsigned int n ;
  struct servent *se ;
  if (number_scan(s, 0, 65535, &n)) return n ;
  if (!*s || strspn(s, "0123456789") == strlen(s)) die_x(111, "unable to figure out port number for: ", s) ;
  se = getservbyname(s, "tcp") ;
  if (!se) die_x(111, "unable to figure out port number for: ", s) ;
  return ntohs(se->s_port) ;
}

static void resolve (char const *host, int prefer4, int prefer6, struct sockaddr_storage *ss, socklen_t *len, int *v6only)
{
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *p, *pick = 0 ;
  int r ;
  memset(ss, 0, sizeof(*ss)) ;
  *v6only = 1 ;
  if (!strcmp(host, "0"))
  {
    ss->ss_family = AF_INET ;
    *len = sizeof(struct sockaddr_in) ;
    return ;
  }
  if (!strcmp(host, ":0"))
  {
    ss->ss_family = AF_INET6 ;
    *len = sizeof(struct sockaddr_in6) ;
    *v6only = 0 ;
    return ;
  }
  hints.ai_flags = AI_NUMERICHOST ;
  r = getaddrinfo(host, 0, &hints, &res) ;
  if (r == EAI_NONAME)
  {
    hints.ai_flags = 0 ;
    r = getaddrinfo(host, 0, &hints, &res) ;
  }
  if (r == EAI_NONAME || r == EAI_NODATA) die_x(111, "no IP address for: ", host) ;
  if (r) die_x(111, "temporarily unable to figure out IP address for: ", host, ": ", gai_strerror(r)) ;
  for (p = res ; p ; p = p->ai_next)
  {
    if ((prefer4 && p->ai_family == AF_INET) || (prefer6 && p->ai_family == AF_INET6)) { pick = p ; break ; }
    if (!pick) pick = p ;
  }
  memcpy(ss, pick->ai_addr, pick->ai_addrlen) ;
  *len = pick->ai_addrlen ;
  freeaddrinfo(res) ;
}

int listener_open (char const *host, char const *port, int prefer4, int prefer6, unsigned int backlog, int reuseport, char *ip, char *portfmt)
{
  struct sockaddr_storage ss ;
  socklen_t len ;
  int v6only, one = 1 ;
  unsigned int p = port_scan(port) ;
  int fd ;
  resolve(host, prefer4, prefer6, &ss, &len, &v6only) ;
  if (ss.ss_family == AF_INET6) ((struct sockaddr_in6 *)&ss)->sin6_port = htons(p) ;
  else ((struct sockaddr_in *)&ss)->sin_port = htons(p) ;
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) ;
  if (fd == -1) dieu_sys(111, "create socket") ;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1) dieu_sys(111, "set socket options") ;
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1) dieu_sys(111, "set SO_REUSEPORT") ;
  if (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) == -1)
    dieu_sys(111, "set socket options") ;
  connenv_fmtaddr(&ss, ip, portfmt) ;
  if (bind(fd, (struct sockaddr *)&ss, len) == -1) dieu_sys(111, "bind to: ", ip, " port: ", portfmt) ;
  if (listen(fd, backlog) == -1) dieu_sys(111, "listen") ;
  len = sizeof(ss) ;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1) dieu_sys(111, "get local address") ;
  connenv_fmtaddr(&ss, ip, portfmt) ;
  return fd ;
}

int listener_activated (void)
{
  char const *pid = getenv("LISTEN_PID") ;
  char const *fds = getenv("LISTEN_FDS") ;
  unsigned int n ;
  int ours = pid && number_scan(pid, 1, UINT_MAX, &n) && (pid_t)n == getpid() ;
  if (ours && (!fds || !number_scan(fds, 1, 1, &n)))
    die_x(111, "unable to serve the sockets of socket activation: LISTEN_FDS=", fds ? fds : "(not set)", " but exactly one socket is served") ;
  unsetenv("LISTEN_FDS") ;
  unsetenv("LISTEN_PID") ;
  unsetenv("LISTEN_FDNAMES") ;
  return ours ;
}

int listener_inherit (char *ip, char *portfmt)
{
  struct sockaddr_storage ss ;
  socklen_t len = sizeof(int) ;
  int type, listening, flags ;
  if (getsockopt(3, SOL_SOCKET, SO_TYPE, &type, &len) == -1)
    dieu_sys(111, "use descriptor 3 from socket activation") ;
  len = sizeof(int) ;
  if (type != SOCK_STREAM || getsockopt(3, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == -1 || !listening)
    dieu_x(111, "use descriptor 3 from socket activation: not a listening stream socket") ;
  len = sizeof(ss) ;
  if (getsockname(3, (struct sockaddr *)&ss, &len) == -1) dieu_sys(111, "get the local address of descriptor 3") ;
  if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
    dieu_x(111, "use descriptor 3 from socket activation: not a TCP socket") ;
  flags = fcntl(3, F_GETFL) ;
  if (flags == -1 || fcntl(3, F_SETFL, flags | O_NONBLOCK) == -1 || fcntl(3, F_SETFD, FD_CLOEXEC) == -1)
    dieu_sys(111, "set descriptor 3 non-blocking and close-on-exec") ;
  connenv_fmtaddr(&ss, ip, portfmt) ;
  return 3 ;
}
