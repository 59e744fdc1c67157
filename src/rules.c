/* ISC license. */

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <stdlib.h>
#include <arpa/inet.h>

#include <skalibs/cdb.h>
#include <skalibs/stralloc.h>

#include "number.h"
#include "rules.h"

int rules_decode (char const *data, size_t len, rules_result *r)
{
  size_t i = 0 ;
  unsigned int nvars = 0 ;
  r->deny = 0 ;
  r->env.len = 0 ;
  if (len > RULES_MAXDATA) return -1 ;
  while (i < len)
  {
    char const *item = data + i ;
    char const *nul = memchr(item, 0, len - i) ;
    size_t n ;
    if (!nul) break ;   /* bytes after the last NUL are ignored */
    n = nul - item ;
    i += n + 1 ;
    if (n && item[0] == 'D') { r->deny = 1 ; continue ; }
    if (n < 2 || item[0] != '+' || !memchr(item + 1, '=', n - 1)) continue ;
    if (++nvars > RULES_MAXVARS) return -1 ;
    if (!stralloc_catb(&r->env, item + 1, n - 1) || !stralloc_0(&r->env)) return 0 ;
    if (n - 1 > 9 && !memcmp(item + 1, "MAXCONIP=", 9) && number_scanb(item + 10, n - 10, 0, UINT_MAX, &r->maxconip))
      r->hasmaxconip = 1 ;
  }
  return 1 ;
}

void rules_ip6_expanded (char *s, unsigned char const *ip)
{
  for (unsigned int i = 0 ; i < 16 ; i += 2)
  {
    s += number_hex(s, ip + i, 2, 1) ;
    *s++ = i < 14 ? ':' : 0 ;
  }
}

 /* Debian's ucspi-tcp-ipv6 (fefe's ip6_fmt): lower-case hex, the first
    longest run of zero groups, even a single one, becomes "::", and a
    v4-mapped address keeps its dotted tail. */
void rules_ip6_fefe (char *s, unsigned char const *ip)
{
  static char const hex[] = "0123456789abcdef" ;
  unsigned int best = 0, bestlen = 0 ;
  int mapped = !memcmp(ip, "\0\0\0\0\0\0\0\0\0\0\377\377", 12) ;
  unsigned int groups = mapped ? 6 : 8 ;
  for (unsigned int i = 0 ; i < groups ; i++)
  {
    unsigned int len = 0 ;
    while (i + len < groups && !ip[2*(i+len)] && !ip[2*(i+len)+1]) len++ ;
    if (len > bestlen) { best = i ; bestlen = len ; }
    if (len) i += len - 1 ;
  }
  for (unsigned int i = 0 ; i < groups ; i++)
  {
    unsigned int g = (ip[2*i] << 8) | ip[2*i+1] ;
    int started = 0 ;
    if (bestlen && i == best)
    {
      *s++ = ':' ;
      if (!i) *s++ = ':' ;
      i += bestlen - 1 ;
      continue ;
    }
    for (int shift = 12 ; shift >= 0 ; shift -= 4)
    {
      unsigned int d = (g >> shift) & 15 ;
      if (d || started || !shift) { *s++ = hex[d] ; started = 1 ; }
    }
    if (i < groups - 1 || mapped) *s++ = ':' ;
  }
  if (mapped)
  {
    inet_ntop(AF_INET, ip + 12, s, 16) ;
    return ;
  }
  *s = 0 ;
}

size_t rules_cidrkey (char *key, unsigned char const *addr, int is6, unsigned int bits)
{
  static char const v4[] = "abcdefghijklmnopqrstuvwxyz123456" ;
  unsigned int max = is6 ? 128 : 32 ;
  unsigned char ones = 0x60 ;
  if (!bits || bits > max) return 0 ;
  key[0] = is6 ? '^' : '_' ;
  for (unsigned int i = 0 ; i < bits ; i++)
  {
    int bit = (addr[i >> 3] >> (7 - (i & 7))) & 1 ;
    key[1 + i] = !bit ? '0' : is6 ? (char)ones++ : v4[i] ;
  }
  return 1 + bits ;
}

typedef struct lookup_s lookup ;
struct lookup_s
{
  cdb c ;
  stralloc key ;
  rules_result *r ;
} ;

 /* 1 found (result filled), 0 not found, -1 error, -2 the rule found is
    over the limits (its key in the result). */
