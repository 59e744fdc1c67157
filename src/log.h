/* ISC license. */
#ifndef LOG_H
#define LOG_H

#include <stddef.h>

/*
 * One line per event on stderr, written with a single write(2) so that lines
 * from the main process, engines and applications never interleave.
 * Shapes follow ucspi-ssl: "PROG: text" for status lines and
 * "PROG: fatal: (111) unable to ..." for errors.
 *
 * Verbosity: 0 = -q (nothing), 1 = -Q (errors, the default), 2 = -v (status
 * lines), 3 = -V (status lines and configuration details).
 */

extern unsigned int verbosity ;

#define LOG_ARRAY(...) ((char const *const []){ __VA_ARGS__ })
#define LOG_COUNT(...) (sizeof(LOG_ARRAY(__VA_ARGS__)) / sizeof(char const *))

extern void log_linev (char const *const *, unsigned int) ;
extern void log_dielinev (int, int, char const *const *, unsigned int) __attribute__((noreturn)) ;
extern char const *log_tlserror (void) ;   /* logtls.c: OpenSSL's last error, one line */
extern char const *log_sanitize (char *, char const *, unsigned int) ;
extern char const *log_sanitizen (char *, char const *, size_t, unsigned int) ;

#define log_line(...) log_linev(LOG_ARRAY(__VA_ARGS__), LOG_COUNT(__VA_ARGS__))
#define log_status(...) do { if (verbosity >= 2) log_line(__VA_ARGS__) ; } while (0)
#define log_warn(...) do { if (verbosity >= 1) log_line("warning: ", __VA_ARGS__) ; } while (0)
#define log_error(e, ...) do { if (verbosity >= 1) log_line("error: (" #e ") ", __VA_ARGS__) ; } while (0)

/* A deferred session that ended without TLS ever being started (the program
   never asked for it): "cleartext PID" at -v. A STARTTLS front says so the
   same way, so that an operator sees which connections stayed in clear. */
extern void log_cleartext (char const *pid) ;

/* die_x: message only; die_sys: append ": strerror(errno)"; die_tls: append
   the OpenSSL error queue's first reason. The exit code must be a literal. */
#define die_x(e, ...) log_dielinev(e, 0, LOG_ARRAY("fatal: (" #e ") ", __VA_ARGS__), 1 + LOG_COUNT(__VA_ARGS__))
#define die_sys(e, ...) log_dielinev(e, 1, LOG_ARRAY("fatal: (" #e ") ", __VA_ARGS__), 1 + LOG_COUNT(__VA_ARGS__))
#define die_tls(e, ...) die_x(e, __VA_ARGS__, ": ", log_tlserror())
#define dieu_x(e, ...) die_x(e, "unable to ", __VA_ARGS__)
#define dieu_sys(e, ...) die_sys(e, "unable to ", __VA_ARGS__)
#define dieu_tls(e, ...) die_tls(e, "unable to ", __VA_ARGS__)

/* Sanitised log field, written to buf (LOG_FIELD_FMT bytes): bytes outside
   33..126 and '%' and ':' become '?', at most LOG_FIELD_MAX bytes, then
   "..." (as tcpserver does). flags: LOG_KEEPCOLON keeps ':', LOG_KEEPSPACE
   keeps ' ' (free text at the end of a line). log_sanitize takes a C string
   (0 gives ""), log_sanitizen len bytes, NULs included. Returns buf. */
#define LOG_KEEPCOLON 1
#define LOG_KEEPSPACE 2
#define LOG_FIELD_MAX 100
#define LOG_FIELD_FMT (LOG_FIELD_MAX + 4)

#endif
