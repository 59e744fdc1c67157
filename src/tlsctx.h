/* ISC license. */
#ifndef TLSCTX_H
#define TLSCTX_H

#include <stddef.h>
#include <openssl/ssl.h>

/* The defaults of DESIGN.md section 8: mail in 2026. */
#define TLSCTX_CIPHERS "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* With TLSMINVERSION below 1.2 the AEAD list alone cannot be negotiated:
   add the ECDHE CBC suites and lower OpenSSL's security level (SHA-1). */
#define TLSCTX_CIPHERS_LEGACY TLSCTX_CIPHERS ":ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:@SECLEVEL=0"
#define TLSCTX_CIPHERSUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLSCTX_GROUPS "X25519:P-256:P-384"
#define TLSCTX_VERIFYDEPTH 5
#define TLSCTX_VERIFYDEPTH_STRING "5"
#define TLSCTX_CLIENT_VERIFYDEPTH 10

#define TLSCTX_CLIENTCERT_NONE 0
#define TLSCTX_CLIENTCERT_REQUIRE 1   /* -m */
#define TLSCTX_CLIENTCERT_MATCHHOST 2 /* -z: require, and match the remote host name */
#define TLSCTX_CLIENTCERT_REQUEST 3   /* ask, verify if given, do not require */

typedef struct tlsctx_config_s tlsctx_config, *tlsctx_config_ref ;
struct tlsctx_config_s
{
  unsigned int clientcert ;
  char const *password ;       /* key passphrase (-3), or 0 */
  unsigned char const *sidctx ; /* session id context, distinct per service */
  unsigned int sidctxlen ;
  int tickets ;                /* 1: session tickets with the keys of tickets.c; 0: none */
} ;

/* Builds a server context from the variables of envp (CERTFILE, KEYFILE,
   CERTCHAINFILE, CAFILE, CADIR, CCAFILE, VERIFYDEPTH, CIPHERS, CIPHERSUITES,
   TLSMINVERSION, TLSMAXVERSION, GROUPS, DHFILE). Returns 0 and a one-line
   reason in err on failure. */
extern SSL_CTX *tlsctx_server (char const *const *envp, tlsctx_config const *, char *err, size_t errlen) ;

/* The client-certificate mode a context was built with: CCAFILE=- turns a
   requested client certificate off, as in ucspi-ssl. */
extern unsigned int tlsctx_clientcert (char const *const *envp, unsigned int requested) ;

typedef struct tlsctx_client_config_s tlsctx_client_config, *tlsctx_client_config_ref ;
struct tlsctx_client_config_s
{
  char const *cafile ;         /* trust: CAFILE/CADIR, else the system's store */
  char const *cadir ;
  int verify ;                 /* verify the server's chain (-X turns it off) */
  unsigned int depth ;
  char const *certfile ;       /* client certificate, or 0 */
  char const *keyfile ;        /* defaults to certfile */
  char const *password ;
  char const *ciphers ;        /* -z, else CIPHERS */
} ;

/* A client context: the same protocol defaults and variables (CIPHERSUITES,
   TLSMINVERSION, TLSMAXVERSION, GROUPS) as the server's. */
extern SSL_CTX *tlsctx_client (char const *const *envp, tlsctx_client_config const *, char *err, size_t errlen) ;

/* A session id context: SHA-256 of the NUL-separated strings in
   [s, s + len) after the base bytes. Dies 111 on failure. */
extern void tlsctx_sidctx (unsigned char *out, void const *base, size_t baselen, char const *s, size_t len) ;

/* Runs throw-away handshakes against a server context in memory, so that
   processes forked afterwards find OpenSSL's caches filled. */
extern void tlsctx_warmup (SSL_CTX *) ;

/* -3: reads the key passphrase from fd (up to NUL, newline or EOF) and
   closes fd. Dies 111 on failure. */
extern char const *tlsctx_read_password (int fd) ;

#endif
