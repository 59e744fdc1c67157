/* ISC license. */

#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <openssl/evp.h>

#include "peer.h"

int peer_expect_server (SSL *ssl, char const *host, int checkname)
{
  unsigned char buf[16] ;
  int isip = inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1 ;
  if (!isip && !SSL_set_tlsext_host_name(ssl, host)) return 0 ;
  if (!checkname) return 1 ;
  if (isip) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) ;
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS) ;
  return SSL_set1_host(ssl, host) ;
}

int peer_pin_matches (SSL *ssl, unsigned char const *pin)
{
  X509 *cert = SSL_get0_peer_certificate(ssl) ;
  unsigned char md[EVP_MAX_MD_SIZE] ;
  unsigned int len = 0 ;
  if (!cert) return 0 ;
  if (X509_digest(cert, EVP_sha256(), md, &len) && len == PEER_PINLEN && !memcmp(md, pin, PEER_PINLEN)) return 1 ;
  {
    /* the whole DER SubjectPublicKeyInfo, as DANE 3 1 1 and HPKP pins hash it */
    unsigned char *der = 0 ;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der) ;
    int r = n > 0 && EVP_Digest(der, n, md, &len, EVP_sha256(), 0) && len == PEER_PINLEN && !memcmp(md, pin, PEER_PINLEN) ;
    OPENSSL_free(der) ;
    return r ;
  }
}

int peer_pin_scan (char const *s, unsigned char *pin)
{
  unsigned int n = 0 ;
  if (!strncasecmp(s, "sha256:", 7)) s += 7 ;
  for (; *s ; s++)
  {
    int v ;
    if (*s == ':') continue ;
    if (*s >= '0' && *s <= '9') v = *s - '0' ;
    else if (*s >= 'a' && *s <= 'f') v = *s - 'a' + 10 ;
    else if (*s >= 'A' && *s <= 'F') v = *s - 'A' + 10 ;
    else return 0 ;
    if (n >= 2 * PEER_PINLEN) return 0 ;
    if (n & 1) pin[n >> 1] |= v ; else pin[n >> 1] = v << 4 ;
    n++ ;
  }
  return n == 2 * PEER_PINLEN ;
}

int peer_names_host (SSL *ssl, char const *host, char const *ip)
{
  X509 *cert = SSL_get0_peer_certificate(ssl) ;
  if (!cert) return 0 ;
  return host ? X509_check_host(cert, host, 0, 0, 0) == 1 : X509_check_ip_asc(cert, ip, 0) == 1 ;
}