static int try (lookup *l, char const *key, size_t len)
{
  cdb_data data ;
  size_t off ;
  int r = cdb_find(&l->c, &data, key, len) ;
  if (r < 0) { errno = EPROTO ; return -1 ; }
  if (!r) return 0 ;
  /* skalibs 2.13 keeps the key inside the map but not the data: a length
     that runs past the end would be read beyond the mapping (SIGBUS) */
  off = data.s - l->c.map ;
  if (off > l->c.size || data.len > l->c.size - off) { errno = EPROTO ; return -1 ; }
  l->r->key.len = 0 ;
  if (!stralloc_catb(&l->r->key, key, len) || !stralloc_0(&l->r->key)) return -1 ;
  l->r->key.len-- ;
  r = rules_decode(data.s, data.len, l->r) ;
  return r > 0 ? 1 : r < 0 ? -2 : -1 ;
}

 /* The key a b c, built on the heap: host and info come from the network. */
static int try3 (lookup *l, char const *a, char const *b, char const *c)
{
  l->key.len = 0 ;
  if (!stralloc_cats(&l->key, a) || !stralloc_cats(&l->key, b) || !stralloc_cats(&l->key, c)) return -1 ;
  return try(l, l->key.s, l->key.len) ;
}

static int walk (lookup *l, char const *ip, char const *host, char const *info)
{
  unsigned char addr[16] ;
  int is6 = inet_pton(AF_INET6, ip, addr) == 1 ;
  int is4 = !is6 && inet_pton(AF_INET, ip, addr) == 1 ;
  char spell[3][48] ;
  unsigned int nspell = 1 ;
  int r ;

  strncpy(spell[0], ip, sizeof(spell[0]) - 1) ;
  spell[0][sizeof(spell[0]) - 1] = 0 ;
  if (is6)
  {
    rules_ip6_fefe(spell[0], addr) ;
    inet_ntop(AF_INET6, addr, spell[1], sizeof(spell[1])) ;
    if (strcmp(spell[0], spell[1])) nspell++ ;
    rules_ip6_expanded(spell[nspell++], addr) ;
  }

  if (info)
  {
    for (unsigned int i = 0 ; i < nspell ; i++)
      if ((r = try3(l, info, "@", spell[i]))) return r ;
    if (host && (r = try3(l, info, "@=", host))) return r ;
  }
  for (unsigned int i = 0 ; i < nspell ; i++)
    if ((r = try(l, spell[i], strlen(spell[i])))) return r ;
  if (host && (r = try3(l, "=", host, ""))) return r ;
  for (size_t n = strlen(spell[0]) ; n-- > 1 ;)
    if ((spell[0][n-1] == '.' || spell[0][n-1] == ':') && (r = try(l, spell[0], n))) return r ;
  if (is4 || is6)
  {
    char key[130] ;
    for (unsigned int bits = is6 ? 128 : 32 ; bits ; bits--)
      if ((r = try(l, key, rules_cidrkey(key, addr, is6, bits)))) return r ;
  }
  if (host)
  {
    for (char const *p = host ; (p = strchr(p, '.')) ; p++)
      if ((r = try3(l, "=", p, ""))) return r ;
    if ((r = try(l, "=", 1))) return r ;
  }
  return try(l, "", 0) ;
}

static int lookup_in (lookup *l, char const *ip, char const *host, char const *info)
{
  int r ;
  if (l->c.size < 2048) { cdb_free(&l->c) ; errno = EPROTO ; return RULES_ERROR ; }
  r = walk(l, ip, host, info) ;
  cdb_free(&l->c) ;
  stralloc_free(&l->key) ;
  return r == -2 ? RULES_TOOBIG : r < 0 ? RULES_ERROR : r ? RULES_MATCH : RULES_NOMATCH ;
}

int rules_lookup (char const *file, char const *ip, char const *host, char const *info, rules_result *res)
{
  lookup l = { .c = CDB_ZERO, .key = STRALLOC_ZERO, .r = res } ;
  if (!cdb_init(&l.c, file)) return errno == ENOENT ? RULES_NOFILE : RULES_ERROR ;
  return lookup_in(&l, ip, host, info) ;
}

int rules_lookup_fd (int fd, char const *ip, char const *host, char const *info, rules_result *res)
{
  lookup l = { .c = CDB_ZERO, .key = STRALLOC_ZERO, .r = res } ;
  if (!cdb_init_fromfd(&l.c, fd)) return RULES_ERROR ;
  return lookup_in(&l, ip, host, info) ;
}
