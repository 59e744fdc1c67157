/* ISC license. */
/* libFuzzer target: a cdb record value as sslserver decodes it. Every
   variable it yields is NAME=value with a nonempty NAME... as tcpserver
   would apply it, and the list is NUL-separated. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

int LLVMFuzzerTestOneInput (uint8_t const *in, size_t n)
{
  rules_result r = RULES_RESULT_ZERO ;
  if (!rules_decode((char const *)in, n, &r)) abort() ;
  for (size_t i = 0 ; i < r.env.len ; i += strlen(r.env.s + i) + 1)
    if (!strchr(r.env.s + i, '=')) abort() ;
  if (r.env.len && r.env.s[r.env.len - 1]) abort() ;
  stralloc_free(&r.env) ;
  stralloc_free(&r.key) ;
  return 0 ;
}
