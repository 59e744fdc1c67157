/* ISC license. */

#include <string.h>
#include <arpa/inet.h>
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

int connenv_sockaddr (char const *ip, char const *port, struct sockaddr_storage *ss, socklen_t *len)
{
  uint16_t p = 0 ;
  memset(ss, 0, sizeof(*ss)) ;
  if (port && !uint160_scan(port, &p)) return 0 ;
  if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)ss)->sin_addr) == 1)
  {
    ss->ss_family = AF_INET ;
    ((struct sockaddr_in *)ss)->sin_port = htons(p) ;
    *len = sizeof(struct sockaddr_in) ;
    return 1 ;
  }
  if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1)
  {
    ss->ss_family = AF_INET6 ;
    ((struct sockaddr_in6 *)ss)->sin6_port = htons(p) ;
    *len = sizeof(struct sockaddr_in6) ;
    return 1 ;
  }
  return 0 ;
}

void connenv_canonical (char *ip)
{
  struct sockaddr_storage ss ;
  socklen_t len ;
  char port[CONNENV_PORTFMT] ;
  if (connenv_sockaddr(ip, 0, &ss, &len)) connenv_fmtaddr(&ss, ip, port) ;
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

void connenv_proxied (conninfo *ci, struct sockaddr_storage const *remote, struct sockaddr_storage const *local)
{
  memcpy(ci->proxyip, ci->remoteip, sizeof(ci->proxyip)) ;
  memcpy(ci->proxyport, ci->remoteport, sizeof(ci->proxyport)) ;
  if (!remote) return ;
  connenv_fmtaddr(remote, ci->remoteip, ci->remoteport) ;
  connenv_fmtaddr(local, ci->localip, ci->localport) ;
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
      && (!tcpenv || addset(sa, "TCP", ci))
      && addvar(sa, "PROXY", "REMOTEIP", ci->proxyip, !!ci->proxyip[0])
      && addvar(sa, "PROXY", "REMOTEPORT", ci->proxyport, !!ci->proxyport[0]) ;
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
