/* ISC license. */
#ifndef APP_H
#define APP_H

#include <stddef.h>
#include <sys/types.h>

/*
 * The last steps of the application process before it becomes prog:
 * the environment is envp, then the modifiers (skalibs format: NAME=value
 * sets, a bare NAME unsets) in order, minus every secret-bearing variable
 * (KEYFILE*, CERTFILE*, CERTCHAINFILE, SSL_UID, SSL_GID, SSL_CHROOT,
 * TLS_UID, TLS_GID); every descriptor above keepmax is closed; signal
 * dispositions and the mask are back to their defaults. Never returns: on
 * failure it logs "unable to run" and exits 111.
 */
extern void app_exec (char const *const *argv, char const *const *envp, char const *const *modifs, size_t const *modiflens, unsigned int nmodifs, int keepmax) __attribute__((noreturn)) ;

/* Reads everything from fd until EOF into a stralloc-owned buffer;
   returns the length, or -1 on error. */
struct stralloc_s ;
extern ssize_t app_readall (int fd, struct stralloc_s *sa) ;

extern int app_is_secret (char const *var) ;

#endif
