/* ISC license. */

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/cdb.h>
#include <skalibs/env.h>
#include <skalibs/genalloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "check.h"
#include "connection.h"
#include "log.h"
#include "number.h"
#include "rules.h"
#include "tickets.h"

#define CHECK_LINE_MAX 2048
#define CHAIN_MAX 16        /* certificates read from one file */
#define TLSA_DATA_MAX 8192  /* bytes of one record's data: 3 0 0 holds a whole certificate */
#define NAMES_SHOWN 8

typedef struct check_s check ;
struct check_s
{
  check_options const *o ;
  unsigned int problems ;
  unsigned int days ;       /* CHECKDAYS */
  int loaded ;              /* the server's own pairs loaded */
} ;

 /* The kinds of pairs a context holds, each also as CERT:name (SNI):
    a new kind of pair is one more line. */
typedef struct pairvars_s pairvars ;
struct pairvars_s
{
  char const *cert ;
  char const *key ;
} ;
static pairvars const pairkinds[] =
{
  { "CERTFILE", "KEYFILE" },
  { "CERTFILE2", "KEYFILE2" },
  { 0, 0 }
} ;

static char const *envval (char const *const *envp, char const *name)
{
  char const *s = env_get2(envp, name) ;
  return s && *s ? s : 0 ;
}

 /* Control characters (a newline in a subject) would break the line. */
static void emit (check *c, int problem, char const *fmt, va_list ap)
{
  char line[CHECK_LINE_MAX] ;
  if (vsnprintf(line, sizeof(line), fmt, ap) < 0) return ;
  for (char *p = line ; *p ; p++) if ((unsigned char)*p < 32 || *p == 127) *p = '?' ;
  if (problem)
  {
    c->problems++ ;
    if (c->o->mode == CHECK_MODE_RELOAD) log_warn("check: ", line) ;
    else log_line("fatal: (111) check: ", line) ;
  }
  else if (c->o->mode == CHECK_MODE_RELOAD) log_status("check: ", line) ;
  else if (verbosity)
  {
    char out[CHECK_LINE_MAX + 64] ;
    int n = snprintf(out, sizeof(out), "%s: check: %s\n", PROG, line) ;
    if (n > 0) allwrite(1, out, (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1) ;
  }
}

static void problem (check *c, char const *fmt, ...) __attribute__((format(printf, 2, 3))) ;
static void problem (check *c, char const *fmt, ...)
{
  va_list ap ;
  va_start(ap, fmt) ;
  emit(c, 1, fmt, ap) ;
  va_end(ap) ;
}

static void okline (check *c, char const *fmt, ...) __attribute__((format(printf, 2, 3))) ;
static void okline (check *c, char const *fmt, ...)
{
  va_list ap ;
  va_start(ap, fmt) ;
  emit(c, 0, fmt, ap) ;
  va_end(ap) ;
}

 /* "CN=name", or the whole name when it has no CN. */
static char const *name_of (X509_NAME *n, char *buf, size_t len)
{
  char cn[256] ;
  if (X509_NAME_get_text_by_NID(n, NID_commonName, cn, sizeof(cn)) > 0) snprintf(buf, len, "CN=%s", cn) ;
  else X509_NAME_oneline(n, buf, (int)len) ;
  return buf ;
}

static char const *subject_of (X509 *x, char *buf, size_t len)
{
  return name_of(X509_get_subject_name(x), buf, len) ;
}

 /* The DNS names of x's subjectAltName, comma-separated, the first few. */
static char const *names_of (X509 *x, char *buf, size_t len)
{
  GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, 0, 0) ;
  size_t w = 0 ;
  int count = 0 ;
  buf[0] = 0 ;
  for (int i = 0 ; gens && i < sk_GENERAL_NAME_num(gens) ; i++)
  {
    GENERAL_NAME const *g = sk_GENERAL_NAME_value(gens, i) ;
    if (g->type != GEN_DNS) continue ;
    if (count++ < NAMES_SHOWN && w < len)
      w += snprintf(buf + w, len - w, "%s%.*s", w ? "," : "", ASN1_STRING_length(g->d.dNSName), (char const *)ASN1_STRING_get0_data(g->d.dNSName)) ;
  }
  GENERAL_NAMES_free(gens) ;
  if (count > NAMES_SHOWN && w < len) snprintf(buf + w, len - w, " and %d more", count - NAMES_SHOWN) ;
  if (!count) snprintf(buf, len, "(none)") ;
  return buf ;
}

