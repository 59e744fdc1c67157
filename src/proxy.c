/* ISC license. */

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <skalibs/iopause.h>
#include <skalibs/tai.h>

#include "number.h"
#include "proxy.h"

static unsigned char const v2sig[12] = "\r\n\r\n\0\r\nQUIT\n" ;
#define V1_MAX 107   /* the longest v1 line, CRLF included */

 /* Text to 16 bytes, IPv4 v4-mapped; 1 on success. */
static int scan_ip (char const *s, unsigned char *ip16, int *is4)
{
  if (inet_pton(AF_INET, s, ip16 + 12) == 1)
  {
    memcpy(ip16, "\0\0\0\0\0\0\0\0\0\0\377\377", 12) ;
    *is4 = 1 ;
    return 1 ;
  }
  *is4 = 0 ;
  return inet_pton(AF_INET6, s, ip16) == 1 ;
}

int proxy_list_scan (proxy_list *l, char const *s, char const **bad)
{
  l->n = 0 ;
  if (!s) return 1 ;
  while (*s)
  {
    char entry[INET6_ADDRSTRLEN + 4] ;
    size_t len = strcspn(s, " ,\t") ;
    char *slash ;
    int is4 ;
    unsigned int bits ;
    if (!len) { s++ ; continue ; }
    *bad = s ;
    if (len >= sizeof(entry) || l->n >= PROXY_LIST_MAX) return 0 ;
    memcpy(entry, s, len) ;
    entry[len] = 0 ;
    slash = strchr(entry, '/') ;
    if (slash) *slash = 0 ;
    if (!scan_ip(entry, l->net[l->n].addr, &is4)) return 0 ;
    if (!slash) bits = 128 ;
    else if (!number_scan(slash + 1, 0, is4 ? 32 : 128, &bits)) return 0 ;
    else if (is4) bits += 96 ;
    l->net[l->n++].bits = bits ;
    s += len ;
  }
  return 1 ;
}

int proxy_listed (proxy_list const *l, unsigned char const *ip16)
{
  for (unsigned int i = 0 ; i < l->n ; i++)
  {
    unsigned int bits = l->net[i].bits, whole = bits / 8, rest = bits % 8 ;
    if (memcmp(l->net[i].addr, ip16, whole)) continue ;
    if (rest && (l->net[i].addr[whole] ^ ip16[whole]) >> (8 - rest)) continue ;
    return 1 ;
  }
  return 0 ;
}

void proxy_key (struct sockaddr_storage const *ss, unsigned char *key)
{
  if (ss->ss_family == AF_INET6) memcpy(key, &((struct sockaddr_in6 const *)ss)->sin6_addr, 16) ;
  else
  {
    memcpy(key, "\0\0\0\0\0\0\0\0\0\0\377\377", 12) ;
    memcpy(key + 12, &((struct sockaddr_in const *)ss)->sin_addr, 4) ;
  }
}

static void set_addr (struct sockaddr_storage *ss, int family, unsigned char const *addr, unsigned char const *port)
{
  memset(ss, 0, sizeof(*ss)) ;
  ss->ss_family = family ;
  if (family == AF_INET)
  {
    memcpy(&((struct sockaddr_in *)ss)->sin_addr, addr, 4) ;
    memcpy(&((struct sockaddr_in *)ss)->sin_port, port, 2) ;
  }
  else
  {
    memcpy(&((struct sockaddr_in6 *)ss)->sin6_addr, addr, 16) ;
    memcpy(&((struct sockaddr_in6 *)ss)->sin6_port, port, 2) ;
  }
}

 /* One v1 field, up to the next space (or the end of the line), as text in
    field; the position after it, or 0. */
static char const *v1_field (char const *s, char const *end, char *field, size_t max)
{
  size_t len = 0 ;
  while (s + len < end && s[len] != ' ') len++ ;
  if (!len || len >= max) return 0 ;
  memcpy(field, s, len) ;
  field[len] = 0 ;
  return s + len + (s + len < end) ;
}

 /* "TCP4 src dst sport dport" (or TCP6) between s and end, the CRLF
    excluded. */
static int v1_addresses (char const *s, char const *end, proxy_header *h, char const **why)
{
  int family = s[3] == '4' ? AF_INET : AF_INET6 ;
  char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], p[6] ;
  unsigned char sa[16], da[16], sp[2], dp[2] ;
  unsigned int port ;
  s += 5 ;
  if (!(s = v1_field(s, end, src, sizeof(src))) || !(s = v1_field(s, end, dst, sizeof(dst))))
  { *why = "v1 header without both addresses" ; return 0 ; }
  if (inet_pton(family, src, sa) != 1 || inet_pton(family, dst, da) != 1)
  { *why = family == AF_INET ? "v1 TCP4 header with an address that is not IPv4" : "v1 TCP6 header with an address that is not IPv6" ; return 0 ; }
  if (!(s = v1_field(s, end, p, sizeof(p))) || !number_scan(p, 0, 65535, &port))
  { *why = "v1 header with an invalid source port" ; return 0 ; }
  sp[0] = port >> 8 ; sp[1] = port & 255 ;
  if (!(s = v1_field(s, end, p, sizeof(p))) || !number_scan(p, 0, 65535, &port) || s != end || end[-1] == ' ')
  { *why = "v1 header with an invalid destination port" ; return 0 ; }
  dp[0] = port >> 8 ; dp[1] = port & 255 ;
  set_addr(&h->remote, family, sa, sp) ;
  set_addr(&h->local, family, da, dp) ;
  h->proxied = 1 ;
  return 1 ;
}

