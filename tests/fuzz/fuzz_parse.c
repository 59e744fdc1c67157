/* ISC license. */
/* libFuzzer target: the small parsers of command-line and environment
   values, and the IPv6 spelling sslserver looks rules up with (which must
   read back as the same address). */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "peer.h"
#include "rules.h"

int LLVMFuzzerTestOneInput (uint8_t const *in, size_t n)
{
  char s[256] ;
  unsigned char pin[PEER_PINLEN] ;
  if (n >= 16)
  {
    char fmt[48], exp[48] ;
    unsigned char back[16] ;
    rules_ip6_fefe(fmt, in) ;
    if (inet_pton(AF_INET6, fmt, back) != 1 || memcmp(back, in, 16)) abort() ;
    rules_ip6_expanded(exp, in) ;
    if (inet_pton(AF_INET6, exp, back) != 1 || memcmp(back, in, 16)) abort() ;
  }
  if (n >= sizeof(s)) n = sizeof(s) - 1 ;
  memcpy(s, in, n) ;
  s[n] = 0 ;
  peer_pin_scan(s, pin) ;
  {
    unsigned char addr[16] ;
    char key[130] ;
    int is6 = inet_pton(AF_INET6, s, addr) == 1 ;
    if (is6 || inet_pton(AF_INET, s, addr) == 1)
      for (unsigned int bits = 0 ; bits <= 129 ; bits++)
      {
        size_t k = rules_cidrkey(key, addr, is6, bits) ;
        if (k > 129 || (k && k != bits + 1)) abort() ;
      }
  }
  return 0 ;
}