static void date_of (ASN1_TIME const *t, char *buf, size_t len)
{
  struct tm tm ;
  if (!ASN1_TIME_to_tm(t, &tm) || !strftime(buf, len, "%Y-%m-%d", &tm)) snprintf(buf, len, "?") ;
}

 /* x is valid now and for c->days days more; else a problem line naming
    it as which. *left: the whole days left. */
static int check_dates (check *c, char const *label, char const *which, X509 *x, int *left, char *date, size_t datelen)
{
  int day, sec ;
  date_of(X509_get0_notAfter(x), date, datelen) ;
  *left = 0 ;
  if (!ASN1_TIME_diff(&day, &sec, 0, X509_get0_notBefore(x)) || day > 0 || sec > 0)
  {
    char from[32] ;
    date_of(X509_get0_notBefore(x), from, sizeof(from)) ;
    problem(c, "%s: %s is not valid before %s", label, which, from) ;
    return 0 ;
  }
  if (!ASN1_TIME_diff(&day, &sec, 0, X509_get0_notAfter(x)) || day < 0 || sec < 0)
  {
    problem(c, "%s: %s has expired (%s): renew it", label, which, date) ;
    return 0 ;
  }
  *left = day ;
  if ((unsigned int)day < c->days)
  {
    problem(c, "%s: %s expires in %d days (%s), within CHECKDAYS=%u: renew it", label, which, day, date, c->days) ;
    return 0 ;
  }
  return 1 ;
}

 /* Each certificate after the first is the issuer of the one before. */
static void check_order (check *c, char const *label, STACK_OF(X509) *certs)
{
  for (int i = 1 ; i < sk_X509_num(certs) ; i++)
    if (X509_check_issued(sk_X509_value(certs, i), sk_X509_value(certs, i - 1)) != X509_V_OK)
    {
      char a[300], b[300] ;
      problem(c, "%s: chain out of order: certificate %d (%s) is not the issuer of certificate %d (%s): put each issuer right after the certificate it signed",
              label, i + 1, subject_of(sk_X509_value(certs, i), a, sizeof(a)), i, subject_of(sk_X509_value(certs, i - 1), b, sizeof(b))) ;
      return ;
    }
}

 /* Builds the chain from the leaf, with the file's other certificates as
    untrusted and CAFILE/CADIR and the system's store as trusted; dates
    are checked certificate by certificate. */
