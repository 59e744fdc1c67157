/* ISC license. */
#ifndef APP_H
#define APP_H

#include <stddef.h>
#include <sys/types.h>

#include <skalibs/genalloc.h>

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

/* The pieces of app_exec for a caller that starts the program itself:
   the environment app_exec would give, in an array that v owns (on the
   heap: the SSL_* block and a rule are sized by input; dies 111 when out
   of memory), and a posix_spawn of argv with in and out on 0 and 1, every
   other descriptor above 2 closed, default signals and an empty mask.
   app_spawn returns the pid or -1. */
extern char const *const *app_environment (genalloc *v, char const *const *envp, char const *const *modifs, size_t const *modiflens, unsigned int nmodifs) ;
extern pid_t app_spawn (char const *const *argv, char const *const *v, int in, int out) ;

/*
 * The application process, forked by the engine with in (its input pipe),
 * out (its output pipe) and ctl (the control pipe or socket). Drops to
 * -u/-g and execs prog; never returns.
 * Immediate mode: waits for the engine's verdict on ctl (EOF before a
 * complete block: the handshake failed and prog never runs), then prog on
 * 0/1 (client: 6/7) with the SSL_* block in its environment.
 * Deferred mode: prog at once with the raw network on 0/1 (client: 6/7),
 * the banner in clear, and the UCSPI-TLS descriptors 3, 4, 5.
 */
struct engine_s ;
extern void app_immediate (struct engine_s const *, int in, int out, int ctl) __attribute__((noreturn)) ;
extern void app_deferred (struct engine_s const *, int in, int out, int ctl) __attribute__((noreturn)) ;

/*
 * The application process behind the STARTTLS front: prog at once, on
 * 0/1 the pipes to the engine, which speaks to the client for it; never
 * the raw socket, no UCSPI-TLS descriptors, no SSL_* (TLS comes later, and
 * the environment of a running program cannot change).
 */
extern void app_front (struct engine_s const *, int in, int out) __attribute__((noreturn)) ;

#endif
