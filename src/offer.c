/* ISC license. */

#include <string.h>

#include <openssl/ssl.h>

#include "log.h"
#include "number.h"
#include "offer.h"

static int offer_index = -1 ;

void offer_watch (SSL *ssl, offer *o)
{
  if (o)
  {
    memcpy(o->sni, "-", 2) ;
    memcpy(o->version, "-", 2) ;
  }
  if (offer_index < 0) offer_index = SSL_get_ex_new_index(0, 0, 0, 0, 0) ;
  if (offer_index >= 0) SSL_set_ex_data(ssl, offer_index, o) ;
}

int offer_servername (SSL *ssl, unsigned char const **name, size_t *len)
{
  unsigned char const *p ;
  size_t extlen ;
  if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &extlen) || extlen < 5) return 0 ;
  if ((size_t)((p[0] << 8) | p[1]) != extlen - 2 || p[2] != TLSEXT_NAMETYPE_host_name) return 0 ;
  *len = (p[3] << 8) | p[4] ;
  if (*len > extlen - 5) return 0 ;
  *name = p + 5 ;
  return 1 ;
}

 /* GREASE values (RFC 8701) are 0x?a?a: noise, not an offer. */
static int is_grease (unsigned int v)
{
  return (v & 0x0f0f) == 0x0a0a && (v >> 12) == ((v >> 4) & 0x0f) ;
}

 /* The highest of supported_versions (RFC 8446 4.2.1), else the legacy
    version of the ClientHello itself. */
static unsigned int highest_version (SSL *ssl)
{
  unsigned char const *p ;
  size_t len ;
  unsigned int best = 0 ;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_versions, &p, &len) && len >= 1 && p[0] == len - 1 && !(p[0] & 1))
    for (size_t i = 1 ; i + 1 < len ; i += 2)
    {
      unsigned int v = (p[i] << 8) | p[i+1] ;
      if (!is_grease(v) && v > best) best = v ;
    }
  return best ? best : SSL_client_hello_get0_legacy_version(ssl) ;
}

static void version_name (char *out, unsigned int v)
{
  static struct { unsigned int v ; char const *name ; } const names[] =
  {
    { SSL3_VERSION, "SSLv3" },
    { TLS1_VERSION, "TLSv1" },
    { TLS1_1_VERSION, "TLSv1.1" },
    { TLS1_2_VERSION, "TLSv1.2" },
    { TLS1_3_VERSION, "TLSv1.3" },
  } ;
  unsigned char b[2] = { (v >> 8) & 0xff, v & 0xff } ;
  for (size_t i = 0 ; i < sizeof(names) / sizeof(names[0]) ; i++)
    if (names[i].v == v) { strcpy(out, names[i].name) ; return ; }
  memcpy(out, "0x", 2) ;
  out[2 + number_hex(out + 2, b, 2, 0)] = 0 ;
}

void offer_record (SSL *ssl)
{
  offer *o = offer_index < 0 ? 0 : SSL_get_ex_data(ssl, offer_index) ;
  unsigned char const *name ;
  size_t len ;
  if (!o) return ;
  if (offer_servername(ssl, &name, &len) && len) log_sanitizen(o->sni, (char const *)name, len, 0) ;
  version_name(o->version, highest_version(ssl)) ;
}
