/* ISC license. */

#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdint.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <strings.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/evp.h>

#include <skalibs/env.h>

#include "log.h"
#include "number.h"
#include "offer.h"
#include "scope.h"
#include "tlsctx.h"
#include "tickets.h"

tlsctx_var const tlsctx_vars[] =
{
  { "CERTFILE", 0, TLSCTX_VAR_SECRET | TLSCTX_VAR_PERRULE | TLSCTX_VAR_NAMED },
  { "KEYFILE", 0, TLSCTX_VAR_SECRET | TLSCTX_VAR_PERRULE | TLSCTX_VAR_NAMED },
  { "CERTCHAINFILE", 0, TLSCTX_VAR_SECRET | TLSCTX_VAR_PERRULE },
  /* a second pair, of the other key type, for the same names */
  { "CERTFILE2", 0, TLSCTX_VAR_SECRET | TLSCTX_VAR_PERRULE | TLSCTX_VAR_NAMED },
  { "KEYFILE2", 0, TLSCTX_VAR_SECRET | TLSCTX_VAR_PERRULE | TLSCTX_VAR_NAMED },
  { "CAFILE", 0, TLSCTX_VAR_PERRULE },
  { "CADIR", 0, TLSCTX_VAR_PERRULE },
  { "CCAFILE", 0, TLSCTX_VAR_PERRULE },
  { "CRLFILE", 0, TLSCTX_VAR_PERRULE },
  { "CRLDIR", 0, TLSCTX_VAR_PERRULE },
  { "VERIFYDEPTH", TLSCTX_VERIFYDEPTH_STRING, TLSCTX_VAR_PERRULE },
  { "CIPHERS", TLSCTX_CIPHERS, TLSCTX_VAR_PERRULE },
  { "CIPHERSUITES", TLSCTX_CIPHERSUITES, TLSCTX_VAR_PERRULE },
  { "CIPHERORDER", "client", TLSCTX_VAR_PERRULE },
  { "TLSMINVERSION", "TLSv1.2", TLSCTX_VAR_PERRULE },
  { "TLSMAXVERSION", "TLSv1.3", TLSCTX_VAR_PERRULE },
  { "GROUPS", TLSCTX_GROUPS, TLSCTX_VAR_PERRULE },
  { "DHFILE", 0, TLSCTX_VAR_PERRULE },
  /* the fleet's session-ticket keys (tickets.h): the server's own only */
  { "TICKETKEYFILE", 0, TLSCTX_VAR_SECRET },
  /* the engine's identity: read by privs, hidden from the program */
  { "SSL_UID", 0, TLSCTX_VAR_SECRET | TLSCTX_VAR_IDENTITY },
  { "SSL_GID", 0, TLSCTX_VAR_SECRET | TLSCTX_VAR_IDENTITY },
  { "TLS_UID", 0, TLSCTX_VAR_SECRET | TLSCTX_VAR_IDENTITY },
  { "TLS_GID", 0, TLSCTX_VAR_SECRET | TLSCTX_VAR_IDENTITY },
  { "SSL_CHROOT", 0, TLSCTX_VAR_SECRET | TLSCTX_VAR_IDENTITY },
  { 0, 0, 0 }
} ;

int tlsctx_var_has (char const *var, unsigned int flags)
{
  size_t len = strcspn(var, "=") ;
  for (tlsctx_var const *v = tlsctx_vars ; v->name ; v++)
  {
    size_t n = strlen(v->name) ;
    if (!(v->flags & flags) || len < n || strncmp(var, v->name, n)) continue ;
    if (len == n || (v->flags & TLSCTX_VAR_NAMED && var[n] == ':')) return 1 ;
  }
  return 0 ;
}

static char const *envval (char const *const *envp, char const *name)
{
  char const *s = env_get2(envp, name) ;
  return s && *s ? s : 0 ;
}

static int fail (char *err, size_t errlen, char const *what, char const *arg, char const *reason)
{
  snprintf(err, errlen, "%s%s%s%s%s", what, arg ? ": " : "", arg ? arg : "", reason ? ": " : "", reason ? reason : "") ;
  return 0 ;
}

static int version_scan (char const *s, int *v)
{
  static struct { char const *name ; int v ; } const table[] =
  {
    { "TLSv1", TLS1_VERSION }, { "TLSv1.0", TLS1_VERSION }, { "1.0", TLS1_VERSION },
    { "TLSv1.1", TLS1_1_VERSION }, { "1.1", TLS1_1_VERSION },
    { "TLSv1.2", TLS1_2_VERSION }, { "1.2", TLS1_2_VERSION },
    { "TLSv1.3", TLS1_3_VERSION }, { "1.3", TLS1_3_VERSION },
  } ;
  for (size_t i = 0 ; i < sizeof(table) / sizeof(table[0]) ; i++)
    if (!strcasecmp(s, table[i].name)) { *v = table[i].v ; return 1 ; }
  return 0 ;
}

 /* ucspi-ssl 0.13 hands CIPHERS to the TLS 1.3 suite setter; an env file
    written for it holds only TLS_* names. Accept that spelling. */
static int only_tls13_names (char const *s)
{
  for (;;)
  {
    if (strncmp(s, "TLS_", 4)) return 0 ;
    s = strchr(s, ':') ;
    if (!s) return 1 ;
    s++ ;
  }
}

static int password_cb (char *buf, int size, int rwflag, void *data)
{
  char const *pw = data ;
  size_t len ;
  if (!pw) return -1 ;
  len = strlen(pw) ;
  if (len > (size_t)size) return -1 ;
  memcpy(buf, pw, len) ;
  return (int)len ;
}

unsigned int tlsctx_clientcert (char const *const *envp, unsigned int requested)
{
  char const *cca = envval(envp, "CCAFILE") ;
  return cca && !strcmp(cca, "-") ? TLSCTX_CLIENTCERT_NONE : requested ;
}

static int load_dh (SSL_CTX *ctx, char const *file, char *err, size_t errlen)
{
  EVP_PKEY *dh ;
  BIO *bio = BIO_new_file(file, "r") ;
  if (!bio) return fail(err, errlen, "unable to read DH parameters", file, log_tlserror()) ;
  dh = PEM_read_bio_Parameters(bio, 0) ;
  BIO_free(bio) ;
  if (!dh) return fail(err, errlen, "unable to read DH parameters", file, log_tlserror()) ;
  if (!SSL_CTX_set0_tmp_dh_pkey(ctx, dh))
  {
    EVP_PKEY_free(dh) ;
    return fail(err, errlen, "unable to set DH parameters", file, log_tlserror()) ;
  }
  return 1 ;
}

