/* ISC license. */
/* bench/bulkapp: the per-connection program of the bulk benchmarks, the
   same binary under sslserver, stunnel4 and tcpserver. The client's first
   line picks the direction:
     "sink\n"      read fd 0 to EOF like cat > /dev/null, then write the
                   number of bytes read (after the first line) and "\n"
     "source N\n"  write N bytes on fd 1, like head -c N /dev/zero, exit */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUFSIZE 65536

static char buf[BUFSIZE] ;

static int allwrite (char const *s, size_t len)
{
  while (len)
  {
    ssize_t r = write(1, s, len) ;
    if (r == -1) { if (errno == EINTR) continue ; return 0 ; }
    s += r ; len -= r ;
  }
  return 1 ;
}

int main (void)
{
  size_t len = 0 ;
  char *nl = 0 ;
  while (!nl && len < 256)
  {
    ssize_t r = read(0, buf + len, 256 - len) ;
    if (r == -1) { if (errno == EINTR) continue ; return 111 ; }
    if (!r) return 100 ;
    nl = memchr(buf + len, '\n', r) ;
    len += r ;
  }
  if (!nl) return 100 ;
  *nl = 0 ;
  if (!strcmp(buf, "sink"))
  {
    unsigned long long total = len - (nl + 1 - buf) ;
    char line[32] ;
    for (;;)
    {
      ssize_t r = read(0, buf, BUFSIZE) ;
      if (r == -1) { if (errno == EINTR) continue ; return 111 ; }
      if (!r) break ;
      total += r ;
    }
    return allwrite(line, snprintf(line, sizeof(line), "%llu\n", total)) ? 0 : 111 ;
  }
  if (!strncmp(buf, "source ", 7))
  {
    unsigned long long n = strtoull(buf + 7, 0, 10) ;
    memset(buf, 'x', BUFSIZE) ;
    while (n)
    {
      size_t k = n < BUFSIZE ? n : BUFSIZE ;
      if (!allwrite(buf, k)) return 111 ;
      n -= k ;
    }
    return 0 ;
  }
  return 100 ;
}
