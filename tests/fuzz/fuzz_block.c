/* ISC license. */
/* libFuzzer target: the SSL_* block a UCSPI-TLS reader gets on the control
   socket, read with ucspitls_read_block and applied as environment
   modifiers, as the application process does. */

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <skalibs/env.h>
#include <skalibs/stralloc.h>

#include "ucspitls.h"

int LLVMFuzzerTestOneInput (uint8_t const *in, size_t n)
{
  stralloc sa = STRALLOC_ZERO ;
  int p[2] ;
  int r ;
  if (n > 60000) return 0 ;   /* what a pipe holds without a reader */
  if (pipe(p) == -1) abort() ;
  if (n && write(p[1], in, n) != (ssize_t)n) abort() ;
  close(p[1]) ;
  r = ucspitls_read_block(p[0], &sa) ;
  close(p[0]) ;
  if (r == 1)
  {
    char const *base[2] = { "PATH=/bin", 0 } ;
    size_t count = 2 ;
    if (!sa.len || sa.s[sa.len - 1]) abort() ;
    for (size_t i = 0 ; i < sa.len ; i++) if (!sa.s[i]) count++ ;
    {
      char const *v[count] ;
      if (!env_merge(v, count, base, 1, sa.s, sa.len - 1)) abort() ;
    }
  }
  stralloc_free(&sa) ;
  return 0 ;
}
