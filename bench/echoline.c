/* ISC license. */
/* bench/echoline: the per-connection program of the connection benchmarks,
   the same binary under sslserver, stunnel4 and tcpserver. Reads one line
   (up to 4096 bytes) from fd 0, writes it back on fd 1, exits 0. While no
   line has come, it waits: that is the idle connection of the memory
   benchmark. */

#include <errno.h>
#include <string.h>
#include <unistd.h>

int main (void)
{
  char buf[4096] ;
  size_t len = 0 ;
  while (len < sizeof(buf))
  {
    ssize_t r = read(0, buf + len, sizeof(buf) - len) ;
    if (r == -1) { if (errno == EINTR) continue ; return 111 ; }
    if (!r) break ;
    if (memchr(buf + len, '\n', r)) { len += r ; break ; }
    len += r ;
  }
  for (size_t w = 0 ; w < len ;)
  {
    ssize_t r = write(1, buf + w, len - w) ;
    if (r == -1) { if (errno == EINTR) continue ; return 111 ; }
    w += r ;
  }
  return 0 ;
}
