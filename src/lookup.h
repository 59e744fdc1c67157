/* ISC license. */
#ifndef LOOKUP_H
#define LOOKUP_H

#include "connenv.h"

/*
 * The names of a connection: the local host (PTR, unless -l gave it), the
 * remote host (PTR; with paranoid, only if it resolves back to the
 * address), and the remote user (RFC 1413 ident). The C library's resolver
 * has no deadline of its own, so the lookups run in a child process and the
 * whole phase is bounded by timeout seconds: what is not known by then
 * stays unknown.
 */
#define LOOKUP_LOCALHOST 1
#define LOOKUP_REMOTEHOST 2
#define LOOKUP_PARANOID 4
#define LOOKUP_IDENT 8

extern void lookup_names (conninfo *, unsigned int what, unsigned int timeout) ;

#endif