static int check_chain (check *c, char const *const *envp, char const *label, STACK_OF(X509) *certs, char *summary, size_t len)
{
  char const *cafile = envval(envp, "CAFILE") ;
  char const *cadir = envval(envp, "CADIR") ;
  X509_STORE *store = X509_STORE_new() ;
  X509_STORE_CTX *xs = X509_STORE_CTX_new() ;
  int ok = 0 ;
  if (!store || !xs || !X509_STORE_set_default_paths(store))
  {
    problem(c, "%s: unable to set up a certificate store: %s", label, log_tlserror()) ;
    goto end ;
  }
  if (cafile && !X509_STORE_load_file(store, cafile)) { problem(c, "%s: unable to load CAFILE %s: %s", label, cafile, log_tlserror()) ; goto end ; }
  if (cadir && !X509_STORE_load_path(store, cadir)) { problem(c, "%s: unable to use CADIR %s: %s", label, cadir, log_tlserror()) ; goto end ; }
  if (!X509_STORE_CTX_init(xs, store, sk_X509_value(certs, 0), certs))
  {
    problem(c, "%s: unable to verify the chain: %s", label, log_tlserror()) ;
    goto end ;
  }
  X509_STORE_CTX_set_flags(xs, X509_V_FLAG_NO_CHECK_TIME) ;
  X509_STORE_CTX_set_purpose(xs, X509_PURPOSE_SSL_SERVER) ;
  if (X509_verify_cert(xs) != 1)
  {
    int e = X509_STORE_CTX_get_error(xs) ;
    X509 *at = X509_STORE_CTX_get_current_cert(xs) ;
    char subj[300] = "?", iss[300] = "?", trust[600] ;
    if (at) { subject_of(at, subj, sizeof(subj)) ; name_of(X509_get_issuer_name(at), iss, sizeof(iss)) ; }
    snprintf(trust, sizeof(trust), "%s%s%s%s%sthe system's store", cafile ? "CAFILE " : "", cafile ? cafile : "", cadir ? (cafile ? ", CADIR " : "CADIR ") : "", cadir ? cadir : "", cafile || cadir ? " or " : "") ;
    if (e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT)
      problem(c, "%s: chain incomplete: the issuer of %s (%s) is neither in the file nor in %s: append the intermediate CA's certificate",
              label, subj, iss, trust) ;
    else problem(c, "%s: chain does not verify at %s: %s (trusted: %s)", label, subj, X509_verify_cert_error_string(e), trust) ;
    goto end ;
  }
  {
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(xs) ;
    int n = sk_X509_num(chain), good = 1 ;
    char root[300] ;
    for (int i = 1 ; i < n ; i++)
    {
      char which[340], subj[300], date[32] ;
      int left ;
      snprintf(which, sizeof(which), "its CA certificate %s", subject_of(sk_X509_value(chain, i), subj, sizeof(subj))) ;
      if (!check_dates(c, label, which, sk_X509_value(chain, i), &left, date, sizeof(date))) good = 0 ;
    }
    snprintf(summary, len, "chain complete (%d certificates, root %s)", n, subject_of(sk_X509_value(chain, n - 1), root, sizeof(root))) ;
    ok = good ;
  }
 end:
  X509_STORE_CTX_free(xs) ;
  X509_STORE_free(store) ;
  ERR_clear_error() ;
  return ok ;
}

typedef struct tlsa_s tlsa ;
struct tlsa_s
{
  unsigned int usage ;
  unsigned int selector ;
  unsigned int matching ;
  size_t len ;
  unsigned char data[TLSA_DATA_MAX] ;
} ;

static int hexval (char ch)
{
  return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1 ;
}

 /* One record, "usage selector matching hex", of the len bytes at s
    (spaces around each field). 1, or 0 and why. */
static int tlsa_parse (char const *s, size_t len, tlsa *t, char *why, size_t whylen)
{
  unsigned int f[3] ;
  size_t i = 0, start, n ;
  for (unsigned int k = 0 ; k < 3 ; k++)
  {
    while (i < len && s[i] == ' ') i++ ;
    start = i ;
    while (i < len && s[i] >= '0' && s[i] <= '9') i++ ;
    if (!number_scanb(s + start, i - start, 0, 255, &f[k]) || i >= len || s[i] != ' ')
    {
      snprintf(why, whylen, "expected \"usage selector matching-type hex\"") ;
      return 0 ;
    }
  }
  while (i < len && s[i] == ' ') i++ ;
  start = i ;
  while (i < len && s[i] != ' ') i++ ;
  n = i - start ;
  while (i < len && s[i] == ' ') i++ ;
  if (i < len || !n || n & 1 || n / 2 > TLSA_DATA_MAX)
  {
    snprintf(why, whylen, "the data is not one even-length string of hex digits") ;
    return 0 ;
  }
  for (size_t j = 0 ; j < n ; j += 2)
  {
    int hi = hexval(s[start + j]), lo = hexval(s[start + j + 1]) ;
    if (hi < 0 || lo < 0) { snprintf(why, whylen, "the data is not one even-length string of hex digits") ; return 0 ; }
    t->data[j / 2] = (unsigned char)(hi << 4 | lo) ;
  }
  t->len = n / 2 ;
  t->usage = f[0] ; t->selector = f[1] ; t->matching = f[2] ;
  if (t->usage != 2 && t->usage != 3) { snprintf(why, whylen, "usage %u: only 2 (DANE-TA) and 3 (DANE-EE) are used for mail (RFC 7672)", t->usage) ; return 0 ; }
  if (t->selector > 1) { snprintf(why, whylen, "selector %u: expected 0 (certificate) or 1 (public key)", t->selector) ; return 0 ; }
  if (t->matching > 2) { snprintf(why, whylen, "matching type %u: expected 0 (full), 1 (SHA-256) or 2 (SHA-512)", t->matching) ; return 0 ; }
  if ((t->matching == 1 && t->len != 32) || (t->matching == 2 && t->len != 64))
  {
    snprintf(why, whylen, "a SHA-%s digest is %u hex digits, not %zu", t->matching == 1 ? "256" : "512", t->matching == 1 ? 64 : 128, n) ;
    return 0 ;
  }
  return 1 ;
}

 /* What a record with t's selector and matching type holds for x. */
