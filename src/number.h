/* ISC license. */
#ifndef NUMBER_H
#define NUMBER_H

#include <stddef.h>

/* The one number parser of the suite, for options, environment variables
   and rules values alike: s is decimal digits only (no sign, no space,
   nothing after them) with a value in [min, max]. Returns 1 and the value
   in *n, else 0 (*n untouched). */
extern int number_scan (char const *s, unsigned int min, unsigned int max, unsigned int *n) ;

/* The same for the len bytes at s (a field that is not NUL-terminated). */
extern int number_scanb (char const *s, size_t len, unsigned int min, unsigned int max, unsigned int *n) ;

/* Writes the len bytes at s as 2 * len hex digits (lower case, or upper
   case with upper) into dst, without a terminating NUL; returns 2 * len. */
extern size_t number_hex (char *dst, unsigned char const *s, size_t len, int upper) ;

#endif