/* What both sides share: options, protocol versions, ciphers, groups.
   ciphers: the TLS 1.2 list given on the command line, else CIPHERS. */
static int setup_protocol (SSL_CTX *ctx, char const *const *envp, char const *ciphers, char *err, size_t errlen)
{
  char const *suites = envval(envp, "CIPHERSUITES") ;
  char const *groups = envval(envp, "GROUPS") ;
  char const *s ;
  int minv = TLS1_2_VERSION, maxv = 0 ;

  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF) ;
  s = envval(envp, "CIPHERORDER") ;
  if (!s || !strcmp(s, "client")) SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE) ;
  else if (!strcmp(s, "server")) SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA) ;
  else return fail(err, errlen, "invalid CIPHERORDER", s, "use client or server") ;
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS) ;

  s = envval(envp, "TLSMINVERSION") ;
  if (s && !version_scan(s, &minv)) return fail(err, errlen, "invalid TLSMINVERSION", s, "use TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3") ;
  s = envval(envp, "TLSMAXVERSION") ;
  if (s && !version_scan(s, &maxv)) return fail(err, errlen, "invalid TLSMAXVERSION", s, "use TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3") ;
  if (maxv && maxv < minv) return fail(err, errlen, "TLSMAXVERSION is below TLSMINVERSION", 0, 0) ;
  if (!SSL_CTX_set_min_proto_version(ctx, minv) || !SSL_CTX_set_max_proto_version(ctx, maxv))
    return fail(err, errlen, "unable to set protocol versions", 0, log_tlserror()) ;

  if (!ciphers) ciphers = envval(envp, "CIPHERS") ;
  if (ciphers && only_tls13_names(ciphers))
  {
    if (!suites) suites = ciphers ;
    ciphers = 0 ;
  }
  if (!ciphers) ciphers = minv < TLS1_2_VERSION ? TLSCTX_CIPHERS_LEGACY : TLSCTX_CIPHERS ;
  if (!SSL_CTX_set_cipher_list(ctx, ciphers)) return fail(err, errlen, "unable to set cipher list", ciphers, log_tlserror()) ;
  if (!suites) suites = TLSCTX_CIPHERSUITES ;
  if (!SSL_CTX_set_ciphersuites(ctx, suites)) return fail(err, errlen, "unable to set TLS 1.3 ciphersuites", suites, log_tlserror()) ;
  if (!groups) groups = TLSCTX_GROUPS ;
  if (!SSL_CTX_set1_groups_list(ctx, groups)) return fail(err, errlen, "unable to set groups", groups, log_tlserror()) ;
  return 1 ;
}

/* fail() for the messages about a certificate or key file. */
static int failf (char *err, size_t errlen, char const *fmt, ...) __attribute__((format(printf, 3, 4))) ;
static int failf (char *err, size_t errlen, char const *fmt, ...)
{
  va_list ap ;
  va_start(ap, fmt) ;
  vsnprintf(err, errlen, fmt, ap) ;
  va_end(ap) ;
  return 0 ;
}

 /* OpenSSL's reasons for a file it cannot use ("No such file or directory"
    without the path, "no start line", "unsupported") do not say which file
    nor what to do: look before handing it over. */
static int readable (char const *file, char const *what, char *err, size_t errlen)
{
  struct stat st ;
  int fd = open(file, O_RDONLY | O_CLOEXEC) ;
  if (fd == -1) return failf(err, errlen, "unable to read %s %s: %s", what, file, strerror(errno)) ;
  if (fstat(fd, &st) == -1) st.st_mode = 0 ;
  close(fd) ;
  if (S_ISDIR(st.st_mode)) return failf(err, errlen, "unable to read %s %s: %s", what, file, strerror(EISDIR)) ;
  if (S_ISREG(st.st_mode) && !st.st_size) return failf(err, errlen, "unable to load %s %s: the file is empty", what, file) ;
  return 1 ;
}

#define KIND_CERTIFICATE 0x1
#define KIND_KEY 0x2
#define KIND_ENCRYPTED 0x4

 /* What kinds of PEM blocks a file holds. */
static unsigned int pem_kinds (char const *file)
{
  unsigned int kinds = 0 ;
  BIO *bio = BIO_new_file(file, "r") ;
  char *name, *header ;
  unsigned char *data ;
  long len ;
  if (!bio) return 0 ;
  while (PEM_read_bio(bio, &name, &header, &data, &len))
  {
    size_t n = strlen(name) ;
    if (!strcmp(name, PEM_STRING_X509) || !strcmp(name, PEM_STRING_X509_OLD) || !strcmp(name, PEM_STRING_X509_TRUSTED))
      kinds |= KIND_CERTIFICATE ;
    else if (n >= 11 && !strcmp(name + n - 11, "PRIVATE KEY"))
    {
      kinds |= KIND_KEY ;
      if (!strcmp(name, PEM_STRING_PKCS8) || strstr(header, "ENCRYPTED")) kinds |= KIND_ENCRYPTED ;
    }
    OPENSSL_free(name) ;
    OPENSSL_free(header) ;
    OPENSSL_free(data) ;
  }
  BIO_free(bio) ;
  ERR_clear_error() ;
  return kinds ;
}

 /* The position (from 1) of the first certificate of file that key
    matches, or 0; *firstca: whether the file's first one is a CA's. */
static unsigned int matching_certificate (char const *file, EVP_PKEY *key, int *firstca)
{
  unsigned int i = 0, found = 0 ;
  BIO *bio = BIO_new_file(file, "r") ;
  X509 *x ;
  *firstca = 0 ;
  if (!bio) return 0 ;
  while (!found && (x = PEM_read_bio_X509(bio, 0, 0, 0)))
  {
    if (!i++) *firstca = X509_check_ca(x) != 0 ;
    if (X509_check_private_key(x, key)) found = i ;
    X509_free(x) ;
  }
  BIO_free(bio) ;
  ERR_clear_error() ;
  return found ;
}

