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
  {
    stralloc key = STRALLOC_ZERO ;
    int r = RULESTEXT_OK ;
    for (unsigned long n = lo ; r == RULESTEXT_OK && n <= hi ; n++)
    {
      key.len = 0 ;
      if (!stralloc_catb(&key, a, left) || !stralloc_readyplus(&key, UINT_FMT)) { r = RULESTEXT_ERROR ; break ; }
      key.len += uint_fmt(key.s + key.len, n) ;
      r = stralloc_catb(&key, a + right, len - right) ? put(k, key.s, key.len) : RULESTEXT_ERROR ;
    }
    stralloc_free(&key) ;
    return r ;
  }
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
      stralloc key = STRALLOC_ZERO ;
      int r = RULESTEXT_ERROR ;
      if (stralloc_catb(&key, a, pre) && stralloc_readyplus(&key, 48))
      {
        rules_ip6_fefe(key.s + pre, addr) ;
        r = put(k, key.s, pre + strlen(key.s + pre)) ;
      }
      stralloc_free(&key) ;
      return r ;
    }
  }
  {
    stralloc key = STRALLOC_ZERO ;
    int r ;
    if (!stralloc_catb(&key, a, len)) return RULESTEXT_ERROR ;
    for (size_t i = pre ; i < len ; i++) if (key.s[i] >= 'A' && key.s[i] <= 'F') key.s[i] += 32 ;
    r = put(k, key.s, len) ;
    stralloc_free(&key) ;
    return r ;
  }
}

 /* A group as the lookup writes it: 1 to 4 hex digits, lower case, no
    leading zero. Its value, -1 if it is no group, -2 if it has a leading
    zero. */
static long hexgroup (char const *s, size_t n)
{
  long v = 0 ;
  if (!n || n > 4) return -1 ;
  for (size_t i = 0 ; i < n ; i++)
  {
    char c = s[i] ;
    if (c >= '0' && c <= '9') v = (v << 4) | (c - '0') ;
    else if (c >= 'a' && c <= 'f') v = (v << 4) | (c - 'a' + 10) ;
    else return -1 ;
  }
  return n > 1 && s[0] == '0' ? -2 : v ;
}

static unsigned int longest_zeros (long const *g, unsigned int from, unsigned int to)
{
  unsigned int best = 0, run = 0 ;
  for (unsigned int i = from ; i < to ; i++)
  {
    run = g[i] ? 0 : run + 1 ;
    if (run > best) best = run ;
  }
  return best ;
}

static char const never_text[] = "not an IPv6 address or prefix" ;
static char const never_end[] = "an IPv6 prefix ends with ':'" ;
static char const never_lead[] = "write IPv6 groups without leading zeros" ;
static char const never_zeros[] = "the lookup writes the longest run of zero groups, even a single one, as '::'" ;
static char const never_count[] = "an IPv6 address has 8 groups" ;
static char const never_dotted[] = "the lookup writes a dotted IPv4 part only after a leading '::ffff:'" ;
static char const never_lead4[] = "write the IPv4 part without leading zeros" ;

 /* "::ffff:" and then up to three decimal bytes, each followed by '.'. */
static char const *never_dotted_prefix (char const *s, size_t len)
{
  unsigned int parts = 0 ;
  size_t i = 7 ;
  if (len < 7 || memcmp(s, "::ffff:", 7)) return never_dotted ;
  while (i < len)
  {
    size_t j = i ;
    unsigned int v = 0 ;
    while (j < len && s[j] >= '0' && s[j] <= '9' && j - i < 4) v = v * 10 + (s[j++] - '0') ;
    if (j == len || s[j] != '.') return memchr(s + 7, ':', len - 7) ? never_dotted : never_text ;
    if (j == i || j - i > 3 || v > 255 || ++parts > 3) return never_text ;
    if (j - i > 1 && s[i] == '0') return never_lead4 ;
    i = j + 1 ;
  }
  return 0 ;
}

 /* Groups and at most one "::", ending with ':': is it the start of a
    spelling the lookup makes (rules_ip6_fefe), cut after a ':'? */
static char const *never_groups (char const *s, size_t len)
{
  long g[8] ;
  unsigned int n = 0 ;
  int dc = -1, lead = 0 ;
  size_t i = 0 ;
  if (s[0] == ':')
  {
    if (s[1] != ':') return never_text ;
    dc = 0 ;
    i = 2 ;
  }
  while (i < len)
  {
    size_t j = i ;
    long v ;
    while (j < len && s[j] != ':') j++ ;
    if (j == i)
    {
      if (dc >= 0) return never_text ;
      dc = n ;
      i++ ;
      continue ;
    }
    v = hexgroup(s + i, j - i) ;
    if (v == -1) return never_text ;
    if (n == 8) return never_count ;
    if (v == -2) { lead = 1 ; v = 1 ; }
    g[n++] = v ;
    i = j + 1 ;
  }
  if (lead) return never_lead ;
  if (dc < 0)
  {
    /* n groups written out, then more: the longest run of zeros must come
       later, after a nonzero group if the text ends with a zero */
    unsigned int longest = longest_zeros(g, 0, n), tail = 0 ;
    if (n >= 8) return never_count ;
    while (tail < n && !g[n - 1 - tail]) tail++ ;
    return !longest || 8 - n - (tail ? 1 : 0) > longest ? 0 : never_zeros ;
  }
  {
    /* a groups, "::" for run zero groups, b groups, and more if the text
       goes on after them */
    unsigned int a = dc, b = n - dc, more = b ? 1 : 0 ;
    if (a + b + 1 + more > 8) return never_count ;
    if ((a && !g[a - 1]) || (b && !g[a])) return never_zeros ;
    for (unsigned int run = 8 - a - b - more ; run ; run--)
    {
      /* ::ffff:a.b.c.d is written dotted */
      if (!a && run == 5 && b >= 2 && g[0] == 0xffff) continue ;
      if (longest_zeros(g, 0, a) < run && longest_zeros(g, a, n) <= run) return 0 ;
    }
    return never_zeros ;
  }
}

char const *rulestext_never (char const *key, size_t len)
{
  char const *at = memchr(key, '@', len) ;
  char ip[64] ;
  unsigned char addr[16] ;
  if (memchr(key, '=', len) || memchr(key, '/', len)) return 0 ;
  if (at) { len -= at + 1 - key ; key = at + 1 ; }
  if (!memchr(key, ':', len)) return 0 ;
  if (len >= sizeof(ip)) return never_text ;
  memcpy(ip, key, len) ;
  ip[len] = 0 ;
  if (inet_pton(AF_INET6, ip, addr) == 1) return 0 ;
  if (len == 1) return 0 ;   /* ":" starts every spelling that starts with "::" */
  for (size_t i = 0 ; i < len ; i++)
    if (!strchr("0123456789abcdef:.", key[i]) || !key[i]) return never_text ;
  if (key[len - 1] != ':' && key[len - 1] != '.') return never_end ;
  if (memchr(key, '.', len)) return never_dotted_prefix(key, len) ;
  return never_groups(key, len) ;
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