static size_t tlsa_of (X509 *x, unsigned int selector, unsigned int matching, unsigned char *out)
{
  unsigned char *der = 0 ;
  unsigned int mdlen = 0 ;
  size_t n = 0 ;
  int len = selector ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der) : i2d_X509(x, &der) ;
  if (len <= 0) return 0 ;
  if (!matching) { if ((size_t)len <= TLSA_DATA_MAX) { memcpy(out, der, len) ; n = len ; } }
  else if (EVP_Digest(der, len, out, &mdlen, matching == 1 ? EVP_sha256() : EVP_sha512(), 0)) n = mdlen ;
  OPENSSL_free(der) ;
  return n ;
}

 /* Calls f for each comma-separated record of value; stops when it
    returns nonzero and returns that. */
static int tlsa_each (char const *value, int (*f)(void *, unsigned int, char const *, size_t), void *data)
{
  unsigned int k = 0 ;
  for (char const *s = value ; ; )
  {
    size_t n = strcspn(s, ","), skip = strspn(s, " ") ;
    int r ;
    if (skip > n) skip = n ;
    r = f(data, ++k, s + skip, n - skip) ;
    if (r) return r ;
    if (!s[n]) return 0 ;
    s += n + 1 ;
  }
}

typedef struct tlsa_checking_s tlsa_checking ;
struct tlsa_checking_s
{
  check *c ;
  char const *var ;
  STACK_OF(X509) *certs ;
  unsigned int wellformed ;
  tlsa t ;
} ;

static int tlsa_report_malformed (void *data, unsigned int k, char const *s, size_t n)
{
  tlsa_checking *tc = data ;
  char why[160] ;
  if (!tlsa_parse(s, n, &tc->t, why, sizeof(why)))
    problem(tc->c, "%s: record %u (\"%.*s\") is malformed: %s", tc->var, k, (int)(n > 80 ? 80 : n), s, why) ;
  return 0 ;
}

 /* The record matches: 3 against the leaf, 2 against a CA certificate
    the server sends (a DANE client has nothing else to match it with). */
static int tlsa_match (void *data, unsigned int k, char const *s, size_t n)
{
  tlsa_checking *tc = data ;
  unsigned char mine[TLSA_DATA_MAX] ;
  char why[160] ;
  (void)k ;
  if (!tlsa_parse(s, n, &tc->t, why, sizeof(why))) return 0 ;
  tc->wellformed++ ;
  for (int i = tc->t.usage == 3 ? 0 : 1 ; i < (tc->t.usage == 3 ? 1 : sk_X509_num(tc->certs)) ; i++)
  {
    size_t len = tlsa_of(sk_X509_value(tc->certs, i), tc->t.selector, tc->t.matching, mine) ;
    if (len && len == tc->t.len && !memcmp(mine, tc->t.data, len)) return 1 ;
  }
  return 0 ;
}

 /* Malformed records are problems once, whichever pairs they are for. */