static int certificate_trouble (char const *certfile, int client, char *err, size_t errlen)
{
  char const *reason = log_tlserror() ;
  unsigned int kinds = pem_kinds(certfile) ;
  if (kinds & KIND_CERTIFICATE) return failf(err, errlen, "unable to load certificate %s: %s", certfile, reason) ;
  if (kinds & KIND_KEY)
    return failf(err, errlen, "unable to load certificate %s: it holds a private key but no certificate: %s", certfile,
                 client ? "give the certificate with -c, the key with -k" : "CERTFILE names the certificate chain, KEYFILE the key") ;
  return failf(err, errlen, "unable to load certificate %s: it holds no PEM certificate (-----BEGIN CERTIFICATE-----)", certfile) ;
}

 /* The key could not be loaded, or does not match the first certificate:
    say why, and what to do. */
static int key_trouble (char const *certfile, char const *keyfile, char const *password, int client, char *err, size_t errlen)
{
  char const *reason = log_tlserror() ;
  EVP_PKEY *key = 0 ;
  BIO *bio = BIO_new_file(keyfile, "r") ;
  unsigned int kinds, pos ;
  int firstca ;
  if (bio)
  {
    key = PEM_read_bio_PrivateKey(bio, 0, &password_cb, (void *)password) ;
    BIO_free(bio) ;
  }
  ERR_clear_error() ;
  if (!key)
  {
    kinds = pem_kinds(keyfile) ;
    if (kinds & KIND_ENCRYPTED && password) return failf(err, errlen, "unable to load key %s: wrong passphrase", keyfile) ;
    if (kinds & KIND_ENCRYPTED)
      return failf(err, errlen, "unable to load key %s: it is encrypted: give its passphrase on fd 3 with -3%s", keyfile,
                   client ? ", or in a file with -K" : "") ;
    if (kinds & KIND_KEY) return failf(err, errlen, "unable to load key %s: %s", keyfile, reason) ;
    if (kinds & KIND_CERTIFICATE)
      return failf(err, errlen, "unable to load key %s: it holds a certificate, not a private key: %s", keyfile,
                   client ? "give the key's file with -k" : "set KEYFILE to the key's file") ;
    return failf(err, errlen, "unable to load key %s: it holds no PEM private key (-----BEGIN PRIVATE KEY-----)", keyfile) ;
  }
  pos = matching_certificate(certfile, key, &firstca) ;
  EVP_PKEY_free(key) ;
  if (pos == 1) return failf(err, errlen, "unable to load key %s: %s", keyfile, reason) ;
  if (pos > 1 && firstca)
    return failf(err, errlen, "unable to load key %s: it matches certificate %u of %s, not the first: "
                 "put the %s's own certificate first, then its CA chain", keyfile, pos, certfile, client ? "client" : "server") ;
  if (pos > 1)
    return failf(err, errlen, "unable to load key %s: it is the key of certificate %u of %s, a CA's, not of the first: %s",
                 keyfile, pos, certfile, client ? "give the client's own key with -k" : "set KEYFILE to the server's own key") ;
  return failf(err, errlen, "unable to load key %s: it does not match the certificate in %s", keyfile, certfile) ;
}

#define PEMFILE_MAX (1 << 22)

 /* A certificate or key file in a buffer that the caller wipes
    (OPENSSL_clear_free(buf, *len + 1)), or 0 and errno. OpenSSL's own
    file reading leaves the text in a freed stdio buffer, which every
    engine forked later would inherit - the key, in a bundle file. */
static char *slurp (char const *file, size_t *len)
{
  struct stat st ;
  char *buf = 0 ;
  size_t n = 0 ;
  int fd = open(file, O_RDONLY | O_CLOEXEC) ;
  if (fd == -1) return 0 ;
  if (fstat(fd, &st) == -1) goto err ;
  if (st.st_size > PEMFILE_MAX) { errno = EFBIG ; goto err ; }
  buf = OPENSSL_malloc(st.st_size + 1) ;
  if (!buf) { errno = ENOMEM ; goto err ; }
  while (n < (size_t)st.st_size)
  {
    ssize_t r = read(fd, buf + n, st.st_size - n) ;
    if (r == -1 && errno == EINTR) continue ;
    if (r <= 0) break ;
    n += r ;
  }
  if (n < (size_t)st.st_size) { OPENSSL_clear_free(buf, st.st_size + 1) ; errno = EIO ; goto err ; }
  close(fd) ;
  *len = n ;
  return buf ;
 err:
  close(fd) ;
  return 0 ;
}

 /* As SSL_CTX_use_certificate_chain_file: the first certificate is the
    leaf, the others its chain. */
static int use_chain (SSL_CTX *ctx, BIO *bio)
{
  X509 *x = PEM_read_bio_X509_AUX(bio, 0, 0, 0) ;
  int ok = x && SSL_CTX_use_certificate(ctx, x) && SSL_CTX_clear_chain_certs(ctx) ;
  X509_free(x) ;
  while (ok)
  {
    X509 *ca = PEM_read_bio_X509(bio, 0, 0, 0) ;
    if (!ca)
    {
      unsigned long e = ERR_peek_last_error() ;
      if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) return 0 ;
      ERR_clear_error() ;
      break ;
    }
    if (!SSL_CTX_add0_chain_cert(ctx, ca)) { X509_free(ca) ; return 0 ; }
  }
  return ok ;
}

static int use_key (SSL_CTX *ctx, BIO *bio, char const *password)
{
  EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, 0, &password_cb, (void *)password) ;
  int ok = key && SSL_CTX_use_PrivateKey(ctx, key) && SSL_CTX_check_private_key(ctx) ;
  EVP_PKEY_free(key) ;
  return ok ;
}

 /* Runs use (use_chain or use_key) over the contents of file. */
static int use_file (SSL_CTX *ctx, char const *file, char const *password, int key)
{
  size_t len = 0 ;
  char *buf = slurp(file, &len) ;
  BIO *bio = buf ? BIO_new_mem_buf(buf, len) : 0 ;
  int ok = bio && (key ? use_key(ctx, bio, password) : use_chain(ctx, bio)) ;
  BIO_free(bio) ;
  if (buf) OPENSSL_clear_free(buf, len + 1) ;
  return ok ;
}

static int load_keypair (SSL_CTX *ctx, char const *certfile, char const *keyfile, char const *password, char *err, size_t errlen)
{
  int client = SSL_CTX_get_ssl_method(ctx) == TLS_client_method() ;
  if (!readable(certfile, "certificate", err, errlen) || !readable(keyfile, "key", err, errlen)) return 0 ;
  if (!use_file(ctx, certfile, 0, 0)) return certificate_trouble(certfile, client, err, errlen) ;
  if (!use_file(ctx, keyfile, password, 1)) return key_trouble(certfile, keyfile, password, client, err, errlen) ;
  return 1 ;
}

