/* ISC license. */
#ifndef CONNECTION_H
#define CONNECTION_H

#include <sys/types.h>
#include <openssl/ssl.h>
#include <skalibs/stralloc.h>

#include "connenv.h"
#include "engine.h"
#include "proxy.h"
#include "rules.h"
#include "tlsctx.h"

/*
 * One connection, from what is known of it to a ready engine description:
 * the step sslserver's connection process and sslhandoff share. Runs while
 * the process is still privileged (the rules cdb and the TLS material may
 * be root's only).
 */

/* What the program's options say about every connection. */
typedef struct connection_options_s connection_options ;
struct connection_options_s
{
  char const *rules ;           /* -x, or 0 */
  unsigned int rulesoptional ;  /* -X: a missing cdb is no error */
  unsigned int tcpenv ;         /* -e: the TCP* copies too */
  unsigned int sslenv ;         /* -s/-S */
  unsigned int logok ;          /* log the "ok" line (sslserver; tcpserver logs its own) */
  int deferred ;                /* -1: by UCSPITLS, 0: -N, 1: -n */
  unsigned int clientcert ;     /* TLSCTX_CLIENTCERT_* from -m/-z/-Z */
  uid_t uid ;                   /* -u, 0 = keep */
  gid_t gid ;                   /* -g, 0 = keep */
  char const *banner ;          /* -B, or 0 */
  unsigned int handshaketimeout ;
  unsigned int idletimeout ;
} ;

/* Owns what the engine description points into. */
typedef struct connection_s connection ;
struct connection_s
{
  conninfo info ;
  rules_result rules ;
  stralloc modifs ;             /* the connection's variables, skalibs modifier format */
  char pid[PID_FMT] ;
  unsigned int healthcheck : 1 ;  /* a PROXY header without addresses: the balancer's own check */
  int reportfd ;                  /* the counters' report socket (counters.h), or -1 */
  int rulesfd ;                   /* the rules cdb, opened by the main process; -1: open it by name */
  unsigned int rulesmissing : 1 ; /* the main process found no rules cdb */
  unsigned int reusable : 1 ;     /* a reusable engine's connection (pool.h) */
  engine engine ;
} ;
#define CONNECTION_ZERO { .info = { .haslocalhost = 0 }, .rules = RULES_RESULT_ZERO, .modifs = STRALLOC_ZERO, .pid = "", .reportfd = -1, .rulesfd = -1, .rulesmissing = 0, .reusable = 0, .engine = { .ctx = 0 } }

/* The front (FRONT_* of front.h) a STARTTLS value asks for: FRONT_NONE
   when unset or empty; an unknown value dies 100 (a start-up error when
   it is the program's own). */
extern int connection_front (char const *value) ;

/* Sets c->pid: the connection's pid, for its log lines. */
extern void connection_init (connection *c) ;

/*
 * When c->info's remote address (the TCP peer) is listed, reads the PROXY
 * header from fd within secs seconds and makes its addresses the
 * connection's (connenv_proxied); returns 1. A peer that sends no valid
 * header in time: one log line naming it and the reason, exit 100 for a
 * malformed header, 111 for a timeout or a broken connection. Returns 0,
 * reading nothing, for a peer that is not listed.
 */
extern int connection_proxy (connection *c, proxy_list const *, int fd, unsigned int secs) ;

/* The client-certificate mode under rule r: a rule setting CCAFILE or
   CAFILE turns no request into an optional one. */
extern unsigned int connection_rule_clientcert (rules_result const *r, unsigned int requested) ;

/*
 * c->info describes the connection. Applies the rules cdb (c->rulesfd when
 * the main process opened it, closed here; unreadable:
 * exit 110; deny: logged, exit 100; a rule's MAXCONIP against samehost,
 * this client's connections counting this one, when samehost is nonzero),
 * then builds the connection's environment, its TLS context (dflt unless
 * the rule sets a TLS variable; with dflt 0 always built from cfg and the
 * environment), the engine's identity (SSL_UID, SSL_GID, SSL_CHROOT, which
 * a rule may set too; checked here when dflt is 0 or the rule sets one, the
 * caller having checked its own at start-up), its client-certificate and
 * TLS modes (-N; else STARTTLS: the front; else -n or UCSPITLS: UCSPI-TLS;
 * else immediate). A rule's unknown STARTTLS value: exit 100, logged.
 * Leaves c->engine ready for engine_run with the network on netr/netw.
 * Dies with a one-line message on any failure.
 */
extern void connection_prepare (connection *c, connection_options const *, SSL_CTX *dflt, tlsctx_config const *cfg,
                                unsigned int samehost, int netr, int netw, char const *const *argv) ;

/* 1 if no rule of the cdb open at fd sets a variable that only a fresh
   connection process can take (a TLS setting of its own, an identity):
   then an engine process may serve its clients one after the other.
   0 for such a rule, and for a file that is no cdb. */
extern int connection_rules_reusable (int fd) ;

/* Overwrites and frees what c holds of its connection: the rule, the
   connection's variables, the addresses and names. */
extern void connection_wipe (connection *c) ;

#endif
