/* ISC license. */

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "tickets.h"

typedef struct ticketkey_s ticketkey ;
struct ticketkey_s
{
  unsigned char name[16] ;
  unsigned char aes[32] ;
  unsigned char hmac[32] ;
  int valid ;
} ;

 /* The one piece of process-wide state here: OpenSSL's ticket callback has
    no per-context argument worth threading through every engine. */
static ticketkey keys[2] ;

int tickets_rotate (void)
{
  ticketkey k ;
  if (RAND_bytes(k.name, sizeof(k.name)) != 1 || RAND_bytes(k.aes, sizeof(k.aes)) != 1
   || RAND_bytes(k.hmac, sizeof(k.hmac)) != 1) return 0 ;
  k.valid = 1 ;
  keys[1] = keys[0] ;
  keys[0] = k ;
  OPENSSL_cleanse(&k, sizeof(k)) ;
  return 1 ;
}

static int set_mac (EVP_MAC_CTX *hctx, unsigned char *key)
{
  OSSL_PARAM params[3] ;
  params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, 32) ;
  params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "sha256", 0) ;
  params[2] = OSSL_PARAM_construct_end() ;
  return EVP_MAC_CTX_set_params(hctx, params) ;
}

static int ticket_cb (SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
  (void)ssl ;
  if (enc)
  {
    if (!keys[0].valid || RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) return -1 ;
    memcpy(name, keys[0].name, 16) ;
    if (!EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), 0, keys[0].aes, iv) || !set_mac(hctx, keys[0].hmac)) return -1 ;
    return 1 ;
  }
  for (unsigned int i = 0 ; i < 2 ; i++)
  {
    if (!keys[i].valid || memcmp(name, keys[i].name, 16)) continue ;
    if (!set_mac(hctx, keys[i].hmac) || !EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), 0, keys[i].aes, iv)) return -1 ;
    return i ? 2 : 1 ;   /* 2: valid, but issue a ticket under the current key */
  }
  return 0 ;
}

int tickets_attach (SSL_CTX *ctx)
{
  if (!keys[0].valid && !tickets_rotate()) return 0 ;
  SSL_CTX_set_num_tickets(ctx, 1) ;
  return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &ticket_cb) == 1 ;
}
