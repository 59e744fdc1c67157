/* ISC license. */
#ifndef PROXY_H
#define PROXY_H

#include <stddef.h>
#include <sys/socket.h>

/*
 * The PROXY protocol (HAProxy's, versions 1 and 2) on input: a balancer
 * listed in PROXYFROM begins each connection with a header naming the real
 * client. Both versions are always accepted; nothing else from a listed
 * balancer is (an unlisted peer's bytes are never read here).
 */

/* PROXYFROM: addresses and CIDR blocks, IPv4 and IPv6, separated by spaces
   or commas. IPv4 is kept v4-mapped, so both spellings of a client match. */
#define PROXY_LIST_MAX 64
typedef struct proxy_list_s proxy_list ;
struct proxy_list_s
{
  unsigned int n ;
  struct { unsigned char addr[16] ; unsigned int bits ; } net[PROXY_LIST_MAX] ;
} ;

/* Parses s (0 or empty: an empty list). Returns 1, or 0 with *bad pointing
   at the entry that is no address or block, or the first one past
   PROXY_LIST_MAX. */
extern int proxy_list_scan (proxy_list *, char const *s, char const **bad) ;

/* 1 if the address (16 bytes, IPv4 v4-mapped) is in the list. */
extern int proxy_listed (proxy_list const *, unsigned char const *ip16) ;

/* The key proxy_listed and MAXCONIP compare: a socket address as 16 bytes,
   IPv4 v4-mapped. */
extern void proxy_key (struct sockaddr_storage const *, unsigned char *ip16) ;

/* What a header said. With proxied 0 (v2 LOCAL, v1 UNKNOWN, a v2 family
   without addresses), the connection keeps its own addresses. */
typedef struct proxy_header_s proxy_header ;
struct proxy_header_s
{
  int proxied ;
  struct sockaddr_storage remote ;   /* the real client */
  struct sockaddr_storage local ;    /* the address it connected to */
} ;

/* The longest header: v2's 16 bytes and a 16-bit length. */
#define PROXY_HEADER_MAX (16 + 65535)

/*
 * Parses the first len bytes a listed peer sent. Returns the header's
 * length (<= len) with *h filled; 0 if all len bytes belong to a header
 * that is not complete yet; -1 if they are no header, with *why saying
 * why. Never reads past len: a caller may give it bytes that follow the
 * header.
 */
extern long proxy_parse (unsigned char const *s, size_t len, proxy_header *h, char const **why) ;

#define PROXY_OK 0
#define PROXY_MALFORMED 1   /* *why says what */
#define PROXY_TIMEOUT 2
#define PROXY_CLOSED 3      /* EOF before the header ended */
#define PROXY_ERROR 4       /* a read failed: errno */

/* Reads exactly one header from the socket fd, not a byte more, within
   secs seconds (0: no limit). */
extern int proxy_read (int fd, unsigned int secs, proxy_header *h, char const **why) ;

#endif
