/* ISC license. */

#include <string.h>
#include <ctype.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "log.h"
#include "connenv.h"

void connenv_fmtaddr (struct sockaddr_storage const *ss, char *ip, char *port)
{
  if (ss->ss_family == AF_INET6)
  {
    struct sockaddr_in6 const *sin6 = (struct sockaddr_in6 const *)ss ;
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) inet_ntop(AF_INET, sin6->sin6_addr.s6_addr + 12, ip, CONNENV_IPFMT) ;
    else inet_ntop(AF_INET6, &sin6->sin6_addr, ip, CONNENV_IPFMT) ;
    port[uint16_fmt(port, ntohs(sin6->sin6_port))] = 0 ;
  }
  else
  {
    struct sockaddr_in const *sin = (struct sockaddr_in const *)ss ;
    inet_ntop(AF_INET, &sin->sin_addr, ip, CONNENV_IPFMT) ;
    port[uint16_fmt(port, ntohs(sin->sin_port))] = 0 ;
  }
}

void connenv_localname (conninfo *ci, char const *name)
{
  size_t n = strlen(name) ;
  if (n >= sizeof(ci->localhost)) n = sizeof(ci->localhost) - 1 ;
  memcpy(ci->localhost, name, n) ;
  ci->localhost[n] = 0 ;
  ci->haslocalhost = 1 ;
}

int connenv_fromaccept (conninfo *ci, int fd, struct sockaddr_storage const *peer)
{
  struct sockaddr_storage ss ;
  socklen_t len = sizeof(ss) ;
  connenv_fmtaddr(peer, ci->remoteip, ci->remoteport) ;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1) return 0 ;
  connenv_fmtaddr(&ss, ci->localip, ci->localport) ;
  return 1 ;
}

int connenv_fromsocket (conninfo *ci, int fd)
{
  struct sockaddr_storage ss ;
  socklen_t len = sizeof(ss) ;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1) return 0 ;
  connenv_fmtaddr(&ss, ci->localip, ci->localport) ;
  len = sizeof(ss) ;
  if (getpeername(fd, (struct sockaddr *)&ss, &len) == -1) return 0 ;
  connenv_fmtaddr(&ss, ci->remoteip, ci->remoteport) ;
  return 1 ;
}

static int addr_parse (char const *ip, struct sockaddr_storage *ss, socklen_t *len)
{
  memset(ss, 0, sizeof(*ss)) ;
  if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)ss)->sin_addr) == 1)
  {
    ss->ss_family = AF_INET ;
    *len = sizeof(struct sockaddr_in) ;
    return 1 ;
  }
  if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1)
  {
    ss->ss_family = AF_INET6 ;
    *len = sizeof(struct sockaddr_in6) ;
    return 1 ;
  }
  return 0 ;
}

static int resolves_to (char const *host, char const *ip)
{
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *p ;
  int found = 0 ;
  if (getaddrinfo(host, 0, &hints, &res)) return 0 ;
  for (p = res ; p && !found ; p = p->ai_next)
  {
    char a[CONNENV_IPFMT], port[CONNENV_PORTFMT] ;
    struct sockaddr_storage ss ;
    memcpy(&ss, p->ai_addr, p->ai_addrlen) ;
    connenv_fmtaddr(&ss, a, port) ;
    found = !strcmp(a, ip) ;
  }
  freeaddrinfo(res) ;
  return found ;
}

int connenv_reverse (char const *ip, int paranoid, char *host, size_t hostlen)
{
  struct sockaddr_storage ss ;
  socklen_t len ;
  if (!addr_parse(ip, &ss, &len)) return 0 ;
  if (getnameinfo((struct sockaddr *)&ss, len, host, hostlen, 0, 0, NI_NAMEREQD)) return 0 ;
  for (char *p = host ; *p ; p++) *p = tolower((unsigned char)*p) ;
  if (paranoid && !resolves_to(host, ip)) return 0 ;
  return 1 ;
}

static int addvar (stralloc *sa, char const *prefix, char const *name, char const *value, int known)
{
  if (!stralloc_cats(sa, prefix) || !stralloc_cats(sa, name)) return 0 ;
  if (known && (!stralloc_catb(sa, "=", 1) || !stralloc_cats(sa, value))) return 0 ;
  return stralloc_0(sa) ;
}

static int addset (stralloc *sa, char const *prefix, conninfo const *ci)
{
  return addvar(sa, prefix, "LOCALIP", ci->localip, !!ci->localip[0])
      && addvar(sa, prefix, "LOCALPORT", ci->localport, !!ci->localport[0])
      && addvar(sa, prefix, "LOCALHOST", ci->localhost, ci->haslocalhost)
      && addvar(sa, prefix, "REMOTEIP", ci->remoteip, !!ci->remoteip[0])
      && addvar(sa, prefix, "REMOTEPORT", ci->remoteport, !!ci->remoteport[0])
      && addvar(sa, prefix, "REMOTEHOST", ci->remotehost, ci->hasremotehost)
      && addvar(sa, prefix, "REMOTEINFO", ci->remoteinfo, ci->hasremoteinfo) ;
}

int connenv_modifiers (stralloc *sa, conninfo const *ci, int tcpenv)
{
  return stralloc_catb(sa, "PROTO=SSL", 10)
      && addset(sa, "SSL", ci)
      && (!tcpenv || addset(sa, "TCP", ci)) ;
}

void connenv_logv (char const *what, char const *pid, conninfo const *ci, char const *const *suffix)
{
  char lh[LOG_FIELD_FMT], rh[LOG_FIELD_FMT], ri[LOG_FIELD_FMT] ;
  log_status(what, " ", pid, " ",
    log_sanitize(lh, ci->haslocalhost ? ci->localhost : 0, 0), ":", ci->localip, ":", ci->localport, " ",
    log_sanitize(rh, ci->hasremotehost ? ci->remotehost : 0, 0), ":", ci->remoteip, ":",
    log_sanitize(ri, ci->hasremoteinfo ? ci->remoteinfo : 0, 0), ":", ci->remoteport,
    suffix[0], suffix[0] && suffix[1] ? suffix[1] : 0) ;
}
