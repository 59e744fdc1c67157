/* ISC license. */
#ifndef CHECK_H
#define CHECK_H

#include "tlsctx.h"

/*
 * Check mode (sslserver -C, sslhandoff -C) and the checks of a SIGHUP:
 * everything the server would load from envp - the default and second
 * pairs (CERTFILE, CERTFILE2), the SNI pairs (CERTFILE:name,
 * CERTFILE2:name), the pairs rules of the -x cdb set, the CA, CRL
 * and DH files, the protocol settings, TICKETKEYFILE - and, per
 * certificate: its key matches, its chain is in order and complete
 * (against CAFILE/CADIR and the system's store), it covers its name (-l
 * for the default pair, the SNI name for CERTFILE:name), how many days it
 * has left (fewer than CHECKDAYS, default 14, is a problem), and, given
 * TLSA (TLSA:name for an SNI pair), that one of the records matches.
 *
 * CHECK_MODE_REPORT (-C): one line per certificate checked on stdout,
 * "PROG: check: CERTFILE FILE: ok: ...", unless -q; one line per problem
 * on stderr, "PROG: fatal: (111) check: ...".
 * CHECK_MODE_RELOAD (SIGHUP): the same lines in the log, the certificates'
 * at -v, the problems as "PROG: warning: check: ..."; TICKETKEYFILE and the
 * whole context are left to the reload itself, which says what fails.
 */

#define CHECK_MODE_REPORT 0
#define CHECK_MODE_RELOAD 1
#define CHECK_DAYS 14

typedef struct check_options_s check_options ;
struct check_options_s
{
  unsigned int mode ;             /* CHECK_MODE_* */
  char const *localname ;         /* -l, or 0 */
  char const *rules ;             /* -x, or 0 */
  unsigned int rulesoptional ;    /* -X */
  tlsctx_config const *cfg ;      /* as the server builds its contexts with */
} ;

/* Runs every check; returns the number of problems reported. */
extern unsigned int check_run (char const *const *envp, check_options const *) ;

#endif
