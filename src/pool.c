/* ISC license. */

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <skalibs/djbunix.h>

#include "pool.h"

 /* Which descriptors travel with a connection: bit 0 the socket, 1 the
    rules cdb, 2 the report socket. */
typedef struct message_s message ;
struct message_s
{
  pool_conn c ;
  unsigned int fds ;
} ;

#define POOL_MAXFDS 3

int pool_send (int chan, int fd, int rulesfd, int report, pool_conn const *c)
{
  message m = { .c = *c, .fds = 1 } ;
  int fds[POOL_MAXFDS] = { fd } ;
  unsigned int n = 1 ;
  union { struct cmsghdr h ; char buf[CMSG_SPACE(sizeof(int) * POOL_MAXFDS)] ; } ctl ;
  struct iovec v = { .iov_base = &m, .iov_len = sizeof(m) } ;
  struct msghdr h = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = ctl.buf } ;
  struct cmsghdr *cm ;
  if (rulesfd >= 0) { fds[n++] = rulesfd ; m.fds |= 2 ; }
  if (report >= 0) { fds[n++] = report ; m.fds |= 4 ; }
  memset(&ctl, 0, sizeof(ctl)) ;
  h.msg_controllen = CMSG_SPACE(sizeof(int) * n) ;
  cm = CMSG_FIRSTHDR(&h) ;
  cm->cmsg_level = SOL_SOCKET ;
  cm->cmsg_type = SCM_RIGHTS ;
  cm->cmsg_len = CMSG_LEN(sizeof(int) * n) ;
  memcpy(CMSG_DATA(cm), fds, sizeof(int) * n) ;
  for (;;)
  {
    ssize_t r = sendmsg(chan, &h, MSG_NOSIGNAL | MSG_DONTWAIT) ;
    if (r == (ssize_t)sizeof(m)) return 1 ;
    if (r == -1 && errno == EINTR) continue ;
    if (r >= 0) errno = EPROTO ;
    return 0 ;
  }
}

int pool_read_end (int chan, int *status)
{
  int s ;
  ssize_t r ;
  do r = recv(chan, &s, sizeof(s), MSG_DONTWAIT) ;
  while (r == -1 && errno == EINTR) ;
  if (r != sizeof(s)) return 0 ;
  *status = s ;
  return 1 ;
}

int pool_receive (int chan, int *fd, int *rulesfd, int *report, pool_conn *c)
{
  message m ;
  union { struct cmsghdr h ; char buf[CMSG_SPACE(sizeof(int) * POOL_MAXFDS)] ; } ctl ;
  struct iovec v = { .iov_base = &m, .iov_len = sizeof(m) } ;
  struct msghdr h = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) } ;
  int fds[POOL_MAXFDS] = { -1, -1, -1 } ;
  unsigned int n = 0, want ;
  ssize_t r ;
  do r = recvmsg(chan, &h, MSG_CMSG_CLOEXEC) ;
  while (r == -1 && errno == EINTR) ;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&h) ; cm ; cm = CMSG_NXTHDR(&h, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
    {
      size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int) ;
      for (size_t i = 0 ; i < k ; i++)
      {
        int x ;
        memcpy(&x, CMSG_DATA(cm) + i * sizeof(int), sizeof(int)) ;
        if (n < POOL_MAXFDS) fds[n++] = x ; else fd_close(x) ;
      }
    }
  want = r == (ssize_t)sizeof(m) && !(h.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) && (m.fds & 1) ? 1 + !!(m.fds & 2) + !!(m.fds & 4) : 0 ;
  if (!want || n != want)
  {
    for (unsigned int i = 0 ; i < n ; i++) fd_close(fds[i]) ;
    return 0 ;
  }
  n = 1 ;
  *fd = fds[0] ;
  *rulesfd = m.fds & 2 ? fds[n++] : -1 ;
  *report = m.fds & 4 ? fds[n++] : -1 ;
  *c = m.c ;
  return 1 ;
}

int pool_report_end (int chan, int status)
{
  ssize_t r ;
  do r = send(chan, &status, sizeof(status), MSG_NOSIGNAL) ;
  while (r == -1 && errno == EINTR) ;
  return r == sizeof(status) ;
}
