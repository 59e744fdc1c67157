/* ISC license. */

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <skalibs/cdb.h>
#include <skalibs/djbunix.h>
#include <skalibs/env.h>
#include <skalibs/genalloc.h>
#include <skalibs/types.h>

#include "log.h"
#include "privs.h"
#include "counters.h"
#include "front.h"
#include "connection.h"

extern char **environ ;

static void apply_rules (connection const *c, char const *file, int optional, rules_result *r)
{
  conninfo const *ci = &c->info ;
  char const *host = ci->hasremotehost ? ci->remotehost : 0, *info = ci->hasremoteinfo ? ci->remoteinfo : 0 ;
  switch (c->rulesmissing ? RULES_NOFILE
          : c->rulesfd >= 0 ? rules_lookup_fd(c->rulesfd, ci->remoteip, host, info, r)
          : rules_lookup(file, ci->remoteip, host, info, r))
  {
    case RULES_NOFILE :
      if (optional) return ;
      errno = ENOENT ;
      /* fallthrough */
    case RULES_ERROR :
      die_sys(110, "unable to read ", file) ;
    case RULES_TOOBIG :
    {
      char key[LOG_FIELD_FMT] ;
      die_x(110, "unable to read ", file, ": rule ", r->key.len ? log_sanitize(key, r->key.s, 1) : "(empty key)", " carries over " RULES_LIMITS) ;
    }
    default : return ;
  }
}

 /* 1 if the rule sets a variable of the TLS table with one of flags. */
static int sets_any (rules_result const *r, unsigned int flags)
{
  for (size_t i = 0 ; i < r->env.len ; i += strlen(r->env.s + i) + 1)
    if (tlsctx_var_has(r->env.s + i, flags)) return 1 ;
  return 0 ;
}

static int sets (rules_result const *r, char const *name)
{
  size_t len = strlen(name) ;
  for (size_t i = 0 ; i < r->env.len ; i += strlen(r->env.s + i) + 1)
    if (!strncmp(r->env.s + i, name, len) && r->env.s[i + len] == '=') return 1 ;
  return 0 ;
}

unsigned int connection_rule_clientcert (rules_result const *r, unsigned int requested)
{
  return requested == TLSCTX_CLIENTCERT_NONE && (sets(r, "CCAFILE") || sets(r, "CAFILE")) ? TLSCTX_CLIENTCERT_REQUEST : requested ;
}

