/* ISC license. */
#ifndef RULESTEXT_H
#define RULESTEXT_H

#include <stddef.h>
#include <skalibs/stralloc.h>

/*
 * One line of tcprules text, compiled to the cdb records tcprules writes:
 * "address:allow|deny[,NAME=<d>value<d>]...", the address being an IP, a
 * '.'-terminated prefix, a range (1.2.3.4-7, 10.2-3.), =host, =.suffix, =,
 * info@ip, info@=host or empty; as extensions, IPv6 addresses (normalised
 * as sslserver looks them up) and CIDR blocks (as ucspi-tcp6 keys).
 * Comments, blank lines and lines without ':' produce nothing, as in
 * tcprules 0.88. add is called once per record.
 */
typedef int rulestext_add_func (char const *key, size_t klen, char const *data, size_t dlen, void *arg) ;

#define RULESTEXT_OK 1
#define RULESTEXT_SYNTAX 0
#define RULESTEXT_ERROR (-1)   /* add failed or out of memory */

/* Why a key as stored (key[0..len)) can never be one sslserver looks up,
   in a few words completing "can never match: ", or 0 if it can. Only IPv6
   text is judged (the part after "info@", if any): a prefix with a group
   written with leading zeros, zero groups written out where the lookup
   writes "::", a dotted tail anywhere but after "::ffff:", too many groups,
   no final ':', or text that is no IPv6 at all. */
extern char const *rulestext_never (char const *key, size_t len) ;

/* s[0..len) is the line without its newline; s must have room for one more
   byte. data is scratch space. */
extern int rulestext_line (char *s, size_t len, stralloc *data, rulestext_add_func *add, void *arg) ;

#endif
