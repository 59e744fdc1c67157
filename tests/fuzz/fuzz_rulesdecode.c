/* ISC license. */
/* libFuzzer target: a cdb record value as sslserver decodes it. Every
   variable it yields is NAME=value with a nonempty NAME... as tcpserver
   would apply it, and the list is NUL-separated; a value is refused only
   when it is over the limits. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

int LLVMFuzzerTestOneInput (uint8_t const *in, size_t n)
{
  rules_result r = RULES_RESULT_ZERO ;
  int e = rules_decode((char const *)in, n, &r) ;
  if (!e) abort() ;
  /* over the limits only when it can be: 1001 variables take 4004 bytes */
  if (e < 0 && n <= RULES_MAXDATA && n < 4 * (RULES_MAXVARS + 1)) abort() ;
  for (size_t i = 0 ; i < r.env.len ; i += strlen(r.env.s + i) + 1)
    if (!strchr(r.env.s + i, '=')) abort() ;
  if (r.env.len && r.env.s[r.env.len - 1]) abort() ;
  stralloc_free(&r.env) ;
  stralloc_free(&r.key) ;
  return 0 ;
}