static char const *key_type (int id)
{
  switch (id)
  {
    case EVP_PKEY_RSA : return "RSA" ;
    case EVP_PKEY_RSA_PSS : return "RSA-PSS" ;
    case EVP_PKEY_EC : return "ECDSA" ;
    case EVP_PKEY_ED25519 : return "Ed25519" ;
    case EVP_PKEY_ED448 : return "Ed448" ;
    default : return "unknown" ;
  }
}

static int dual_preference (SSL_CTX *) ;

static int leaf_type (SSL_CTX *ctx)
{
  X509 *x = SSL_CTX_get0_certificate(ctx) ;
  EVP_PKEY *k = x ? X509_get0_pubkey(x) : 0 ;
  return k ? EVP_PKEY_get_base_id(k) : EVP_PKEY_NONE ;
}

 /* CERTFILE2 (and KEYFILE2, defaulting to it): a second pair for the same
    names, whose key is of another type than the first's (an RSA pair beside
    an ECDSA one). OpenSSL keeps one pair per key type and picks, for each
    handshake, the one the client's signature algorithms and ciphers allow;
    a second pair of the same type would silently replace the first. */
static int load_second_pair (SSL_CTX *ctx, char const *certfile, char const *keyfile, char const *password, char *err, size_t errlen)
{
  int first = leaf_type(ctx), second ;
  SSL_CTX *alone = SSL_CTX_new(TLS_server_method()) ;
  if (!keyfile) keyfile = certfile ;
  if (!alone) return fail(err, errlen, "unable to create TLS context", 0, log_tlserror()) ;
  /* alone first: in ctx, a key of the first pair's type would be checked
     against the first pair's certificate and pass */
  if (!load_keypair(alone, certfile, keyfile, password, err, errlen)) { SSL_CTX_free(alone) ; return 0 ; }
  second = leaf_type(alone) ;
  SSL_CTX_free(alone) ;
  if (second == first || (first == EVP_PKEY_RSA && second == EVP_PKEY_RSA_PSS) || (first == EVP_PKEY_RSA_PSS && second == EVP_PKEY_RSA))
    return failf(err, errlen, "unable to use certificate %s: its key is %s, as the first certificate's: "
                 "the second pair must be of another key type (RSA beside ECDSA)", certfile, key_type(second)) ;
  if (!load_keypair(ctx, certfile, keyfile, password, err, errlen)) return 0 ;
  if (!dual_preference(ctx)) return fail(err, errlen, "unable to use certificate", certfile, log_tlserror()) ;
  return 1 ;
}

 /* With an ECDSA and an RSA pair, OpenSSL follows the client's order of
    signature algorithms, and many clients (GnuTLS) list RSA-PSS first:
    they would get the costlier RSA handshake. So once the client's
    algorithms are known (the certificate callback), a client that can use
    the ECDSA pair is given that pair alone; the RSA one is for the clients
    that cannot. */
typedef struct ecpair_s ecpair ;
struct ecpair_s
{
  X509 *x ;
  EVP_PKEY *key ;
  STACK_OF(X509) *chain ;
} ;

static int ecpair_index = -1 ;

static void ecpair_free (void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
  ecpair *p = ptr ;
  (void)parent ; (void)ad ; (void)idx ; (void)argl ; (void)argp ;
  if (!p) return ;
  X509_free(p->x) ;
  EVP_PKEY_free(p->key) ;
  sk_X509_pop_free(p->chain, X509_free) ;
  OPENSSL_free(p) ;
}

/* TLS 1.2: the ECDSA pair needs an ECDSA cipher both sides allow. */
static int ecdsa_cipher_shared (SSL *ssl)
{
  STACK_OF(SSL_CIPHER) *theirs = SSL_get_client_ciphers(ssl), *ours = SSL_get_ciphers(ssl) ;
  for (int i = 0 ; i < sk_SSL_CIPHER_num(theirs) ; i++)
  {
    SSL_CIPHER const *c = sk_SSL_CIPHER_value(theirs, i) ;
    if (SSL_CIPHER_get_auth_nid(c) != NID_auth_ecdsa) continue ;
    for (int j = 0 ; j < sk_SSL_CIPHER_num(ours) ; j++)
      if (SSL_CIPHER_get_id(sk_SSL_CIPHER_value(ours, j)) == SSL_CIPHER_get_id(c)) return 1 ;
  }
  return 0 ;
}

static int prefer_ecdsa (SSL *ssl, void *arg)
{
  ecpair const *p = arg ;
  if (SSL_version(ssl) < TLS1_3_VERSION && !ecdsa_cipher_shared(ssl)) return 1 ;
  if (!(SSL_check_chain(ssl, p->x, p->key, p->chain) & CERT_PKEY_VALID)) return 1 ;
  SSL_certs_clear(ssl) ;
  return SSL_use_cert_and_key(ssl, p->x, p->key, p->chain, 1) ;
}

static int dual_preference (SSL_CTX *ctx)
{
  ecpair *p ;
  int r = SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_FIRST) ;
  while (r == 1 && leaf_type(ctx) != EVP_PKEY_EC) r = SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_NEXT) ;
  ERR_clear_error() ;
  if (r != 1) return 1 ;   /* no ECDSA pair: nothing to prefer */
  if (ecpair_index < 0) ecpair_index = SSL_CTX_get_ex_new_index(0, 0, 0, 0, &ecpair_free) ;
  p = OPENSSL_zalloc(sizeof(*p)) ;
  if (ecpair_index < 0 || !p) { OPENSSL_free(p) ; return 0 ; }
  p->x = SSL_CTX_get0_certificate(ctx) ;
  p->key = SSL_CTX_get0_privatekey(ctx) ;
  if (!SSL_CTX_get0_chain_certs(ctx, &p->chain) || !p->x || !p->key) { OPENSSL_free(p) ; return 0 ; }
  X509_up_ref(p->x) ;
  EVP_PKEY_up_ref(p->key) ;
  p->chain = p->chain ? X509_chain_up_ref(p->chain) : sk_X509_new_null() ;
  if (!p->chain || !SSL_CTX_set_ex_data(ctx, ecpair_index, p)) { ecpair_free(0, p, 0, 0, 0, 0) ; return 0 ; }
  SSL_CTX_set_cert_cb(ctx, &prefer_ecdsa, p) ;
  return 1 ;
}

 /* Which sessions may resume under a context (see scope.h): the service or
    rule (cfg->sidctx), and what client certificates are verified against -
    the mode, the depth, the contents of CAFILE, CCAFILE and CRLFILE and the
    entries of CADIR and CRLDIR (name, size, time, inode). A reload that
    changes any of them changes the scope, so no session authenticated
    before it resumes after it. */
