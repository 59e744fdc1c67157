/* ISC license. */
/* libFuzzer target: one line of tcprules text. Every record produced must
   have a key no longer than the line allows and data that decodes. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <skalibs/stralloc.h>

#include "rules.h"
#include "rulestext.h"

static int check (char const *key, size_t klen, char const *data, size_t dlen, void *arg)
{
  rules_result r = RULES_RESULT_ZERO ;
  size_t max = *(size_t *)arg ;
  (void)key ;
  if (klen > max + 130) abort() ;
  if (dlen && data[dlen - 1]) abort() ;          /* every item NUL-terminated */
  if (!rules_decode(data, dlen, &r)) abort() ;
  stralloc_free(&r.env) ;
  stralloc_free(&r.key) ;
  return 1 ;
}

int LLVMFuzzerTestOneInput (uint8_t const *in, size_t n)
{
  static stralloc data = STRALLOC_ZERO ;
  char *s = malloc(n + 1) ;
  if (!s) return 0 ;
  memcpy(s, in, n) ;
  s[n] = 0 ;
  rulestext_line(s, n, &data, &check, &n) ;
  free(s) ;
  return 0 ;
}
