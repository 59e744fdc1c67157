/* ISC license. */

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/iopause.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "log.h"
#include "privs.h"
#include "lookup.h"

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

 /* The name of ip (lower-cased); with paranoid, the name must also resolve
    back to ip. Returns 1 if a name was found. */
static int reverse (char const *ip, int paranoid, char *host, size_t hostlen)
{
  struct sockaddr_storage ss ;
  socklen_t len ;
  if (!connenv_sockaddr(ip, 0, &ss, &len)) return 0 ;
  if (getnameinfo((struct sockaddr *)&ss, len, host, hostlen, 0, 0, NI_NAMEREQD)) return 0 ;
  for (char *p = host ; *p ; p++) *p = tolower((unsigned char)*p) ;
  if (paranoid && !resolves_to(host, ip)) return 0 ;
  return 1 ;
}

 /* RFC 1413: from our address to the client's port 113, ask
    "remoteport , localport"; the answer is what follows the third ':' of
    the reply line, blanks and CR removed, possibly empty (as tcpserver
    keeps it). */
static int ident (conninfo const *ci, char *info, size_t max)
{
  struct sockaddr_storage local, remote ;
  socklen_t llen, rlen ;
  char q[2 * CONNENV_PORTFMT + 8] ;
  char reply[1024] ;
  size_t n = 0, qlen ;
  unsigned int colons = 0, k = 0 ;
  int fd ;
  if (!connenv_sockaddr(ci->localip, 0, &local, &llen) || !connenv_sockaddr(ci->remoteip, "113", &remote, &rlen)) return 0 ;
  fd = socket(remote.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0) ;
  if (fd == -1) return 0 ;
  if (bind(fd, (struct sockaddr *)&local, llen) == -1 || connect(fd, (struct sockaddr *)&remote, rlen) == -1) return 0 ;
  qlen = strlen(ci->remoteport) ;
  memcpy(q, ci->remoteport, qlen) ;
  memcpy(q + qlen, " , ", 3) ; qlen += 3 ;
  memcpy(q + qlen, ci->localport, strlen(ci->localport)) ; qlen += strlen(ci->localport) ;
  memcpy(q + qlen, "\r\n", 2) ; qlen += 2 ;
  if (allwrite(fd, q, qlen) < qlen) return 0 ;
  while (n < sizeof(reply) && !memchr(reply, '\n', n))
  {
    ssize_t r = read(fd, reply + n, sizeof(reply) - n) ;
    if (r <= 0) break ;
    n += r ;
  }
  close(fd) ;
  if (!memchr(reply, '\n', n)) return 0 ;
  for (size_t i = 0 ; i < n && reply[i] != '\n' ; i++)
  {
    char c = reply[i] ;
    if (colons < 3) { if (c == ':') colons++ ; continue ; }
    if (c == ' ' || c == '\t' || c == '\r') continue ;
    if (k < max - 1) info[k++] = c ;
  }
  info[k] = 0 ;
  return 1 ;   /* a whole reply line: even "ERROR : NO-USER" sets an empty info, as tcpserver does */
}

static void resolve (conninfo *ci, unsigned int what, int fd)
{
  if (what & LOOKUP_LOCALHOST)
    ci->haslocalhost = reverse(ci->localip, 0, ci->localhost, sizeof(ci->localhost)) ;
  if (what & LOOKUP_REMOTEHOST)
    ci->hasremotehost = reverse(ci->remoteip, !!(what & LOOKUP_PARANOID), ci->remotehost, sizeof(ci->remotehost)) ;
  if (what & LOOKUP_IDENT)
  {
    allwrite(fd, (char const *)ci, sizeof(*ci)) ;
    ci->hasremoteinfo = ident(ci, ci->remoteinfo, sizeof(ci->remoteinfo)) ;
  }
  allwrite(fd, (char const *)ci, sizeof(*ci)) ;
}

 /* The child parses what the network sends and may have been subverted:
    take from its answer only the names that were asked for, each ended
    within its buffer, and never an address or a port. */
static void take_names (conninfo *ci, conninfo *a, unsigned int what)
{
  if (what & LOOKUP_LOCALHOST)
  {
    a->localhost[sizeof(a->localhost) - 1] = 0 ;
    memcpy(ci->localhost, a->localhost, sizeof(ci->localhost)) ;
    ci->haslocalhost = a->haslocalhost ;
  }
  if (what & LOOKUP_REMOTEHOST)
  {
    a->remotehost[sizeof(a->remotehost) - 1] = 0 ;
    memcpy(ci->remotehost, a->remotehost, sizeof(ci->remotehost)) ;
    ci->hasremotehost = a->hasremotehost ;
  }
  if (what & LOOKUP_IDENT)
  {
    a->remoteinfo[sizeof(a->remoteinfo) - 1] = 0 ;
    memcpy(ci->remoteinfo, a->remoteinfo, sizeof(ci->remoteinfo)) ;
    ci->hasremoteinfo = a->hasremoteinfo ;
  }
}

 /* The child writes the whole conninfo after the names and again after the
    ident answer; the last complete copy read before the deadline wins. */
void lookup_names (conninfo *ci, unsigned int what, unsigned int timeout, uid_t uid, gid_t gid)
{
  int p[2] ;
  pid_t pid ;
  conninfo answer ;
  size_t got = 0 ;
  tain deadline ;
  if (!what) return ;
  if (pipecoe(p) == -1) return ;
  pid = fork() ;
  if (pid == -1) { fd_close(p[0]) ; fd_close(p[1]) ; return ; }
  if (!pid)
  {
    char const *failed = privs_try_nogroups(gid, uid) ;
    if (failed) { log_error(111, "unable to ", failed, " for the name lookups: ", strerror(errno)) ; _exit(111) ; }
    fd_close(p[0]) ;
    resolve(ci, what, p[1]) ;
    _exit(0) ;
  }
  fd_close(p[1]) ;
  tain_now_g() ;
  tain_addsec_g(&deadline, timeout) ;
  for (;;)
  {
    iopause_fd x = { .fd = p[0], .events = IOPAUSE_READ } ;
    int r = iopause_g(&x, 1, &deadline) ;
    if (r == -1 && errno == EINTR) continue ;
    if (r <= 0) break ;
    r = read(p[0], (char *)&answer + got, sizeof(answer) - got) ;
    if (r <= 0) break ;
    got += r ;
    if (got == sizeof(answer)) { take_names(ci, &answer, what) ; got = 0 ; }
  }
  fd_close(p[0]) ;
  kill(pid, SIGKILL) ;
  while (waitpid(pid, 0, 0) == -1 && errno == EINTR) ;
}