static SSL_CTX *rule_context (SSL_CTX *dflt, char const *const *connenv, rules_result const *r, tlsctx_config const *base)
{
  tlsctx_config cfg = *base ;
  unsigned char sidctx[32] ;
  char err[1024] ;
  SSL_CTX *ctx ;
  if (dflt && !sets_any(r, TLSCTX_VAR_PERRULE)) return dflt ;
  cfg.clientcert = connection_rule_clientcert(r, cfg.clientcert) ;
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

 /* The connection's environment: the program's, with the rule's variables
    applied, in an array of pointers that the heap holds. */
static char const *const *merged_environment (genalloc *v, rules_result const *r)
{
  size_t n = env_len((char const *const *)environ) + 1 ;
  for (size_t i = 0 ; i < r->env.len ; i++) if (!r->env.s[i]) n++ ;
  if (!genalloc_ready(char const *, v, n)
   || !env_merge(genalloc_s(char const *, v), n, (char const *const *)environ, env_len((char const *const *)environ), r->env.s, r->env.len))
    dieu_sys(111, "build the environment") ;
  return genalloc_s(char const *, v) ;
}

int connection_front (char const *value)
{
  int p ;
  if (!value || !*value) return FRONT_NONE ;
  p = front_protocol(value) ;
  if (!p)
  {
    char v[LOG_FIELD_FMT] ;
    die_x(100, "unknown STARTTLS value: ", log_sanitize(v, value, 1), " (smtp, pop3 or imap)") ;
  }
  return p ;
}

 /* The server's own STARTTLS was checked at start-up: an unknown one
    here comes from the rule, and refuses the connection. */
static int rule_front (rules_result const *r, char const *value)
{
  if (value && *value && !front_protocol(value))
  {
    char k[LOG_FIELD_FMT], v[LOG_FIELD_FMT] ;
    die_x(100, "unable to apply rule ", r->key.len ? log_sanitize(k, r->key.s, 1) : "(empty key)", ": unknown STARTTLS value: ", log_sanitize(v, value, 1), " (smtp, pop3 or imap)") ;
  }
  return connection_front(value) ;
}

void connection_init (connection *c)
{
  c->pid[pid_fmt(c->pid, getpid())] = 0 ;
}

int connection_proxy (connection *c, proxy_list const *l, int fd, unsigned int secs)
{
  conninfo *ci = &c->info ;
  struct sockaddr_storage ss ;
  socklen_t len ;
  unsigned char key[16] ;
  proxy_header h ;
  char const *why = "" ;
  if (!l->n || !connenv_sockaddr(ci->remoteip, 0, &ss, &len)) return 0 ;
  proxy_key(&ss, key) ;
  if (!proxy_listed(l, key)) return 0 ;
  switch (proxy_read(fd, secs, &h, &why))
  {
    case PROXY_OK : break ;
    case PROXY_MALFORMED :
      log_error(100, "unable to read the PROXY header from: ", ci->remoteip, " for pid: ", c->pid, ": ", why) ;
      counters_refused(c->reportfd, "proxy") ;
      _exit(100) ;
    case PROXY_TIMEOUT :
      log_error(111, "unable to read the PROXY header from: ", ci->remoteip, " for pid: ", c->pid, ": timed out") ;
      counters_refused(c->reportfd, "proxy") ;
      _exit(111) ;
    case PROXY_CLOSED :
      log_error(111, "unable to read the PROXY header from: ", ci->remoteip, " for pid: ", c->pid, ": connection closed before its end") ;
      counters_refused(c->reportfd, "proxy") ;
      _exit(111) ;
    default :
      log_error(111, "unable to read the PROXY header from: ", ci->remoteip, " for pid: ", c->pid, ": ", strerror(errno)) ;
      counters_refused(c->reportfd, "proxy") ;
      _exit(111) ;
  }
  connenv_proxied(ci, h.proxied ? &h.remote : 0, &h.local) ;
  c->healthcheck = !h.proxied ;
  log_status("proxy ", c->pid, " via ", ci->proxyip, ":", ci->proxyport) ;
  return 1 ;
}

void connection_prepare (connection *c, connection_options const *o, SSL_CTX *dflt, tlsctx_config const *cfg,
                         unsigned int samehost, int netr, int netw, char const *const *argv)
{
  engine *e = &c->engine ;
  rules_result *r = &c->rules ;
  genalloc v = GENALLOC_ZERO ;
  char const *const *connenv ;

  if (o->rules) apply_rules(c, o->rules, o->rulesoptional, r) ;
  if (c->rulesfd >= 0) { fd_close(c->rulesfd) ; c->rulesfd = -1 ; }
  if (r->deny)
  {
    connenv_log("deny", c->pid, &c->info, "") ;
    counters_refused(c->reportfd, "rules") ;
    _exit(100) ;
  }
  if (samehost && r->hasmaxconip && samehost > r->maxconip)
  {
    char n[21 + UINT_FMT] = " ip connection limit:" ;
    n[21 + uint_fmt(n + 21, r->maxconip)] = 0 ;
    connenv_log("deny", c->pid, &c->info, n, " exceeded") ;
    counters_refused(c->reportfd, "maxconip") ;
    _exit(100) ;
  }
  if (o->logok) connenv_log("ok", c->pid, &c->info, "") ;
  if (!connenv_modifiers(&c->modifs, &c->info, o->tcpenv) || !stralloc_catb(&c->modifs, r->env.s, r->env.len))
    dieu_sys(111, "build the environment") ;

  connenv = merged_environment(&v, r) ;
  privs_engine_from_env(&e->tls, connenv, o->uid, o->gid) ;
  /* sslserver checked its own identities at start-up: again only if the
     rule sets one of them */
  if (!dflt || sets_any(r, TLSCTX_VAR_IDENTITY))
  {
    privs_engine_check(&e->tls) ;
    privs_check_possible(o->uid, o->gid, "the program") ;
    privs_check_possible(e->tls.uid, e->tls.gid, "the TLS engine") ;
  }
  e->ctx = rule_context(dflt, connenv, r, cfg) ;
  /* This process serves one connection: what its context does not need
     (the passphrase; with a rule's context, every pair of the default
     one) is wiped before a byte of TLS is read. */
  tlsctx_forget_password() ;
  if (dflt && e->ctx != dflt) SSL_CTX_free(dflt) ;
  e->clientcert = tlsctx_clientcert(connenv, connection_rule_clientcert(r, o->clientcert)) ;
  /* -N, else STARTTLS, else -n or UCSPITLS */
  e->front = o->deferred ? rule_front(r, env_get2(connenv, "STARTTLS")) : FRONT_NONE ;
  e->tlsrequired = e->front && env_get2(connenv, "TLSREQUIRED") ;
  e->deferred = !e->front && (o->deferred == 1 || (o->deferred == -1 && env_get2(connenv, "UCSPITLS"))) ;
  genalloc_free(char const *, &v) ;

  e->netr = netr ;
  e->netw = netw ;
  e->argv = argv ;
  e->envp = (char const *const *)environ ;
  e->connmodifs = c->modifs.s ;
  e->connmodiflen = c->modifs.len ;
  e->banner = o->banner ;
  e->appuid = o->uid ;
  e->appgid = o->gid ;
  e->handshaketimeout = o->handshaketimeout ;
  e->idletimeout = o->idletimeout ;
  e->remotehost = c->info.hasremotehost ? c->info.remotehost : 0 ;
  e->remoteip = c->info.remoteip[0] ? c->info.remoteip : "unknown" ;
  e->pid = c->pid ;
  e->sslenv = o->sslenv ;
  e->healthcheck = c->healthcheck ;
  e->reportfd = c->reportfd ;
  /* what connection_rules_reusable let through; a rule of another cdb
     (or another identity) ends the engine with its connection */
  e->reusable = c->reusable && e->ctx == dflt && e->tls.uid == o->uid && e->tls.gid == o->gid && !e->tls.root ;
}

 /* A rule's variable that an engine made for other connections cannot
    take: another TLS context (its keys may be root's only) or identity,
    read while the connection process is still privileged. */
static int needs_fresh_engine (rules_result const *r)
{
  return sets_any(r, TLSCTX_VAR_PERRULE | TLSCTX_VAR_IDENTITY) ;
}

int connection_rules_reusable (int fd)
{
  cdb db = CDB_ZERO ;
  cdb_data key, data ;
  uint32_t pos ;
  int e, ok = 1 ;
  if (!cdb_init_fromfd(&db, fd)) return 0 ;
  if (db.size < 2048) { cdb_free(&db) ; return 0 ; }
  cdb_traverse_init(&pos) ;
  while (ok && (e = cdb_traverse_next(&db, &key, &data, &pos)) == 1)
  {
    rules_result r = RULES_RESULT_ZERO ;
    size_t off = data.s - db.map ;
    /* as rules.c: a length running past the end is a corrupt file */
    ok = off <= db.size && data.len <= db.size - off && rules_decode(data.s, data.len, &r) > 0 && !needs_fresh_engine(&r) ;
    stralloc_free(&r.env) ;
    stralloc_free(&r.key) ;
  }
  cdb_free(&db) ;
  return ok && !e ;
}

void connection_wipe (connection *c)
{
  rules_result *r = &c->rules ;
  if (r->env.s) explicit_bzero(r->env.s, r->env.a) ;
  if (r->key.s) explicit_bzero(r->key.s, r->key.a) ;
  if (c->modifs.s) explicit_bzero(c->modifs.s, c->modifs.a) ;
  stralloc_free(&r->env) ;
  stralloc_free(&r->key) ;
  stralloc_free(&c->modifs) ;
  explicit_bzero(&c->info, sizeof(c->info)) ;
}
