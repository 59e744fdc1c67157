/* ISC license. */

#include <errno.h>
#include <string.h>


#include <skalibs/env.h>

#include "log.h"
#include "policy.h"

int policy_rules (char const *file, int optional, conninfo const *ci, rules_result *r)
{
  int e = rules_lookup(file, ci->remoteip, ci->hasremotehost ? ci->remotehost : 0, ci->hasremoteinfo ? ci->remoteinfo : 0, r) ;
  switch (e)
  {
    case RULES_NOFILE :
      if (optional) return 0 ;
      errno = ENOENT ;
      /* fallthrough */
    case RULES_ERROR :
      die_sys(110, "unable to read ", file) ;
    case RULES_NOMATCH : return 0 ;
    default : return 1 ;
  }
}

void policy_environment (char const **v, size_t vmax, char const *const *envp, rules_result const *r)
{
  size_t n = env_merge(v, vmax, envp, env_len(envp), r->env.s, r->env.len) ;
  if (!n) die_sys(111, "unable to build the environment") ;
}

static int sets_tls (rules_result const *r)
{
  static char const *const names[] =
  {
    "CERTFILE", "KEYFILE", "CERTCHAINFILE", "CAFILE", "CADIR", "CCAFILE", "VERIFYDEPTH",
    "CIPHERS", "CIPHERSUITES", "CIPHERORDER", "TLSMINVERSION", "TLSMAXVERSION", "GROUPS", "DHFILE", 0
  } ;
  for (size_t i = 0 ; i < r->env.len ; i += strlen(r->env.s + i) + 1)
  {
    size_t len = strcspn(r->env.s + i, "=") ;
    if (!strncmp(r->env.s + i, "CERTFILE:", 9) || !strncmp(r->env.s + i, "KEYFILE:", 8)) return 1 ;
    for (unsigned int j = 0 ; names[j] ; j++)
      if (len == strlen(names[j]) && !strncmp(r->env.s + i, names[j], len)) return 1 ;
  }
  return 0 ;
}

static int sets (rules_result const *r, char const *name)
{
  size_t len = strlen(name) ;
  for (size_t i = 0 ; i < r->env.len ; i += strlen(r->env.s + i) + 1)
    if (!strncmp(r->env.s + i, name, len) && r->env.s[i + len] == '=') return 1 ;
  return 0 ;
}

unsigned int policy_clientcert (rules_result const *r, unsigned int requested)
{
  return requested == TLSCTX_CLIENTCERT_NONE && (sets(r, "CCAFILE") || sets(r, "CAFILE")) ? TLSCTX_CLIENTCERT_REQUEST : requested ;
}

SSL_CTX *policy_context (SSL_CTX *dflt, char const *const *connenv, rules_result const *r, tlsctx_config const *base)
{
  tlsctx_config cfg = *base ;
  char err[1024] ;
  SSL_CTX *ctx ;
  if (dflt && !sets_tls(r)) return dflt ;
  unsigned char sidctx[32] ;
  cfg.clientcert = policy_clientcert(r, cfg.clientcert) ;
  /* A session made under other TLS settings (another certificate, no client
     certificate) must never resume here: the rule gets its own context id. */
  if (dflt)
  {
    tlsctx_sidctx(sidctx, base->sidctx, base->sidctxlen, r->env.s, r->env.len) ;
    cfg.sidctx = sidctx ;
    cfg.sidctxlen = 32 ;
  }
  ctx = tlsctx_server(connenv, &cfg, err, sizeof(err)) ;
  if (!ctx)
  {
    if (!dflt) die_x(111, err) ;
    die_x(111, "unable to apply the TLS settings of rule ", r->key.len ? r->key.s : "(empty key)", ": ", err) ;
  }
  return ctx ;
}