static void check_tlsa_values (check *c, char const *const *envp)
{
  for (size_t i = 0 ; envp[i] ; i++)
  {
    char var[300] ;
    size_t n = strcspn(envp[i], "=") ;
    tlsa_checking tc = { .c = c, .var = var } ;
    if (strncmp(envp[i], "TLSA", 4) || (n != 4 && envp[i][4] != ':') || !envp[i][n] || !envp[i][n + 1]) continue ;
    snprintf(var, sizeof(var), "%.*s", (int)n, envp[i]) ;
    tlsa_each(envp[i] + n + 1, &tlsa_report_malformed, &tc) ;
  }
}

 /* 1 if no record is given, none is well-formed, or one matches (in
    summary); else a problem line with the record to publish. */
static int check_tlsa (check *c, char const *label, char const *var, char const *value, STACK_OF(X509) *certs, char *summary, size_t len)
{
  tlsa_checking tc = { .c = c, .var = var, .certs = certs } ;
  unsigned char spki[32] ;
  char hex[65] ;
  summary[0] = 0 ;
  if (!value) return 1 ;
  if (tlsa_each(value, &tlsa_match, &tc))
  {
    snprintf(summary, len, ", TLSA %u %u %u matches", tc.t.usage, tc.t.selector, tc.t.matching) ;
    return 1 ;
  }
  if (!tc.wellformed) return 1 ;
  if (tlsa_of(sk_X509_value(certs, 0), 1, 1, spki) != 32) hex[0] = 0 ;
  else hex[number_hex(hex, spki, 32, 0)] = 0 ;
  problem(c, "%s: no record of %s matches: this certificate's key is \"3 1 1 %s\"", label, var, hex) ;
  return 0 ;
}

 /* One pair: label names it ("CERTFILE FILE", with the rule's key for a
    rule's), name is the name it must cover (why: "-l", "SNI"), or 0.
    Returns 0 if it could not be loaded at all. */
static int check_pair (check *c, char const *const *envp, char const *label, char const *certfile, char const *keyfile,
                       char const *name, char const *why, char const *tlsavar)
{
  char err[1024], cn[300], names[600], date[32], chain[400] = "", tlsasum[64] = "" ;
  unsigned int before = c->problems ;
  STACK_OF(X509) *certs ;
  X509 *leaf ;
  int left ;
  if (!tlsctx_pair_load(certfile, keyfile, c->o->cfg->password, err, sizeof(err)))
  {
    problem(c, "%s: %s", label, err) ;
    return 0 ;
  }
  certs = tlsctx_chain_read(certfile, CHAIN_MAX) ;
  if (!certs) { problem(c, "%s: unable to read its certificates", label) ; return 0 ; }
  leaf = sk_X509_value(certs, 0) ;
  subject_of(leaf, cn, sizeof(cn)) ;
  names_of(leaf, names, sizeof(names)) ;
  check_dates(c, label, "the certificate", leaf, &left, date, sizeof(date)) ;
  if (name)
  {
    char probe[300] ;
    char const *host = name ;
    /* a wildcard SNI entry serves every name under it */
    if (name[0] == '*' && name[1] == '.') { snprintf(probe, sizeof(probe), "sslsuite-check%s", name + 1) ; host = probe ; }
    if (X509_check_host(leaf, host, 0, 0, 0) != 1)
      problem(c, "%s: the certificate does not cover %s (%s): its names are %s", label, name, why, names) ;
  }
  check_order(c, label, certs) ;
  check_chain(c, envp, label, certs, chain, sizeof(chain)) ;
  check_tlsa(c, label, tlsavar, envval(envp, tlsavar), certs, tlsasum, sizeof(tlsasum)) ;
  if (c->problems == before)
    okline(c, "%s: ok: %s, names %s, expires in %d days (%s), key matches, %s%s", label, cn, names, left, date, chain, tlsasum) ;
  sk_X509_pop_free(certs, X509_free) ;
  return 1 ;
}

 /* The rule sets var (with name: var:name). */
static int rule_sets (rules_result const *r, char const *var, char const *name)
{
  size_t vlen = strlen(var), nlen = name ? strlen(name) : 0 ;
  for (size_t i = 0 ; i < r->env.len ; i += strlen(r->env.s + i) + 1)
  {
    char const *s = r->env.s + i ;
    if (strncmp(s, var, vlen)) continue ;
    s += vlen ;
    if (name && (*s != ':' || strncmp(s + 1, name, nlen))) continue ;
    if (name) s += 1 + nlen ;
    if (*s == '=') return 1 ;
  }
  return 0 ;
}

