/* ISC license. */

#include <string.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>

#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "number.h"
#include "tlsenv.h"

static int add (stralloc *sa, char const *prefix, char const *name, char const *value, size_t len, int multiline)
{
  if (!value) return 1 ;
  if (memchr(value, 0, len) || (!multiline && memchr(value, '\n', len))) return 1 ;
  return stralloc_cats(sa, prefix) && stralloc_cats(sa, name) && stralloc_catb(sa, "=", 1)
      && stralloc_catb(sa, value, len) && stralloc_0(sa) ;
}

static int adds (stralloc *sa, char const *prefix, char const *name, char const *value)
{
  return value ? add(sa, prefix, name, value, strlen(value), 0) : 1 ;
}

static int addnum (stralloc *sa, char const *prefix, char const *name, unsigned int n)
{
  char fmt[UINT_FMT] ;
  return add(sa, prefix, name, fmt, uint_fmt(fmt, n), 0) ;
}

static int addhex (stralloc *sa, char const *prefix, char const *name, unsigned char const *s, size_t len, int upper)
{
  char hex[2 * len + 1] ;
  return add(sa, prefix, name, hex, number_hex(hex, s, len, upper), 0) ;
}

 /* Writes what a BIO printer produced; an empty output adds nothing. */
static int addbio (stralloc *sa, char const *prefix, char const *name, BIO *bio, int multiline)
{
  char *p ;
  long len = BIO_get_mem_data(bio, &p) ;
  int r = len > 0 ? add(sa, prefix, name, p, len, multiline) : 1 ;
  BIO_free(bio) ;
  return r ;
}

static int addtime (stralloc *sa, char const *prefix, char const *name, ASN1_TIME const *t)
{
  BIO *bio = BIO_new(BIO_s_mem()) ;
  if (!bio) return 0 ;
  if (!ASN1_TIME_print(bio, t)) { BIO_free(bio) ; return 1 ; }
  return addbio(sa, prefix, name, bio, 0) ;
}

static int addpem (stralloc *sa, char const *prefix, char const *name, X509 *cert)
{
  BIO *bio = BIO_new(BIO_s_mem()) ;
  if (!bio) return 0 ;
  if (!PEM_write_bio_X509(bio, cert)) { BIO_free(bio) ; return 1 ; }
  return addbio(sa, prefix, name, bio, 1) ;
}

static int adddn (stralloc *sa, char const *prefix, char const *name, X509_NAME const *dn)
{
  static struct { int nid ; char const *suffix ; } const parts[] =
  {
    { NID_countryName, "_C" }, { NID_stateOrProvinceName, "_ST" }, { NID_localityName, "_L" },
    { NID_organizationName, "_O" }, { NID_organizationalUnitName, "_OU" }, { NID_commonName, "_CN" },
    { NID_title, "_T" }, { NID_initials, "_I" }, { NID_givenName, "_G" }, { NID_surname, "_S" },
    { NID_description, "_D" }, { NID_userId, "_UID" }, { NID_pkcs9_emailAddress, "_Email" },
  } ;
  size_t namelen = strlen(name) ;
  char *line = X509_NAME_oneline(dn, 0, 0) ;
  int r = line ? adds(sa, prefix, name, line) : 1 ;
  OPENSSL_free(line) ;
  if (!r) return 0 ;
  for (size_t i = 0 ; i < sizeof(parts) / sizeof(parts[0]) ; i++)
  {
    int pos = -1 ;
    unsigned int n = 0 ;
    while ((pos = X509_NAME_get_index_by_NID(dn, parts[i].nid, pos)) >= 0)
    {
      size_t sufflen = strlen(parts[i].suffix) ;
      char full[namelen + sufflen + 1 + UINT_FMT + 1] ;
      unsigned char *utf8 ;
      int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(dn, pos))) ;
      if (len < 0) continue ;
      memcpy(full, name, namelen) ;
      memcpy(full + namelen, parts[i].suffix, sufflen) ;
      if (n)
      {
        full[namelen + sufflen] = '_' ;
        full[namelen + sufflen + 1 + uint_fmt(full + namelen + sufflen + 1, n)] = 0 ;
      }
      else full[namelen + sufflen] = 0 ;
      r = add(sa, prefix, full, (char *)utf8, len, 0) ;
      OPENSSL_free(utf8) ;
      if (!r) return 0 ;
      n++ ;
    }
  }
  return 1 ;
}