static int digest_file (EVP_MD_CTX *md, char const *path)
{
  char buf[4096] ;
  int fd = open(path, O_RDONLY | O_CLOEXEC) ;
  if (fd == -1) return 1 ;   /* loading it said why, or will */
  for (;;)
  {
    ssize_t r = read(fd, buf, sizeof(buf)) ;
    if (r == -1 && errno == EINTR) continue ;
    if (r <= 0 || !EVP_DigestUpdate(md, buf, r)) { close(fd) ; return r == 0 ; }
  }
}

 /* Entries in any order: their digests are added up by exclusive or. */
static int digest_dir (EVP_MD_CTX *md, char const *path)
{
  unsigned char sum[32] = { 0 } ;
  struct dirent *de ;
  DIR *dir = opendir(path) ;
  if (!dir) return 1 ;
  while ((de = readdir(dir)))
  {
    struct stat st ;
    unsigned char h[32] ;
    unsigned int hlen = 32 ;
    unsigned char rec[sizeof(de->d_name) + 4 * 8] ;
    size_t n = strlen(de->d_name) + 1 ;
    uint64_t f[4] ;
    if (fstatat(dirfd(dir), de->d_name, &st, 0) == -1) continue ;
    f[0] = st.st_size ; f[1] = st.st_mtim.tv_sec ; f[2] = st.st_mtim.tv_nsec ; f[3] = st.st_ino ;
    memcpy(rec, de->d_name, n) ;
    memcpy(rec + n, f, sizeof(f)) ;
    if (!EVP_Digest(rec, n + sizeof(f), h, &hlen, EVP_sha256(), 0)) { closedir(dir) ; return 0 ; }
    for (unsigned int i = 0 ; i < 32 ; i++) sum[i] ^= h[i] ;
  }
  closedir(dir) ;
  return EVP_DigestUpdate(md, sum, sizeof(sum)) ;
}

static int digest_path (EVP_MD_CTX *md, char const *path)
{
  struct stat st ;
  if (!path) return EVP_DigestUpdate(md, "", 1) ;
  if (!EVP_DigestUpdate(md, path, strlen(path) + 1)) return 0 ;
  if (stat(path, &st) == -1) return 1 ;
  return S_ISDIR(st.st_mode) ? digest_dir(md, path) : digest_file(md, path) ;
}

static int scope_id (char const *const *envp, tlsctx_config const *cfg, unsigned int clientcert, unsigned int depth, unsigned char *id)
{
  static char const *const trust[] = { "CAFILE", "CADIR", "CCAFILE", "CRLFILE", "CRLDIR", 0 } ;
  unsigned int len = SCOPE_LEN ;
  unsigned char mode[2] = { (unsigned char)clientcert, (unsigned char)depth } ;
  EVP_MD_CTX *md = EVP_MD_CTX_new() ;
  int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), 0) && EVP_DigestUpdate(md, cfg->sidctx, cfg->sidctxlen)
        && EVP_DigestUpdate(md, mode, sizeof(mode)) ;
  if (clientcert)
    for (unsigned int i = 0 ; ok && trust[i] ; i++) ok = digest_path(md, envval(envp, trust[i])) ;
  ok = ok && EVP_DigestFinal_ex(md, id, &len) ;
  EVP_MD_CTX_free(md) ;
  return ok ;
}

 /* SNI: CERTFILE:name (and KEYFILE:name, defaulting to it) give the
    certificate for a server name; a name may start with "*." for one
    label. Each pair lives in a context of its own, which the client hello
    callback switches to before OpenSSL looks at a session or a client
    certificate: the pair is its own, the trust store and the client CA
    names are the default context's, its scope is the default's and the
    name. Unknown or missing names get the default pair. */
typedef struct sniname_s sniname ;
struct sniname_s
{
  char name[256] ;
  SSL_CTX *ctx ;
} ;
typedef struct snitable_s snitable ;
struct snitable_s
{
  unsigned int n ;
  sniname entry[] ;
} ;

static int sni_index = -1 ;

static void sni_free (void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
  snitable *t = ptr ;
  (void)parent ; (void)ad ; (void)idx ; (void)argl ; (void)argp ;
  if (!t) return ;
  for (unsigned int i = 0 ; i < t->n ; i++) SSL_CTX_free(t->entry[i].ctx) ;
  OPENSSL_free(t) ;
}

static int sni_match (char const *pattern, char const *name)
{
  char const *dot ;
  if (!strcasecmp(pattern, name)) return 1 ;
  if (pattern[0] != '*' || pattern[1] != '.') return 0 ;
  dot = strchr(name, '.') ;
  return dot && dot != name && !strcasecmp(pattern + 1, dot) ;
}

static SSL_CTX *sni_find (snitable const *t, char const *name)
{
  for (int wild = 0 ; wild < 2 ; wild++)
    for (unsigned int i = 0 ; i < t->n ; i++)
      if (t->entry[i].ctx && (t->entry[i].name[0] == '*') == wild && sni_match(t->entry[i].name, name)) return t->entry[i].ctx ;
  return 0 ;
}

 /* Kept so that OpenSSL acknowledges the name; the switch is already made. */
static int sni_cb (SSL *ssl, int *al, void *arg)
{
  char const *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) ;
  SSL_CTX *ctx = name ? sni_find(arg, name) : 0 ;
  (void)al ;
  if (ctx) SSL_set_SSL_CTX(ssl, ctx) ;
  return SSL_TLSEXT_ERR_OK ;
}

 /* The server name of a ClientHello, lower-cased; 0 if there is none or it
    is malformed (OpenSSL refuses the latter later). */
static int hello_servername (SSL *ssl, char *name, size_t max)
{
  unsigned char const *p ;
  size_t n ;
  if (!offer_servername(ssl, &p, &n) || !n || n >= max || memchr(p, 0, n)) return 0 ;
  for (size_t i = 0 ; i < n ; i++) name[i] = p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i] ;
  name[n] = 0 ;
  return 1 ;
}

