/* ISC license. */

#include <string.h>
#include <arpa/inet.h>

#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "rules.h"
#include "rulestext.h"

typedef struct sink_s sink ;
struct sink_s
{
  rulestext_add_func *add ;
  void *arg ;
  stralloc const *data ;
} ;

static int put (sink const *k, char const *key, size_t klen)
{
  return (*k->add)(key, klen, k->data->s, k->data->len, k->arg) ? RULESTEXT_OK : RULESTEXT_ERROR ;
}

 /* tcprules' range rule: the first '-' splits the number between the '.'
    before it and the '.' after it; keys in decimal, high end clipped at 255. */
static int add_range (sink const *k, char const *a, size_t len)
{
  char const *dash = memchr(a, '-', len) ;
  size_t i = dash - a, left = i, right = i + 1 ;
  unsigned long lo = 0, hi = 0 ;
  while (left && a[left-1] != '.') left-- ;
  while (right < len && a[right] != '.') right++ ;
  for (size_t j = left ; j < i ; j++)
  {
    if (a[j] < '0' || a[j] > '9') return RULESTEXT_SYNTAX ;
    if (lo < 1000) lo = lo * 10 + (a[j] - '0') ;
  }
  for (size_t j = i + 1 ; j < right ; j++)
  {
    if (a[j] < '0' || a[j] > '9') return RULESTEXT_SYNTAX ;
    if (hi < 1000) hi = hi * 10 + (a[j] - '0') ;
  }
  if (hi > 255) hi = 255 ;
  for (unsigned long n = lo ; n <= hi ; n++)
  {
    char key[len + UINT_FMT] ;
    size_t m = left ;
    int r ;
    memcpy(key, a, left) ;
    m += uint_fmt(key + m, n) ;
    memcpy(key + m, a + right, len - right) ;
    r = put(k, key, m + len - right) ;
    if (r != RULESTEXT_OK) return r ;
  }
  return RULESTEXT_OK ;
}

 /* An address with a '/': a CIDR block, stored as ucspi-tcp6's bit key.
    Anything else with a '/' is stored as written, as tcprules does (such a
    key never matches). */
static int add_cidr (sink const *k, char const *a, size_t len)
{
  char const *slash = memchr(a, '/', len) ;
  char ip[64], key[130] ;
  unsigned char addr[16] ;
  unsigned int bits = 0 ;
  size_t iplen = slash - a, klen ;
  int is6 ;
  if (iplen >= sizeof(ip) || slash + 1 == a + len || len - iplen - 1 > 3) return put(k, a, len) ;
  memcpy(ip, a, iplen) ;
  ip[iplen] = 0 ;
  for (char const *p = slash + 1 ; p < a + len ; p++)
  {
    if (*p < '0' || *p > '9') return put(k, a, len) ;
    bits = bits * 10 + (*p - '0') ;
  }
  is6 = !!memchr(ip, ':', iplen) ;
  if (inet_pton(is6 ? AF_INET6 : AF_INET, ip, addr) != 1) return put(k, a, len) ;
  klen = rules_cidrkey(key, addr, is6, bits) ;
  if (!klen) return put(k, a, len) ;
  return put(k, key, klen) ;
}

 /* A full IPv6 address, alone or after "info@", in the spelling sslserver
    looks up; a prefix ending in ':' stays as written, lower-cased. */
static int add_ip6 (sink const *k, char const *a, size_t len)
{
  char const *at = memchr(a, '@', len) ;
  size_t pre = at ? (size_t)(at - a) + 1 : 0 ;
  char ip[64] ;
  unsigned char addr[16] ;
  if (len - pre < sizeof(ip))
  {
    memcpy(ip, a + pre, len - pre) ;
    ip[len - pre] = 0 ;
    if (inet_pton(AF_INET6, ip, addr) == 1)
    {
      char key[pre + 48] ;
      memcpy(key, a, pre) ;
      rules_ip6_fefe(key + pre, addr) ;
      return put(k, key, pre + strlen(key + pre)) ;
    }
  }
  {
    char key[len + 1] ;
    for (size_t i = 0 ; i < len ; i++) key[i] = i >= pre && a[i] >= 'A' && a[i] <= 'F' ? a[i] + 32 : a[i] ;
    return put(k, key, len) ;
  }
}

 /* The address ends at the first ':' in tcprules 0.88; if what follows is
    not allow or deny, at the first ':' that is (IPv6 addresses, as Debian's
    ucspi-tcp-ipv6 reads them). */
static size_t find_colon (char const *s, size_t len)
{
  char const *p = memchr(s, ':', len) ;
  size_t first ;
  if (!p) return len ;
  first = p - s ;
  for (size_t i = first ; i < len ; i++)
  {
    if (s[i] != ':') continue ;
    if ((len - i - 1 >= 5 && !memcmp(s + i + 1, "allow", 5)) || (len - i - 1 >= 4 && !memcmp(s + i + 1, "deny", 4))) return i ;
  }
  return first ;
}

int rulestext_line (char *s, size_t len, stralloc *data, rulestext_add_func *add, void *arg)
{
  sink k = { .add = add, .arg = arg, .data = data } ;
  size_t colon, i, left ;
  char const *x ;
  while (len && (s[len-1] == ' ' || s[len-1] == '\t' || s[len-1] == '\n')) len-- ;
  if (!len || s[0] == '#') return RULESTEXT_OK ;
  colon = find_colon(s, len) ;
  if (colon == len) return RULESTEXT_OK ;   /* no colon: ignored, as tcprules 0.88 does */
  data->len = 0 ;
  x = s + colon + 1 ;
  left = len - colon - 1 ;
  if (left >= 5 && !memcmp(x, "allow", 5)) { x += 5 ; left -= 5 ; }
  else if (left >= 4 && !memcmp(x, "deny", 4))
  {
    x += 4 ; left -= 4 ;
    if (!stralloc_catb(data, "D", 2)) return RULESTEXT_ERROR ;
  }
  else return RULESTEXT_SYNTAX ;
  while (left)
  {
    char delim ;
    char const *end ;
    if (*x != ',') return RULESTEXT_SYNTAX ;
    x++ ; left-- ;
    end = memchr(x, '=', left) ;
    if (!end) return RULESTEXT_SYNTAX ;
    i = end - x ;
    if (!stralloc_catb(data, "+", 1) || !stralloc_catb(data, x, i + 1)) return RULESTEXT_ERROR ;
    x += i + 1 ; left -= i + 1 ;
    if (!left) return RULESTEXT_SYNTAX ;
    delim = *x++ ; left-- ;
    end = memchr(x, delim, left) ;
    if (!end) return RULESTEXT_SYNTAX ;
    i = end - x ;
    if (!stralloc_catb(data, x, i) || !stralloc_0(data)) return RULESTEXT_ERROR ;
    x += i + 1 ; left -= i + 1 ;
  }
  if (!memchr(s, '=', colon) && !memchr(s, '@', colon) && memchr(s, '/', colon)) return add_cidr(&k, s, colon) ;
  if (!memchr(s, '=', colon) && memchr(s, ':', colon))
  {
    char const *at = memchr(s, '@', colon) ;
    size_t from = at ? (size_t)(at - s) + 1 : 0 ;
    if (memchr(s + from, '-', colon - from)) return RULESTEXT_SYNTAX ;   /* no ranges in IPv6, as ucspi-tcp-ipv6 */
    return add_ip6(&k, s, colon) ;
  }
  if (!memchr(s, '=', colon) && !memchr(s, '@', colon) && memchr(s, '-', colon)) return add_range(&k, s, colon) ;
  return put(&k, s, colon) ;
}
