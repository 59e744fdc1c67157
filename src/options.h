/* ISC license. */
#ifndef OPTIONS_H
#define OPTIONS_H

/* The number argument of option -opt: decimal, at least min, nothing
   after it. Dies 100 ("invalid argument for -c: abc") otherwise. */
extern unsigned int options_number (char const *s, char opt, unsigned int min) ;

#endif