static int addsan (stralloc *sa, char const *prefix, X509 *cert)
{
  GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, 0, 0) ;
  unsigned int ndns = 0, nemail = 0 ;
  int r = 1 ;
  if (!names) return 1 ;
  for (int i = 0 ; r && i < sk_GENERAL_NAME_num(names) ; i++)
  {
    GENERAL_NAME const *gn = sk_GENERAL_NAME_value(names, i) ;
    char name[16 + UINT_FMT] ;
    unsigned int *n ;
    size_t len ;
    if (gn->type == GEN_DNS) { memcpy(name, "SAN_DNS_", 8) ; len = 8 ; n = &ndns ; }
    else if (gn->type == GEN_EMAIL) { memcpy(name, "SAN_Email_", 10) ; len = 10 ; n = &nemail ; }
    else continue ;
    name[len + uint_fmt(name + len, (*n)++)] = 0 ;
    r = add(sa, prefix, name, (char const *)ASN1_STRING_get0_data(gn->d.ia5), ASN1_STRING_length(gn->d.ia5), 0) ;
  }
  GENERAL_NAMES_free(names) ;
  return r ;
}

static int addcert (stralloc *sa, char const *prefix, X509 *cert)
{
  char const *s ;
  int nid ;
  ASN1_OBJECT *alg ;
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), 0) ;
  char *serial = bn ? BN_bn2dec(bn) : 0 ;
  int r = addnum(sa, prefix, "M_VERSION", X509_get_version(cert) + 1)
       && adds(sa, prefix, "M_SERIAL", serial) ;
  OPENSSL_free(serial) ;
  BN_free(bn) ;
  if (!r) return 0 ;
  if (!adddn(sa, prefix, "S_DN", X509_get_subject_name(cert))) return 0 ;
  if (!adddn(sa, prefix, "I_DN", X509_get_issuer_name(cert))) return 0 ;
  if (!addtime(sa, prefix, "V_START", X509_get0_notBefore(cert))) return 0 ;
  if (!addtime(sa, prefix, "V_END", X509_get0_notAfter(cert))) return 0 ;
  nid = X509_get_signature_nid(cert) ;
  s = nid == NID_undef ? "UNKNOWN" : OBJ_nid2ln(nid) ;
  if (!adds(sa, prefix, "A_SIG", s ? s : "UNKNOWN")) return 0 ;
  X509_PUBKEY_get0_param(&alg, 0, 0, 0, X509_get_X509_PUBKEY(cert)) ;
  nid = OBJ_obj2nid(alg) ;
  s = nid == NID_undef ? "UNKNOWN" : OBJ_nid2ln(nid) ;
  if (!adds(sa, prefix, "A_KEY", s ? s : "UNKNOWN")) return 0 ;
  if (!addsan(sa, prefix, cert)) return 0 ;
  return addpem(sa, prefix, "CERT", cert) ;
}

 /* The peer's chain without its leaf: the server-side list never holds the
    leaf, the client-side list starts with it. */
static int addchain (stralloc *sa, char const *prefix, STACK_OF(X509) *chain, X509 *leaf)
{
  unsigned int n = 0 ;
  for (int i = 0 ; i < sk_X509_num(chain) ; i++)
  {
    X509 *c = sk_X509_value(chain, i) ;
    char name[11 + UINT_FMT] = "CERT_CHAIN_" ;
    if (!X509_cmp(c, leaf)) continue ;
    name[11 + uint_fmt(name + 11, n++)] = 0 ;
    if (!addpem(sa, prefix, name, c)) return 0 ;
  }
  return 1 ;
}