static int hello_cb (SSL *ssl, int *al, void *arg)
{
  snitable const *t = arg ;
  char name[256] ;
  int named ;
  SSL_CTX *ctx ;
  offer_record(ssl) ;
  named = hello_servername(ssl, name, sizeof(name)) ;
  ctx = named && t ? sni_find(t, name) : 0 ;
  if ((ctx && !SSL_set_SSL_CTX(ssl, ctx)) || !scope_connection(ssl, named ? name : 0))
  {
    *al = SSL_AD_INTERNAL_ERROR ;
    return SSL_CLIENT_HELLO_ERROR ;
  }
  return SSL_CLIENT_HELLO_SUCCESS ;
}

 /* Shares the default context's client-certificate verification. */
static int sni_trust (SSL_CTX *sni, SSL_CTX *dflt)
{
  STACK_OF(X509_NAME) *names = SSL_CTX_get_client_CA_list(dflt) ;
  SSL_CTX_set1_cert_store(sni, SSL_CTX_get_cert_store(dflt)) ;
  SSL_CTX_set_verify(sni, SSL_CTX_get_verify_mode(dflt), 0) ;
  SSL_CTX_set_verify_depth(sni, SSL_CTX_get_verify_depth(dflt)) ;
  if (names && sk_X509_NAME_num(names))
  {
    STACK_OF(X509_NAME) *copy = SSL_dup_CA_list(names) ;
    if (!copy) return 0 ;
    SSL_CTX_set_client_CA_list(sni, copy) ;
  }
  return 1 ;
}

void tlsctx_release (SSL_CTX *ctx, SSL *ssl)
{
  snitable *t = sni_index < 0 ? 0 : SSL_CTX_get_ex_data(ctx, sni_index) ;
  if (!t) return ;
  for (unsigned int i = 0 ; i < t->n ; i++)
    if (t->entry[i].ctx && t->entry[i].ctx != SSL_get_SSL_CTX(ssl))
    {
      SSL_CTX_free(t->entry[i].ctx) ;
      t->entry[i].ctx = 0 ;
    }
}

int tlsctx_has_sni (SSL_CTX *ctx)
{
  snitable *t = sni_index < 0 ? 0 : SSL_CTX_get_ex_data(ctx, sni_index) ;
  return t && t->n ;
}

static int sni_setup (SSL_CTX *ctx, char const *const *envp, tlsctx_config const *cfg, unsigned char const *id, char *err, size_t errlen)
{
  unsigned int n = 0 ;
  snitable *t ;
  for (size_t i = 0 ; envp[i] ; i++)
  {
    if (!strncmp(envp[i], "CERTFILE:", 9)) n++ ;
    else if (!strncmp(envp[i], "CERTFILE2:", 10))
    {
      /* a second pair for a name that has no first one would never be used */
      char kv[9 + 256] = "CERTFILE:" ;
      size_t namelen = strcspn(envp[i] + 10, "=") ;
      if (namelen >= 256) return fail(err, errlen, "invalid SNI variable", envp[i], "name too long") ;
      memcpy(kv + 9, envp[i] + 10, namelen) ;
      kv[9 + namelen] = 0 ;
      if (!envval(envp, kv)) return fail(err, errlen, "CERTFILE2 without CERTFILE for the same name", envp[i], "set CERTFILE:name too") ;
    }
  }
  if (!n) return 1 ;
  if (sni_index < 0) sni_index = SSL_CTX_get_ex_new_index(0, 0, 0, 0, &sni_free) ;
  t = OPENSSL_zalloc(sizeof(snitable) + n * sizeof(sniname)) ;
  if (sni_index < 0 || !t) return fail(err, errlen, "unable to set up SNI", 0, "out of memory") ;
  if (!SSL_CTX_set_ex_data(ctx, sni_index, t)) { OPENSSL_free(t) ; return fail(err, errlen, "unable to set up SNI", 0, log_tlserror()) ; }
  for (size_t i = 0 ; envp[i] ; i++)
  {
    char const *var = envp[i] ;
    size_t namelen = strcspn(var + 9, "=") ;
    sniname *e = &t->entry[t->n] ;
    char const *certfile = var + 9 + namelen + (var[9 + namelen] ? 1 : 0) ;
    char const *keyfile ;
    char kv[10 + sizeof(e->name)] ;
    unsigned char sid[SCOPE_LEN] ;
    if (strncmp(var, "CERTFILE:", 9)) continue ;
    if (!namelen || namelen >= sizeof(e->name) || !*certfile) return fail(err, errlen, "invalid SNI variable", var, "expected CERTFILE:name=file") ;
    memcpy(e->name, var + 9, namelen) ;
    e->name[namelen] = 0 ;
    memcpy(kv, "KEYFILE:", 8) ;
    memcpy(kv + 8, e->name, namelen + 1) ;
    keyfile = envval(envp, kv) ;
    if (!keyfile) keyfile = certfile ;
    e->ctx = SSL_CTX_new(TLS_server_method()) ;
    if (!e->ctx) return fail(err, errlen, "unable to create TLS context", 0, log_tlserror()) ;
    t->n++ ;
    if (!load_keypair(e->ctx, certfile, keyfile, cfg->password, err, errlen)) return 0 ;
    memcpy(kv, "CERTFILE2:", 10) ;
    memcpy(kv + 10, e->name, namelen + 1) ;
    certfile = envval(envp, kv) ;
    if (certfile)
    {
      memcpy(kv, "KEYFILE2:", 9) ;
      memcpy(kv + 9, e->name, namelen + 1) ;
      if (!load_second_pair(e->ctx, certfile, envval(envp, kv), cfg->password, err, errlen)) return 0 ;
    }
    if (!sni_trust(e->ctx, ctx)) return fail(err, errlen, "unable to set up SNI", e->name, log_tlserror()) ;
    for (size_t j = 0 ; j < namelen ; j++) if (e->name[j] >= 'A' && e->name[j] <= 'Z') e->name[j] += 32 ;
    tlsctx_sidctx(sid, id, SCOPE_LEN, e->name, namelen) ;
    if (!scope_ctx(e->ctx, sid)) return fail(err, errlen, "unable to set session id context", 0, log_tlserror()) ;
  }
  SSL_CTX_set_tlsext_servername_callback(ctx, &sni_cb) ;
  SSL_CTX_set_tlsext_servername_arg(ctx, t) ;
  SSL_CTX_set_client_hello_cb(ctx, &hello_cb, t) ;
  return 1 ;
}

 /* CRLFILE (PEM, any number of CRLs) and CRLDIR (hashed as by
    openssl rehash) for client certificates: the leaf is checked, so each
    CA that issues client certificates needs a current CRL. */
