/* ISC license. */
#ifndef COUNTERS_H
#define COUNTERS_H

/*
 * sslserver's counters: connections, refusals and failed handshakes by
 * reason, handshakes by version and cipher, resumptions, concurrency.
 * The main process holds them; the connection processes and engines tell
 * it what happened through a datagram socket the main process made before
 * forking them. A report is sent without waiting (dropped if the socket's
 * queue is full), so no engine ever blocks on the main process, and the
 * main process reads reports only when the socket is readable. What a
 * report says is only ever counted: names are checked (printable, short)
 * and the number of distinct labels is bounded.
 */

/* Connection-process and engine side: fd is the report socket, or -1 (no
   counters: sslhandoff). Never blocks, never fails visibly. */
extern void counters_tls (int fd, char const *version, char const *cipher, int resumed) ;
extern void counters_failed (int fd, char const *why, int refused) ;   /* why: the handshake's reason; refused: a certificate refused */
extern void counters_refused (int fd, char const *reason) ;           /* "rules", "maxconip", "proxy" */

/* Main side. */
extern int counters_open (int *reportfd) ;   /* the socket; *reportfd is the children's end. 0 on failure */
extern void counters_read (void) ;            /* takes every report waiting */
extern void counters_accepted (void) ;
extern void counters_refused_here (char const *reason) ;
extern void counters_current (unsigned int n) ;
extern int counters_fd (void) ;              /* what to wait on for counters_read */

/* SIGUSR1: one line, "counters: ..." */
extern void counters_log (void) ;

/* METRICSFILE: the Prometheus text format, written to path.tmp.PID and
   renamed over path. Returns 0 on failure (errno). */
extern int counters_write (char const *path) ;

#endif
