/* ISC license. */
/* libFuzzer target: one line of tcprules text. Every record produced must
   have a key no longer than the line allows and data that decodes, and
   only a key with a colon may be called one that can never match. */

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
  char const *why = rulestext_never(key, klen) ;
  if (klen > max + 130) abort() ;
  if (why && !memchr(key, ':', klen)) abort() ;   /* only IPv6 text is judged */
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