static int rule_sets_any (rules_result const *r, unsigned int flags)
{
  for (size_t i = 0 ; i < r->env.len ; i += strlen(r->env.s + i) + 1)
    if (tlsctx_var_has(r->env.s + i, flags)) return 1 ;
  return 0 ;
}

 /* The pairs of envp, the way tlsctx.c reads them; with a rule r, those
    it sets a variable of, labelled with prefix. 0 if one did not load. */
static int check_pairs (check *c, char const *const *envp, rules_result const *r, char const *prefix)
{
  int loaded = 1 ;
  for (pairvars const *k = pairkinds ; k->cert ; k++)
  {
    int first = k == pairkinds ;
    char const *chainfile = first ? envval(envp, "CERTCHAINFILE") : 0 ;
    char const *cert = chainfile ? chainfile : envval(envp, k->cert) ;
    char const *key = envval(envp, k->key) ;
    size_t clen = strlen(k->cert) ;
    char label[1200] ;
    if (!key) key = envval(envp, k->cert) ? envval(envp, k->cert) : cert ;
    if (!r || rule_sets(r, k->cert, 0) || rule_sets(r, k->key, 0) || (chainfile && rule_sets(r, "CERTCHAINFILE", 0)))
    {
      if (cert)
      {
        snprintf(label, sizeof(label), "%s%s %s", prefix, chainfile ? "CERTCHAINFILE" : k->cert, cert) ;
        if (!check_pair(c, envp, label, cert, key, c->o->localname, "-l", "TLSA")) loaded = 0 ;
      }
      else if (first)
      {
        problem(c, "%sno certificate: %s is not set", prefix, k->cert) ;
        loaded = 0 ;
      }
    }
    for (size_t i = 0 ; envp[i] ; i++)
    {
      char name[256], keyvar[300], tlsavar[300] ;
      char const *var = envp[i] ;
      size_t namelen = strcspn(var + clen + 1, "=") ;
      char const *file = var + clen + 1 + namelen ;
      char const *snikey ;
      if (strncmp(var, k->cert, clen) || var[clen] != ':') continue ;
      if (*file) file++ ;
      if (!namelen || namelen >= sizeof(name) || !*file)
      {
        problem(c, "%sinvalid SNI variable %.*s: expected %s:name=file", prefix, (int)(clen + 1 + namelen > 300 ? 300 : clen + 1 + namelen), var, k->cert) ;
        loaded = 0 ;
        continue ;
      }
      memcpy(name, var + clen + 1, namelen) ;
      name[namelen] = 0 ;
      if (r && !rule_sets(r, k->cert, name) && !rule_sets(r, k->key, name)) continue ;
      snprintf(keyvar, sizeof(keyvar), "%s:%s", k->key, name) ;
      snprintf(tlsavar, sizeof(tlsavar), "TLSA:%s", name) ;
      snikey = envval(envp, keyvar) ;
      snprintf(label, sizeof(label), "%s%s:%s %s", prefix, k->cert, name, file) ;
      if (!check_pair(c, envp, label, file, snikey ? snikey : file, name, "SNI", tlsavar)) loaded = 0 ;
    }
  }
  return loaded ;
}

 /* What the pairs do not show: CA, CRL and DH files, protocol settings. */
static void check_context (check *c, char const *const *envp, tlsctx_config const *cfg, char const *prefix)
{
  char err[1024] ;
  SSL_CTX *ctx = tlsctx_server(envp, cfg, err, sizeof(err)) ;
  if (!ctx) problem(c, "%s%s", prefix, err) ;
  SSL_CTX_free(ctx) ;
}

 /* A rule that sets TLS variables: the pairs it sets, and its context. */
