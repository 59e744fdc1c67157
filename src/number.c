/* ISC license. */

#include <string.h>

#include "number.h"

int number_scanb (char const *s, size_t len, unsigned int min, unsigned int max, unsigned int *n)
{
  unsigned int v = 0 ;
  if (!len) return 0 ;
  for (size_t i = 0 ; i < len ; i++)
  {
    unsigned int d = (unsigned char)s[i] - '0' ;
    /* d > max first: max - d must not wrap round */
    if (d > 9 || d > max || v > (max - d) / 10) return 0 ;
    v = v * 10 + d ;
  }
  if (v < min) return 0 ;
  *n = v ;
  return 1 ;
}

int number_scan (char const *s, unsigned int min, unsigned int max, unsigned int *n)
{
  return number_scanb(s, strlen(s), min, max, n) ;
}

size_t number_hex (char *dst, unsigned char const *s, size_t len, int upper)
{
  char const *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef" ;
  for (size_t i = 0 ; i < len ; i++)
  {
    dst[2 * i] = digits[s[i] >> 4] ;
    dst[2 * i + 1] = digits[s[i] & 15] ;
  }
  return 2 * len ;
}
