/* ISC license. */
#ifndef OPTIONS_H
#define OPTIONS_H

/* The upper bounds most numbers share: ids fit an int, and a timeout in
   milliseconds too (poll's), so seconds stop at about 24.8 days. */
#define OPTIONS_ID_MAX 0x7fffffffU
#define OPTIONS_SECONDS_MAX 2147483U

/* The number argument of option -opt, in [min, max]. Dies 100 ("invalid
   argument for -c: abc (from 1 to 100000)") otherwise. */
extern unsigned int options_number (char const *s, char opt, unsigned int min, unsigned int max) ;

/* Runs skalibs' subgetopt over *argv with optstring and calls
   take(opt, arg, data) for every option; take returns 0 for one it does
   not know. Leaves *argc and *argv at the first operand. Returns 1, or 0 at
   the first unknown option (the caller prints its usage). */
extern int options_parse (int *argc, char const *const **argv, char const *optstring, int (*take)(int, char const *, void *), void *data) ;

/* -q, -Q, -v and, with withV, -V: sets verbosity to 0, 1, 2 or 3. Returns 1
   if opt was one of them. */
extern int options_verbosity (int opt, int withV) ;

#endif
