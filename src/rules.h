/* ISC license. */
#ifndef RULES_H
#define RULES_H

#include <skalibs/stralloc.h>

/*
 * Per-client rules in a tcprules cdb (djb's format, read with skalibs' cdb).
 * The keys tried, first hit wins:
 *   info@ip, info@=host, ip, =host, the ip's prefixes ending in '.' or ':'
 *   (longest first), CIDR keys as ucspi-tcp6 writes them (_bits for IPv4,
 *   ^bits for IPv6, longest first), =.suffix (longest first), =, and the
 *   empty key. An IPv6 address is tried in the three spellings existing
 *   files hold: compressed as Debian's ucspi-tcp-ipv6 prints it, RFC 5952,
 *   and fully expanded upper case (ucspi-tcp6).
 */

#define RULES_TOOBIG (-3)   /* the matching rule is over the limits below (its key in the result) */
#define RULES_NOFILE (-2)   /* the cdb does not exist */
#define RULES_ERROR (-1)    /* unreadable or corrupt, a record running past the end included: errno says why */
#define RULES_NOMATCH 0
#define RULES_MATCH 1

/* What one rule may carry: a real rule sets a handful of variables in a
   few hundred bytes. Documented in sslserver.1 and sslhandoff.1. */
#define RULES_MAXVARS 1000
#define RULES_MAXDATA 65536
#define RULES_STR_(x) #x
#define RULES_STR(x) RULES_STR_(x)
#define RULES_LIMITS RULES_STR(RULES_MAXVARS) " variables or " RULES_STR(RULES_MAXDATA) " bytes"

typedef struct rules_result_s rules_result ;
struct rules_result_s
{
  stralloc key ;      /* the key that matched */
  int deny ;
  stralloc env ;      /* NAME=value\0 ... in record order */
  int hasmaxconip ;
  unsigned int maxconip ;
} ;
#define RULES_RESULT_ZERO { .key = STRALLOC_ZERO, .deny = 0, .env = STRALLOC_ZERO, .hasmaxconip = 0, .maxconip = 0 }

/* ip: text as in SSLREMOTEIP; host, info: 0 when unknown. */
extern int rules_lookup (char const *file, char const *ip, char const *host, char const *info, rules_result *) ;

/* The same in the cdb open at fd (left open). */
extern int rules_lookup_fd (int fd, char const *ip, char const *host, char const *info, rules_result *) ;

/* Decodes a record value: "D" denies, "+NAME=value" sets, anything else is
   ignored (as tcpserver does). Returns 1, 0 on allocation failure, -1 if
   the value is over RULES_MAXDATA bytes or sets over RULES_MAXVARS
   variables. */
extern int rules_decode (char const *data, size_t len, rules_result *) ;

/* The cdb keys for an IPv4 or IPv6 CIDR block as ucspi-tcp6 writes them
   (key must hold 130 bytes). Returns the key length, 0 if not an address. */
extern size_t rules_cidrkey (char *key, unsigned char const *addr, int is6, unsigned int bits) ;

/* Writes ip (16 bytes) in the compressed form of Debian's ucspi-tcp-ipv6
   (a single zero group is compressed too, embedded IPv4 in hex), and the
   expanded upper-case form of ucspi-tcp6. Buffers of 40 bytes. */
extern void rules_ip6_fefe (char *s, unsigned char const *ip) ;
extern void rules_ip6_expanded (char *s, unsigned char const *ip) ;

#endif
