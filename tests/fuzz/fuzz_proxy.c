/* ISC license. */
/* libFuzzer target: what a balancer listed in PROXYFROM sends first, parsed
   with proxy_parse at every length, as proxy_read sees it arrive: a header
   is never longer than what was given, its length never changes as more
   bytes come, and a refusal always says why. */

#include <stdint.h>
#include <stdlib.h>

#include "proxy.h"

int LLVMFuzzerTestOneInput (uint8_t const *in, size_t n)
{
  long whole = -2 ;
  for (size_t len = 1 ; len <= n ; len++)
  {
    proxy_header h ;
    char const *why = 0 ;
    long r = proxy_parse(in, len, &h, &why) ;
    if (r > (long)len) abort() ;
    if (r < 0 && !why) abort() ;
    if (r > 0) { whole = r ; break ; }
    if (r < 0) break ;
  }
  if (whole > 0)
  {
    proxy_header h ;
    char const *why = 0 ;
    if (proxy_parse(in, n, &h, &why) != whole) abort() ;
  }
  return 0 ;
}
