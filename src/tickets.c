/* ISC license. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "tickets.h"

typedef struct ticketkey_s ticketkey ;
struct ticketkey_s
{
  unsigned char name[16] ;
  unsigned char hmac[32] ;
  unsigned char aes[32] ;
} ;

 /* The one piece of process-wide state here: OpenSSL's ticket callback has
    no per-context argument worth threading through every engine. keys[0]
    encrypts. */
static ticketkey keys[TICKETS_FILE_MAX] ;
static unsigned int nkeys = 0 ;
static int fromfile = 0 ;

int tickets_rotate (void)
{
  ticketkey k ;
  if (fromfile) return 1 ;
  if (RAND_bytes((unsigned char *)&k, sizeof(k)) != 1) return 0 ;
  keys[1] = keys[0] ;
  keys[0] = k ;
  nkeys = nkeys ? 2 : 1 ;
  OPENSSL_cleanse(&k, sizeof(k)) ;
  return 1 ;
}

static int failed (char *err, size_t errlen, char const *file, unsigned int line, char const *what)
{
  if (line) snprintf(err, errlen, "unable to read TICKETKEYFILE %s: line %u: %s", file, line, what) ;
  else snprintf(err, errlen, "unable to read TICKETKEYFILE %s: %s", file, what) ;
  return 0 ;
}

 /* A line is exactly what `openssl rand 80 | base64 -w0` prints: 108
    characters, the last one padding. */
static int decode_key (char const *s, size_t len, ticketkey *k)
{
  unsigned char out[81] ;
  int ok = len == 108 && s[107] == '=' && s[106] != '='
        && EVP_DecodeBlock(out, (unsigned char const *)s, 108) == 81 ;
  if (ok) memcpy(k, out, sizeof(*k)) ;
  OPENSSL_cleanse(out, sizeof(out)) ;
  return ok ;
}

int tickets_load (char const *file, char *err, size_t errlen)
{
  char buf[TICKETS_FILE_MAX * 110 + 1] ;
  ticketkey fresh[TICKETS_FILE_MAX] ;
  unsigned int n = 0, line = 0 ;
  size_t len = 0 ;
  int ok = 0 ;
  int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY) ;
  if (fd == -1) return failed(err, errlen, file, 0, strerror(errno)) ;
  for (;;)
  {
    ssize_t r = read(fd, buf + len, sizeof(buf) - len) ;
    if (r == -1 && errno == EINTR) continue ;
    if (r == -1) { int e = errno ; close(fd) ; OPENSSL_cleanse(buf, len) ; return failed(err, errlen, file, 0, strerror(e)) ; }
    if (!r) break ;
    len += r ;
    if (len == sizeof(buf)) { close(fd) ; OPENSSL_cleanse(buf, len) ; return failed(err, errlen, file, 0, "too large for 64 keys") ; }
  }
  close(fd) ;
  for (size_t i = 0 ; i < len ; )
  {
    char *nl = memchr(buf + i, '\n', len - i) ;
    size_t end = nl ? (size_t)(nl - buf) : len, l = end - i ;
    line++ ;
    if (l && buf[i + l - 1] == '\r') l-- ;
    if (l)
    {
      if (n == TICKETS_FILE_MAX) { failed(err, errlen, file, line, "more than 64 keys") ; goto out ; }
      if (!decode_key(buf + i, l, &fresh[n])) { failed(err, errlen, file, line, "not a key: expected the base64 of 80 bytes (openssl rand 80 | base64 -w0)") ; goto out ; }
      n++ ;
    }
    i = end + 1 ;
  }
  if (!n) { failed(err, errlen, file, 0, "no key in it") ; goto out ; }
  OPENSSL_cleanse(keys, sizeof(keys)) ;
  memcpy(keys, fresh, n * sizeof(ticketkey)) ;
  nkeys = n ;
  fromfile = 1 ;
  ok = 1 ;
 out:
  OPENSSL_cleanse(buf, sizeof(buf)) ;
  OPENSSL_cleanse(fresh, sizeof(fresh)) ;
  return ok ;
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
    if (!nkeys || RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) return -1 ;
    memcpy(name, keys[0].name, 16) ;
    if (!EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), 0, keys[0].aes, iv) || !set_mac(hctx, keys[0].hmac)) return -1 ;
    return 1 ;
  }
  for (unsigned int i = 0 ; i < nkeys ; i++)
  {
    if (CRYPTO_memcmp(name, keys[i].name, 16)) continue ;
    if (!set_mac(hctx, keys[i].hmac) || !EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), 0, keys[i].aes, iv)) return -1 ;
    return i ? 2 : 1 ;   /* 2: valid, but issue a ticket under the current key */
  }
  return 0 ;
}

int tickets_attach (SSL_CTX *ctx)
{
  if (!nkeys && !tickets_rotate()) return 0 ;
  SSL_CTX_set_num_tickets(ctx, 1) ;
  return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &ticket_cb) == 1 ;
}
