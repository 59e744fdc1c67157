/* ISC license. */

#include <stdlib.h>

#include "log.h"
#include "options.h"

unsigned int options_number (char const *s, char opt, unsigned int min)
{
  char *end ;
  unsigned long n = strtoul(s, &end, 10) ;
  if (!*s || *s == '-' || *end || n < min || n > 0x7fffffffUL)
  {
    char o[2] = { opt, 0 } ;
    die_x(100, "invalid argument for -", o, ": ", s) ;
  }
  return n ;
}
