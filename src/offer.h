/* ISC license. */
#ifndef OFFER_H
#define OFFER_H

#include <openssl/ssl.h>

#include "log.h"

/*
 * What a client offered in its ClientHello, kept for the one log line of a
 * failed server-side handshake (fail2ban reads it): the server name it sent
 * and the highest TLS version it offered. Both are attacker-chosen bytes,
 * so both are kept sanitised: the name as a log field (no space, no ':',
 * unprintable bytes as '?', bounded, "-" if none), the version as OpenSSL
 * names it ("TLSv1.3", "TLSv1.1", "SSLv3", ...) or as "0x" and four hex
 * digits for a number OpenSSL has no name for.
 */

typedef struct offer_s offer ;
struct offer_s
{
  char sni[LOG_FIELD_FMT] ;
  char version[8] ;
} ;

/* Sets both fields of o to "-" (no ClientHello seen) and makes the client
   hello callback of ssl fill them in. o is the caller's and must outlive
   the handshake; offer_watch(ssl, 0) stops it (nothing is allocated).
   Without an ex_data slot (out of memory) o just stays "-". */
extern void offer_watch (SSL *ssl, offer *o) ;

/* From the client hello callback: records the ClientHello's server name
   and highest version into the watching offer, if any. */
extern void offer_record (SSL *ssl) ;

/* From the client hello callback: the first host_name of the ClientHello's
   server_name extension (RFC 6066), raw bytes (not NUL-terminated, may
   hold anything), in *name and *len. Returns 0 if there is none or the
   extension is malformed. */
extern int offer_servername (SSL *ssl, unsigned char const **name, size_t *len) ;

#endif
