/* ISC license. */
#ifndef CONNENV_H
#define CONNENV_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <skalibs/stralloc.h>

#define CONNENV_IPFMT 46
#define CONNENV_PORTFMT 6
#define CONNENV_HOSTMAX 256

/* What a connection's environment and log lines are made of. Unknown
   values are empty strings (the variables are then unset, not empty). */
typedef struct conninfo_s conninfo ;
struct conninfo_s
{
  char localip[CONNENV_IPFMT] ;
  char localport[CONNENV_PORTFMT] ;
  char localhost[CONNENV_HOSTMAX] ;
  char remoteip[CONNENV_IPFMT] ;
  char remoteport[CONNENV_PORTFMT] ;
  char remotehost[CONNENV_HOSTMAX] ;
  char remoteinfo[CONNENV_HOSTMAX] ;
  char proxyip[CONNENV_IPFMT] ;      /* the balancer, after a PROXY header */
  char proxyport[CONNENV_PORTFMT] ;
  unsigned int haslocalhost : 1 ;
  unsigned int hasremotehost : 1 ;
  unsigned int hasremoteinfo : 1 ;
} ;

/* -l: the local host name as given, instead of a lookup. */
extern void connenv_localname (conninfo *, char const *name) ;

/* Formats an address: IPv4-mapped IPv6 addresses are shown dotted. */
extern void connenv_fmtaddr (struct sockaddr_storage const *, char *ip, char *port) ;

/* Parses an address (IPv4 or IPv6 text) and port (decimal, or 0 for
   none) into ss and len; 0 if it is no address. */
extern int connenv_sockaddr (char const *ip, char const *port, struct sockaddr_storage *ss, socklen_t *len) ;

/* Rewrites an address given as text (TCPREMOTEIP, REMOTE_ADDR) the way
   connenv_fmtaddr writes it: an IPv4-mapped IPv6 address dotted, any
   other IPv6 address in RFC 5952 form. Left alone if it is no address. */
extern void connenv_canonical (char *ip) ;

/* Fills the addresses of a connected socket; 0 on failure. */
extern int connenv_fromsocket (conninfo *, int fd) ;

/* The same with the peer's address already known (from accept): only the
   local address is asked of the socket. */
extern int connenv_fromaccept (conninfo *, int fd, struct sockaddr_storage const *peer) ;

/* A PROXY header was read: the TCP peer becomes the balancer (proxyip,
   proxyport) and, when remote is not 0, remote and local are the
   connection's addresses from now on. */
extern void connenv_proxied (conninfo *, struct sockaddr_storage const *remote, struct sockaddr_storage const *local) ;

/* Appends the UCSPI modifiers: PROTO=SSL, SSLLOCAL*, SSLREMOTE* and, with
   tcpenv, the TCP* copies; PROXYREMOTEIP and PROXYREMOTEPORT after a
   PROXY header, else unset. Returns 0 on allocation failure. */
extern int connenv_modifiers (stralloc *, conninfo const *, int tcpenv) ;

/* Logs "PROG: what PID LOCALHOST:LOCALIP:LOCALPORT REMOTEHOST:REMOTEIP:INFO:REMOTEPORT"
   followed by the suffix strings (a macro adds the terminating 0). */
extern void connenv_logv (char const *what, char const *pid, conninfo const *, char const *const *suffix) ;
#define connenv_log(what, pid, ci, ...) connenv_logv(what, pid, ci, (char const *const []){ __VA_ARGS__, 0 })

#endif