static int addsession (stralloc *sa, SSL *ssl)
{
  SSL_CIPHER const *cipher = SSL_get_current_cipher(ssl) ;
  SSL_SESSION *sess = SSL_get_session(ssl) ;
  char const *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) ;
  int alg = 0, use = SSL_CIPHER_get_bits(cipher, &alg) ;
  unsigned int idlen = 0 ;
  unsigned char const *id = sess ? SSL_SESSION_get_id(sess, &idlen) : 0 ;
  return adds(sa, "", "SSL_PROTOCOL", SSL_get_version(ssl))
      && (!idlen || addhex(sa, "", "SSL_SESSION_ID", id, idlen, 0))
      && adds(sa, "", "SSL_SESSION_RESUMED", SSL_session_reused(ssl) ? "Resumed" : "Initial")
      && adds(sa, "", "SSL_CIPHER", SSL_CIPHER_get_name(cipher))
      && adds(sa, "", "SSL_CIPHER_EXPORT", use < 56 ? "true" : "false")
      && addnum(sa, "", "SSL_CIPHER_USEKEYSIZE", use)
      && addnum(sa, "", "SSL_CIPHER_ALGKEYSIZE", alg)
      && adds(sa, "", "SSL_TLS_SNI", sni)
      && adds(sa, "", "SSL_TLS_SNI_SERVERNAME", sni)
      && adds(sa, "", "SSL_VERSION_INTERFACE", TLSENV_INTERFACE)
      && adds(sa, "", "SSL_VERSION_LIBRARY", OpenSSL_version(OPENSSL_VERSION)) ;
}

 /* The s6-networking names, so that programs written for s6-tlsd work. */
static int addpeer (stralloc *sa, X509 *peer)
{
  unsigned char md[EVP_MAX_MD_SIZE] ;
  unsigned int mdlen = 0 ;
  char hash[7 + 2 * EVP_MAX_MD_SIZE + 1] = "SHA256:" ;
  char *subject ;
  int r ;
  if (!X509_digest(peer, EVP_sha256(), md, &mdlen)) return 1 ;
  hash[7 + number_hex(hash + 7, md, mdlen, 0)] = 0 ;
  subject = X509_NAME_oneline(X509_get_subject_name(peer), 0, 0) ;
  r = adds(sa, "", "SSL_PEER_CERT_HASH", hash) && adds(sa, "", "SSL_PEER_CERT_SUBJECT", subject) ;
  OPENSSL_free(subject) ;
  return r ;
}

static int addverify (stralloc *sa, SSL *ssl, X509 *peer)
{
  long v ;
  if (!peer) return adds(sa, "", "SSL_CLIENT_VERIFY", "NONE") ;
  v = SSL_get_verify_result(ssl) ;
  if (v == X509_V_OK) return adds(sa, "", "SSL_CLIENT_VERIFY", "SUCCESS") ;
  {
    char const *reason = X509_verify_cert_error_string(v) ;
    size_t len = strlen(reason) ;
    char buf[7 + len + 1] ;
    memcpy(buf, "FAILED:", 7) ;
    memcpy(buf + 7, reason, len + 1) ;
    return adds(sa, "", "SSL_CLIENT_VERIFY", buf) ;
  }
}

int tlsenv_server (stralloc *sa, SSL *ssl)
{
  X509 *own = SSL_get_certificate(ssl) ;
  X509 *peer = SSL_get1_peer_certificate(ssl) ;
  int r = addsession(sa, ssl) && addverify(sa, ssl, peer)
       && (!own || addcert(sa, "SSL_SERVER_", own))
       && (!peer || (addcert(sa, "SSL_CLIENT_", peer)
                     && addchain(sa, "SSL_CLIENT_", SSL_get_peer_cert_chain(ssl), peer)
                     && addpeer(sa, peer))) ;
  X509_free(peer) ;
  return r ;
}

int tlsenv_client (stralloc *sa, SSL *ssl)
{
  X509 *own = SSL_get_certificate(ssl) ;
  X509 *peer = SSL_get1_peer_certificate(ssl) ;
  int r = addsession(sa, ssl)
       && (!peer || (addcert(sa, "SSL_SERVER_", peer)
                     && addchain(sa, "SSL_SERVER_", SSL_get_peer_cert_chain(ssl), peer)
                     && addpeer(sa, peer)))
       && (!own || addcert(sa, "SSL_CLIENT_", own)) ;
  X509_free(peer) ;
  return r ;
}

void tlsenv_wipe (stralloc *sa)
{
  if (sa->s) OPENSSL_cleanse(sa->s, sa->a) ;
  stralloc_free(sa) ;
}
