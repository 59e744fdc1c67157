/* ISC license. */

#include <skalibs/types.h>

#include "log.h"
#include "number.h"
#include "options.h"

unsigned int options_number (char const *s, char opt, unsigned int min, unsigned int max)
{
  unsigned int n ;
  if (!number_scan(s, min, max, &n))
  {
    char o[2] = { opt, 0 } ;
    char a[UINT_FMT], b[UINT_FMT] ;
    a[uint_fmt(a, min)] = 0 ;
    b[uint_fmt(b, max)] = 0 ;
    die_x(100, "invalid argument for -", o, ": ", s, " (from ", a, " to ", b, ")") ;
  }
  return n ;
}