static long v1_parse (unsigned char const *s, size_t len, proxy_header *h, char const **why)
{
  char const *line = (char const *)s ;
  unsigned char const *nl = memchr(s, '\n', len < V1_MAX ? len : V1_MAX) ;
  size_t n ;
  if (!nl)
  {
    if (len < V1_MAX) return 0 ;
    *why = "v1 header longer than 107 bytes" ;
    return -1 ;
  }
  n = nl - s + 1 ;
  if (n < 2 || s[n - 2] != '\r') { *why = "v1 header not ended by CRLF" ; return -1 ; }
  if (n >= 15 && !memcmp(line + 6, "UNKNOWN", 7) && (line[13] == ' ' || line[13] == '\r'))
  {
    h->proxied = 0 ;   /* the rest of the line means nothing */
    return n ;
  }
  if (n < 11 || (memcmp(line + 6, "TCP4 ", 5) && memcmp(line + 6, "TCP6 ", 5)))
  { *why = "v1 header with a protocol other than TCP4, TCP6 or UNKNOWN" ; return -1 ; }
  if (!v1_addresses(line + 6, line + n - 2, h, why)) return -1 ;
  return n ;
}

static long v2_parse (unsigned char const *s, size_t len, proxy_header *h, char const **why)
{
  static unsigned int const addrlen[4] = { 0, 12, 36, 216 } ;
  unsigned int cmd, family, transport, total ;
  size_t i ;
  if (len < 16) return 0 ;
  if (s[12] >> 4 != 2) { *why = "v2 header of an unknown version" ; return -1 ; }
  cmd = s[12] & 15 ;
  family = s[13] >> 4 ;
  transport = s[13] & 15 ;
  total = 16 + ((unsigned int)s[14] << 8 | s[15]) ;
  if (cmd > 1) { *why = "v2 header with a command other than LOCAL or PROXY" ; return -1 ; }
  if (family > 3 || transport > 2) { *why = "v2 header with an unknown address family or transport" ; return -1 ; }
  if (len < total) return 0 ;
  h->proxied = 0 ;
  /* LOCAL: a health check by the balancer itself; the block means nothing */
  if (!cmd) return total ;
  if (total - 16 < addrlen[family]) { *why = "v2 header shorter than its addresses" ; return -1 ; }
  /* TLVs are skipped, but one that overruns the header is an error */
  for (i = 16 + addrlen[family] ; i < total ; )
  {
    if (total - i < 3) { *why = "v2 header with a truncated TLV" ; return -1 ; }
    i += 3 + ((size_t)s[i + 1] << 8 | s[i + 2]) ;
    if (i > total) { *why = "v2 header with a TLV that overruns it" ; return -1 ; }
  }
  if (family == 1)
  {
    set_addr(&h->remote, AF_INET, s + 16, s + 24) ;
    set_addr(&h->local, AF_INET, s + 20, s + 26) ;
    h->proxied = 1 ;
  }
  else if (family == 2)
  {
    set_addr(&h->remote, AF_INET6, s + 16, s + 48) ;
    set_addr(&h->local, AF_INET6, s + 32, s + 50) ;
    h->proxied = 1 ;
  }
  /* AF_UNSPEC and AF_UNIX: no address a TCP service can use */
  return total ;
}

long proxy_parse (unsigned char const *s, size_t len, proxy_header *h, char const **why)
{
  size_t n = len < 12 ? len : 12 ;
  if (!memcmp(s, v2sig, n)) return len < 12 ? 0 : v2_parse(s, len, h, why) ;
  n = len < 6 ? len : 6 ;
  if (!memcmp(s, "PROXY ", n)) return len < 6 ? 0 : v1_parse(s, len, h, why) ;
  *why = "no PROXY protocol header" ;
  return -1 ;
}

 /*
  * What has arrived is looked at with MSG_PEEK and taken off the socket only
  * as far as it belongs to the header: the bytes after it are the client's
  * (TLS, or a deferred program's plaintext). What a peek shows of an
  * incomplete header is all header, so it is consumed at once, and the next
  * wait is for new bytes, never a spin on old ones.
  */
int proxy_read (int fd, unsigned int secs, proxy_header *h, char const **why)
{
  static unsigned char buf[PROXY_HEADER_MAX] ;
  size_t have = 0 ;
  tain deadline ;
  tain_now_g() ;
  if (secs) tain_addsec_g(&deadline, secs) ; else deadline = tain_infinite ;
  for (;;)
  {
    iopause_fd x = { .fd = fd, .events = IOPAUSE_READ } ;
    ssize_t r ;
    long total ;
    int e = iopause_g(&x, 1, &deadline) ;
    if (e == -1) { if (errno == EINTR) continue ; return PROXY_ERROR ; }
    if (!e) return PROXY_TIMEOUT ;
    r = recv(fd, buf + have, sizeof(buf) - have, MSG_PEEK) ;
    if (r == -1) { if (errno == EINTR || errno == EAGAIN) continue ; return PROXY_ERROR ; }
    if (!r) return PROXY_CLOSED ;
    total = proxy_parse(buf, have + r, h, why) ;
    if (total < 0) return PROXY_MALFORMED ;
    if (total) r = total - have ;
    do e = recv(fd, buf + have, r, 0) ; while (e == -1 && errno == EINTR) ;
    if (e != r) { if (e >= 0) errno = EIO ; return PROXY_ERROR ; }
    have += r ;
    /* an engine may serve another connection next: nothing of this one stays */
    if (total) { explicit_bzero(buf, sizeof(buf)) ; return PROXY_OK ; }
  }
}
