/* ISC license. */
#ifndef TLSCTX_H
#define TLSCTX_H

#include <stddef.h>
#include <openssl/ssl.h>

/* The defaults for mail in 2026: TLS 1.2 minimum, ECDHE with AEAD only for
   TLS 1.2 (Mozilla intermediate), the three common TLS 1.3 suites, X25519
   and the two NIST curves. Every one is overridable by environment. */
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

/*
 * The variables the TLS engine is configured with, in one table: the
 * context builder reads them, -V lists them with their defaults, a rule
 * setting a PERRULE one gets a TLS context of its own, one setting an
 * IDENTITY one has the engine's identity checked again, and SECRET ones
 * never reach the program's environment. NAMED ones also come as NAME:servername
 * (SNI pairs).
 */
#define TLSCTX_VAR_SECRET 0x1
#define TLSCTX_VAR_PERRULE 0x2
#define TLSCTX_VAR_NAMED 0x4
#define TLSCTX_VAR_IDENTITY 0x8    /* the engine's user, group or root */

typedef struct tlsctx_var_s tlsctx_var ;
struct tlsctx_var_s
{
  char const *name ;
  char const *dflt ;            /* what applies when unset (for -V), or 0 */
  unsigned int flags ;
} ;
extern tlsctx_var const tlsctx_vars[] ;   /* ends with a null name */

/* 1 if var ("NAME=value", or a bare NAME) is a table variable with one of
   the flags set. */
extern int tlsctx_var_has (char const *var, unsigned int flags) ;

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

/* Loads one certificate chain and its key as the server would, into a
   context it then frees: 1, or 0 and the same one-line reason in err as
   tlsctx_server gives (the key of a later certificate, a CA's first, ...).
   For check mode (check.h), pair by pair. */
extern int tlsctx_pair_load (char const *certfile, char const *keyfile, char const *password, char *err, size_t errlen) ;

/* The certificates of file, at most max, the leaf first, or 0. Read as
   the pairs are, from a buffer wiped afterwards: a bundle's key is not
   left behind in a freed stdio buffer for the engines forked later. */
extern STACK_OF(X509) *tlsctx_chain_read (char const *file, unsigned int max) ;

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

/* With TICKETKEYFILE, the base every sslserver and sslhandoff shares, so
   that what a session may resume under depends on the TLS settings only,
   not on the service: a fleet resumes its members' sessions. */
#define TLSCTX_SIDCTX_FLEET "sslsuite TICKETKEYFILE"

/* Runs throw-away handshakes against a server context in memory, so that
   processes forked afterwards find OpenSSL's caches filled. */
extern void tlsctx_warmup (SSL_CTX *) ;

/* The key passphrase (-3: from fd 3; sslclient -K: from a file): reads fd
   up to NUL, newline or EOF (a CR before the newline is dropped) and closes
   it; from names it in the error message. Dies 111 on failure. */
extern char const *tlsctx_read_password (int fd, char const *from) ;

/* Call first in main, before any other OpenSSL function: from then on
   every block OpenSSL frees is wiped (key material it decoded included). */
extern void tlsctx_init (void) ;

/* Wipes the passphrase tlsctx_read_password read: call it once the last
   context that may need it is built. */
extern void tlsctx_forget_password (void) ;

/* After ssl's handshake, in a process that serves that one connection:
   frees the SNI pairs of ctx (the context ssl was made from) other than
   the one ssl uses, so their keys are no longer in memory. */
extern void tlsctx_release (SSL_CTX *ctx, SSL *ssl) ;

/* 1 if ctx has pairs for SNI names (CERTFILE:name), which
   tlsctx_release would free. */
extern int tlsctx_has_sni (SSL_CTX *ctx) ;

#endif
