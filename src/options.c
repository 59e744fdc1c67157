/* ISC license. */

#include <skalibs/sgetopt.h>
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

int options_verbosity (int opt, int withV)
{
  switch (opt)
  {
    case 'q' : verbosity = 0 ; return 1 ;
    case 'Q' : verbosity = 1 ; return 1 ;
    case 'v' : verbosity = 2 ; return 1 ;
    case 'V' : if (!withV) return 0 ; verbosity = 3 ; return 1 ;
    default : return 0 ;
  }
}

int options_parse (int *argc, char const *const **argv, char const *optstring, int (*take)(int, char const *, void *), void *data)
{
  subgetopt l = SUBGETOPT_ZERO ;
  for (;;)
  {
    int opt = subgetopt_r(*argc, *argv, optstring, &l) ;
    if (opt == -1) break ;
    if (opt == '?' || !(*take)(opt, l.arg, data)) return 0 ;
  }
  *argc -= l.ind ; *argv += l.ind ;
  return 1 ;
}