static void check_rule (check *c, char const *const *envp, rules_result const *r, cdb_data const *key, genalloc *v)
{
  char keytext[LOG_FIELD_MAX + 1], shown[LOG_FIELD_FMT], prefix[LOG_FIELD_FMT + 16] ;
  size_t n = env_len(envp) + 1 ;
  tlsctx_config cfg = *c->o->cfg ;
  size_t klen = key->len < LOG_FIELD_MAX ? key->len : LOG_FIELD_MAX ;
  memcpy(keytext, key->s, klen) ;
  keytext[klen] = 0 ;
  snprintf(prefix, sizeof(prefix), "rule \"%s\": ", log_sanitize(shown, keytext, 1)) ;
  for (size_t i = 0 ; i < r->env.len ; i++) if (!r->env.s[i]) n++ ;
  if (!genalloc_ready(char const *, v, n) || !env_merge(genalloc_s(char const *, v), n, envp, env_len(envp), r->env.s, r->env.len))
  {
    problem(c, "%sunable to build its environment: %s", prefix, strerror(errno)) ;
    return ;
  }
  /* a context holds the server's pairs too: their problems are said once */
  if (!check_pairs(c, genalloc_s(char const *, v), r, prefix) || !c->loaded) return ;
  cfg.clientcert = connection_rule_clientcert(r, cfg.clientcert) ;
  check_context(c, genalloc_s(char const *, v), &cfg, prefix) ;
}

static void check_rules (check *c, char const *const *envp)
{
  char const *file = c->o->rules ;
  cdb db = CDB_ZERO ;
  cdb_data key, data ;
  rules_result r = RULES_RESULT_ZERO ;
  genalloc v = GENALLOC_ZERO ;
  uint32_t pos ;
  int e ;
  if (!file) return ;
  if (!cdb_init(&db, file))
  {
    if (errno != ENOENT || !c->o->rulesoptional) problem(c, "unable to read rules %s: %s", file, strerror(errno)) ;
    return ;
  }
  cdb_traverse_init(&pos) ;
  while (db.size >= 2048 && (e = cdb_traverse_next(&db, &key, &data, &pos)) == 1)
  {
    /* as in rules.c: skalibs does not bound the data by the map */
    size_t off = data.s - db.map ;
    if (off > db.size || data.len > db.size - off) { e = -1 ; break ; }
    e = rules_decode(data.s, data.len, &r) ;
    if (!e) { problem(c, "unable to read rules %s: %s", file, strerror(errno)) ; goto end ; }
    if (e < 0) { problem(c, "unable to read rules %s: a rule carries over " RULES_LIMITS, file) ; continue ; }
    if (!r.deny && rule_sets_any(&r, TLSCTX_VAR_PERRULE)) check_rule(c, envp, &r, &key, &v) ;
  }
  if (db.size < 2048 || e < 0) problem(c, "unable to read rules %s: not a valid cdb", file) ;
 end:
  genalloc_free(char const *, &v) ;
  stralloc_free(&r.env) ;
  stralloc_free(&r.key) ;
  cdb_free(&db) ;
}

static void check_tickets (check *c, char const *const *envp)
{
  char err[1024] ;
  char const *file = envval(envp, "TICKETKEYFILE") ;
  if (!file) return ;
  if (!tickets_load(file, err, sizeof(err))) problem(c, "%s", err) ;
  else okline(c, "TICKETKEYFILE %s: ok", file) ;
}

unsigned int check_run (char const *const *envp, check_options const *o)
{
  check c = { .o = o, .problems = 0, .days = CHECK_DAYS, .loaded = 0 } ;
  char const *s = envval(envp, "CHECKDAYS") ;
  if (s && !number_scan(s, 0, 36500, &c.days))
  {
    problem(&c, "invalid CHECKDAYS %s: expected a number of days", s) ;
    c.days = CHECK_DAYS ;
  }
  check_tlsa_values(&c, envp) ;
  c.loaded = check_pairs(&c, envp, 0, "") ;
  if (o->mode == CHECK_MODE_REPORT)
  {
    if (c.loaded) check_context(&c, envp, o->cfg, "") ;
    check_tickets(&c, envp) ;
  }
  check_rules(&c, envp) ;
  return c.problems ;
}
