/* ISC license. */
#ifndef LOOKUP_H
#define LOOKUP_H

#include <sys/types.h>

#include "connenv.h"

/*
 * The names of a connection: the local host (PTR, unless -l gave it), the
 * remote host (PTR; with paranoid, only if it resolves back to the
 * address), and the remote user (RFC 1413 ident). The C library's resolver
 * has no deadline of its own, so the lookups run in a child process and the
 * whole phase is bounded by timeout seconds: what is not known by then
 * stays unknown. The replies come from the network (DNS servers, the
 * client's identd), so the child first becomes uid and gid, with no
 * supplementary groups (0 and 0: it keeps the caller's identity); if it
 * cannot, it logs why and nothing is looked up.
 */
#define LOOKUP_LOCALHOST 1
#define LOOKUP_REMOTEHOST 2
#define LOOKUP_PARANOID 4
#define LOOKUP_IDENT 8

extern void lookup_names (conninfo *, unsigned int what, unsigned int timeout, uid_t uid, gid_t gid) ;

#endif
