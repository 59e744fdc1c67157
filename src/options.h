/* ISC license. */
#ifndef OPTIONS_H
#define OPTIONS_H

/* The upper bounds most numbers share: ids and seconds fit an int. */
#define OPTIONS_ID_MAX 0x7fffffffU
#define OPTIONS_SECONDS_MAX 0x7fffffffU

/* The number argument of option -opt, in [min, max]. Dies 100 ("invalid
   argument for -c: abc (from 1 to 100000)") otherwise. */
extern unsigned int options_number (char const *s, char opt, unsigned int min, unsigned int max) ;

#endif
