/* ISC license. */

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/iopause.h>
#include <skalibs/stralloc.h>
#include <skalibs/tai.h>

#include "ucspitls.h"

 /* Milliseconds since the last byte went either way on a TCP socket, or -1
    if the kernel cannot tell. */
static long tcp_idle_ms (int sock)
{
  struct tcp_info ti ;
  socklen_t len = sizeof(ti) ;
  if (getsockopt(sock, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1 || len < sizeof(ti)) return -1 ;
  return ti.tcpi_last_data_recv < ti.tcpi_last_data_sent ? ti.tcpi_last_data_recv : ti.tcpi_last_data_sent ;
}

int ucspitls_wait_command (int ctl, int sock, unsigned int idlesecs, char *cmd)
{
  tain deadline ;
  tain_now_g() ;
  if (idlesecs) tain_addsec_g(&deadline, idlesecs) ; else deadline = tain_infinite ;
  for (;;)
  {
    iopause_fd x = { .fd = ctl, .events = IOPAUSE_READ } ;
    int r = iopause_g(&x, 1, &deadline) ;
    if (r == -1) { if (errno == EINTR) continue ; return UCSPITLS_ERROR ; }
    if (!r)
    {
      long idle = tcp_idle_ms(sock) ;
      long limit = (long)idlesecs * 1000 ;
      tain left ;
      if (idle < 0 || idle >= limit) return UCSPITLS_TIMEOUT ;
      tain_from_millisecs(&left, (int)(limit - idle)) ;
      tain_add_g(&deadline, &left) ;
      continue ;
    }
    r = read(ctl, cmd, 1) ;
    if (r == 1) return UCSPITLS_GOT ;
    if (!r) return UCSPITLS_EOF ;
    if (errno != EINTR && errno != EAGAIN) return UCSPITLS_ERROR ;
  }
}

int ucspitls_send_block (int ctl, char const *entries, size_t len)
{
  static char const nul = 0 ;
  if (allwrite(ctl, entries, len) < len || allwrite(ctl, &nul, 1) < 1) return 0 ;
  shutdown(ctl, SHUT_RDWR) ;
  return 1 ;
}

static int entry_ok (char const *s)
{
  size_t n = 4 ;
  if (s[0] != 'S' || s[1] != 'S' || s[2] != 'L' || s[3] != '_') return 0 ;
  while ((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_') n++ ;
  return n > 4 && s[n] == '=' ;
}

 /* [s, s + len) ends with its final NUL: every entry before it is ok. */
static int block_ok (char const *s, size_t len)
{
  for (size_t i = 0 ; i + 1 < len ; i += strlen(s + i) + 1)
    if (!entry_ok(s + i)) return 0 ;
  return 1 ;
}

int ucspitls_read_block (int fd, stralloc *sa)
{
  size_t start = sa->len ;
  for (;;)
  {
    size_t n = sa->len - start ;
    ssize_t r ;
    if ((n == 1 && !sa->s[start]) || (n >= 2 && !sa->s[sa->len - 1] && !sa->s[sa->len - 2]))
      return block_ok(sa->s + start, n) ? 1 : UCSPITLS_BADBLOCK ;
    if (n >= UCSPITLS_BLOCK_MAX) return UCSPITLS_BADBLOCK ;
    if (!stralloc_readyplus(sa, 4096)) return -1 ;
    r = read(fd, sa->s + sa->len, n + 4096 > UCSPITLS_BLOCK_MAX ? UCSPITLS_BLOCK_MAX - n : 4096) ;
    if (r == -1) { if (errno == EINTR) continue ; return -1 ; }
    if (!r) return 0 ;
    sa->len += r ;
  }
}
