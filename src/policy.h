/* ISC license. */
#ifndef POLICY_H
#define POLICY_H

#include <openssl/ssl.h>

#include "connenv.h"
#include "rules.h"
#include "tlsctx.h"

/*
 * The rules cdb applied to one connection, in the connection process while
 * it is still privileged. policy_rules looks the client up and decides:
 * an unreadable cdb (or a missing one without optional, -X) is logged and
 * the process exits 110. Returns 1 if a rule matched.
 */
extern int policy_rules (char const *file, int optional, conninfo const *, rules_result *) ;

/* The environment a connection sees: envp with the rule's variables
   applied. v must hold env_len(envp) + count of rule variables + 1. */
extern void policy_environment (char const **v, size_t vmax, char const *const *envp, rules_result const *) ;

/* A TLS context for this connection: the default one, unless the rule set
   a TLS variable (CERTFILE, KEYFILE, CIPHERS, CCAFILE, ...), in which case
   one is built from the connection's environment. A rule setting CCAFILE or
   CAFILE asks the client for a certificate (optional unless -m/-z).
   Dies 111 with a one-line message if the rule's material is broken.
   With dflt 0, the context is always built from connenv. */
extern SSL_CTX *policy_context (SSL_CTX *dflt, char const *const *connenv, rules_result const *, tlsctx_config const *) ;

/* The client-certificate mode for a connection: a rule setting CCAFILE
   or CAFILE turns no request into an optional one. */
extern unsigned int policy_clientcert (rules_result const *, unsigned int requested) ;

#endif