static int load_crls (SSL_CTX *ctx, char const *const *envp, char *err, size_t errlen)
{
  char const *file = envval(envp, "CRLFILE") ;
  char const *dir = envval(envp, "CRLDIR") ;
  X509_STORE *store = SSL_CTX_get_cert_store(ctx) ;
  if (!file && !dir) return 1 ;
  if (file)
  {
    X509_LOOKUP *lu = X509_STORE_add_lookup(store, X509_LOOKUP_file()) ;
    if (!lu || X509_load_crl_file(lu, file, X509_FILETYPE_PEM) <= 0)
      return fail(err, errlen, "unable to load CRLFILE", file, log_tlserror()) ;
  }
  if (dir)
  {
    X509_LOOKUP *lu = X509_STORE_add_lookup(store, X509_LOOKUP_hash_dir()) ;
    if (!lu || !X509_LOOKUP_add_dir(lu, dir, X509_FILETYPE_PEM))
      return fail(err, errlen, "unable to use CRLDIR", dir, log_tlserror()) ;
  }
  X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK) ;
  return 1 ;
}

static int setup (SSL_CTX *ctx, char const *const *envp, tlsctx_config const *cfg, char *err, size_t errlen)
{
  char const *certfile = envval(envp, "CERTFILE") ;
  char const *chainfile = envval(envp, "CERTCHAINFILE") ;
  char const *keyfile = envval(envp, "KEYFILE") ;
  char const *dhfile = envval(envp, "DHFILE") ;
  char const *s ;
  unsigned int clientcert = tlsctx_clientcert(envp, cfg->clientcert) ;
  unsigned int depth = TLSCTX_VERIFYDEPTH ;
  unsigned char id[SCOPE_LEN] ;

  if (!setup_protocol(ctx, envp, 0, err, errlen)) return 0 ;

  SSL_CTX_set_dh_auto(ctx, 1) ;
  if (dhfile && !load_dh(ctx, dhfile, err, errlen)) return 0 ;

  if (chainfile) certfile = chainfile ;
  else if (!certfile) return fail(err, errlen, "no certificate: CERTFILE is not set", 0, 0) ;
  if (!keyfile) keyfile = envval(envp, "CERTFILE") ? envval(envp, "CERTFILE") : certfile ;
  if (!load_keypair(ctx, certfile, keyfile, cfg->password, err, errlen)) return 0 ;
  s = envval(envp, "CERTFILE2") ;
  if (s && !load_second_pair(ctx, s, envval(envp, "KEYFILE2"), cfg->password, err, errlen)) return 0 ;
  else if (!s && envval(envp, "KEYFILE2")) return fail(err, errlen, "KEYFILE2 is set but CERTFILE2 is not", 0, 0) ;

  if (clientcert)
  {
    char const *cafile = envval(envp, "CAFILE") ;
    char const *cadir = envval(envp, "CADIR") ;
    char const *ccafile = envval(envp, "CCAFILE") ;
    s = envval(envp, "VERIFYDEPTH") ;
    if (s && !number_scan(s, 0, 100, &depth)) return fail(err, errlen, "invalid VERIFYDEPTH", s, "expected a number of certificates") ;
    /* CCAFILE alone: the CAs it names are also the ones to trust */
    if (!cafile && !cadir) cafile = ccafile ;
    if (!cafile && !cadir) return fail(err, errlen, "a client certificate is requested but neither CAFILE, CADIR nor CCAFILE is set", 0, 0) ;
    if (!SSL_CTX_load_verify_locations(ctx, cafile, cadir))
      return fail(err, errlen, "unable to load CA list", cafile ? cafile : cadir, log_tlserror()) ;
    if (!ccafile) ccafile = cafile ;
    if (ccafile)
    {
      STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ccafile) ;
      if (!names) return fail(err, errlen, "unable to load client CA list", ccafile, log_tlserror()) ;
      SSL_CTX_set_client_CA_list(ctx, names) ;
    }
    if (!load_crls(ctx, envp, err, errlen)) return 0 ;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE | (clientcert == TLSCTX_CLIENTCERT_REQUEST ? 0 : SSL_VERIFY_FAIL_IF_NO_PEER_CERT), 0) ;
    SSL_CTX_set_verify_depth(ctx, depth) ;
  }

  if (!scope_id(envp, cfg, clientcert, depth, id) || !scope_ctx(ctx, id))
    return fail(err, errlen, "unable to set session id context", 0, log_tlserror()) ;
  SSL_CTX_set_client_hello_cb(ctx, &hello_cb, 0) ;
  if (!sni_setup(ctx, envp, cfg, id, err, errlen)) return 0 ;
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF) ;
  if (!cfg->tickets)
  {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET) ;
    SSL_CTX_set_num_tickets(ctx, 0) ;
  }
  else if (!tickets_attach(ctx) || !scope_tickets(ctx)) return fail(err, errlen, "unable to set up session tickets", 0, log_tlserror()) ;
  return 1 ;
}

SSL_CTX *tlsctx_server (char const *const *envp, tlsctx_config const *cfg, char *err, size_t errlen)
{
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method()) ;
  if (!ctx) { fail(err, errlen, "unable to create TLS context", 0, log_tlserror()) ; return 0 ; }
  if (!setup(ctx, envp, cfg, err, errlen))
  {
    SSL_CTX_free(ctx) ;
    ERR_clear_error() ;
    return 0 ;
  }
  return ctx ;
}

int tlsctx_pair_load (char const *certfile, char const *keyfile, char const *password, char *err, size_t errlen)
{
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method()) ;
  int ok = ctx ? load_keypair(ctx, certfile, keyfile, password, err, errlen) : fail(err, errlen, "unable to create TLS context", 0, log_tlserror()) ;
  SSL_CTX_free(ctx) ;
  ERR_clear_error() ;
  return ok ;
}

