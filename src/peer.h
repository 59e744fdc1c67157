/* ISC license. */
#ifndef PEER_H
#define PEER_H

#include <openssl/ssl.h>

#define PEER_PINLEN 32

/* Client side, before the handshake: SNI for a name (never for an address
   literal), and, with checkname, OpenSSL's own RFC 6125 matching of host
   against the server's certificate (IP SANs for address literals, no CN
   when the certificate has DNS SANs). Returns 0 on failure. */
extern int peer_expect_server (SSL *, char const *host, int checkname) ;

/* 1 if the peer's certificate (DER), or its SubjectPublicKeyInfo (DER),
   has this SHA-256. */
extern int peer_pin_matches (SSL *, unsigned char const *pin) ;

/* Parses "sha256:HEX" (or just HEX, 64 digits, ':' separators allowed). */
extern int peer_pin_scan (char const *s, unsigned char *pin) ;

/* Server side, -z: 1 if the client's certificate names host (its PTR
   name) or, when no name is known, carries ip as an IP SAN. */
extern int peer_names_host (SSL *, char const *host, char const *ip) ;

#endif