STACK_OF(X509) *tlsctx_chain_read (char const *file, unsigned int max)
{
  size_t len = 0 ;
  char *buf = slurp(file, &len) ;
  BIO *bio = buf ? BIO_new_mem_buf(buf, len) : 0 ;
  STACK_OF(X509) *certs = bio ? sk_X509_new_null() : 0 ;
  X509 *x ;
  while (certs && (unsigned int)sk_X509_num(certs) < max && (x = PEM_read_bio_X509(bio, 0, 0, 0)))
    if (!sk_X509_push(certs, x)) { X509_free(x) ; break ; }
  BIO_free(bio) ;
  if (buf) OPENSSL_clear_free(buf, len + 1) ;
  ERR_clear_error() ;
  if (certs && !sk_X509_num(certs)) { sk_X509_free(certs) ; certs = 0 ; }
  return certs ;
}

static char pw[1024] ;

 /* Every block OpenSSL frees is wiped first: its decoders free copies of
    the private keys they parse (DER, octet strings) without wiping them,
    and every engine forked afterwards would inherit them. */
static void *mem_malloc (size_t n, char const *file, int line)
{
  (void)file ; (void)line ;
  return malloc(n) ;
}

static void mem_free (void *p, char const *file, int line)
{
  (void)file ; (void)line ;
  if (!p) return ;
  explicit_bzero(p, malloc_usable_size(p)) ;
  free(p) ;
}

static void *mem_realloc (void *p, size_t n, char const *file, int line)
{
  size_t old ;
  void *q ;
  if (!p) return malloc(n) ;
  if (!n) { mem_free(p, file, line) ; return 0 ; }
  old = malloc_usable_size(p) ;
  q = malloc(n) ;
  if (!q) return 0 ;
  memcpy(q, p, old < n ? old : n) ;
  mem_free(p, file, line) ;
  return q ;
}

void tlsctx_init (void)
{
  CRYPTO_set_mem_functions(&mem_malloc, &mem_realloc, &mem_free) ;
}

void tlsctx_forget_password (void)
{
  OPENSSL_cleanse(pw, sizeof(pw)) ;
}

char const *tlsctx_read_password (int fd, char const *from)
{
  size_t len = 0 ;
  for (;;)
  {
    ssize_t r = read(fd, pw + len, sizeof(pw) - 1 - len) ;
    if (r == -1) { if (errno == EINTR) continue ; dieu_sys(111, "read the key passphrase from ", from) ; }
    if (!r) break ;
    len += r ;
    if (memchr(pw, 0, len) || memchr(pw, '\n', len)) break ;
    if (len == sizeof(pw) - 1) die_x(111, "key passphrase too long") ;
  }
  close(fd) ;
  pw[len] = 0 ;
  pw[strcspn(pw, "\r\n")] = 0 ;
  return pw ;
}

SSL_CTX *tlsctx_client (char const *const *envp, tlsctx_client_config const *cfg, char *err, size_t errlen)
{
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method()) ;
  if (!ctx) { fail(err, errlen, "unable to create TLS context", 0, log_tlserror()) ; return 0 ; }
  if (!setup_protocol(ctx, envp, cfg->ciphers, err, errlen)) goto err ;
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF) ;
  if (cfg->certfile && !load_keypair(ctx, cfg->certfile, cfg->keyfile ? cfg->keyfile : cfg->certfile, cfg->password, err, errlen))
    goto err ;
  if (cfg->verify)
  {
    if (cfg->cafile || cfg->cadir)
    {
      if (!SSL_CTX_load_verify_locations(ctx, cfg->cafile, cfg->cadir))
      { fail(err, errlen, "unable to load CA list", cfg->cafile ? cfg->cafile : cfg->cadir, log_tlserror()) ; goto err ; }
    }
    else if (!SSL_CTX_set_default_verify_paths(ctx))
    { fail(err, errlen, "unable to load the system's trusted certificates", 0, log_tlserror()) ; goto err ; }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, 0) ;
    SSL_CTX_set_verify_depth(ctx, cfg->depth) ;
  }
  else SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, 0) ;
  return ctx ;
 err:
  SSL_CTX_free(ctx) ;
  ERR_clear_error() ;
  return 0 ;
}

void tlsctx_sidctx (unsigned char *out, void const *base, size_t baselen, char const *s, size_t len)
{
  EVP_MD_CTX *md = EVP_MD_CTX_new() ;
  unsigned int outlen = 32 ;
  if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), 0) || !EVP_DigestUpdate(md, base, baselen)
   || !EVP_DigestUpdate(md, s, len) || !EVP_DigestFinal_ex(md, out, &outlen))
    dieu_tls(111, "compute the session id context") ;
  EVP_MD_CTX_free(md) ;
}

 /* One handshake in memory per protocol version, client and server in this
    process. OpenSSL 3 looks algorithms up by name and fills its caches on
    first use; done here, before the engines are forked, each engine starts
    with them warm instead of repeating the lookups (and copying the pages
    they write). Failures are harmless: the engines just start cold. */
static void warm_one (SSL_CTX *server, int version)
{
  SSL_CTX *cctx = SSL_CTX_new(TLS_client_method()) ;
  SSL *c = 0, *sv = 0 ;
  BIO *cb = 0, *sb = 0 ;
  char buf[16] ;
  if (!cctx) goto end ;
  SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, 0) ;
  if (!SSL_CTX_set_min_proto_version(cctx, version) || !SSL_CTX_set_max_proto_version(cctx, version)) goto end ;
  c = SSL_new(cctx) ;
  sv = SSL_new(server) ;
  if (!c || !sv || !BIO_new_bio_pair(&cb, 0, &sb, 0)) goto end ;
  offer_watch(sv, 0) ;   /* its ex_data index: registered once, here */
  SSL_set_bio(c, cb, cb) ;
  SSL_set_bio(sv, sb, sb) ;
  cb = sb = 0 ;
  SSL_set_connect_state(c) ;
  SSL_set_accept_state(sv) ;
  for (unsigned int i = 0 ; i < 20 ; i++)
  {
    int rc = SSL_do_handshake(c), rs = SSL_do_handshake(sv) ;
    if (rc == 1 && rs == 1) break ;
  }
  if (SSL_write(c, "warm", 4) == 4) SSL_read(sv, buf, sizeof(buf)) ;
  if (SSL_write(sv, "warm", 4) == 4) SSL_read(c, buf, sizeof(buf)) ;
 end:
  SSL_free(c) ;
  SSL_free(sv) ;
  BIO_free(cb) ;
  BIO_free(sb) ;
  SSL_CTX_free(cctx) ;
  ERR_clear_error() ;
}

void tlsctx_warmup (SSL_CTX *server)
{
  warm_one(server, TLS1_3_VERSION) ;
  warm_one(server, TLS1_2_VERSION) ;
}
