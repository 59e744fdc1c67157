/* ISC license. */
#ifndef CONNECTOR_H
#define CONNECTOR_H

/*
 * Connects to host:port as tcpclient does: every address of a name in
 * turn, each given timeout1 seconds; then the addresses that timed out
 * again, each given timeout2 seconds (a single address gets both at once).
 * host "0" is 127.0.0.1. localip/localport (or 0) bind the local end.
 * prefer4/prefer6 keep only that family. Returns a connected blocking
 * close-on-exec socket, or -1: *refused tells whether every address
 * refused the connection (a permanent answer) rather than failed otherwise.
 */
extern int connector_open (char const *host, char const *port, char const *localip, char const *localport,
                           int prefer4, int prefer6, unsigned int timeout1, unsigned int timeout2, int *refused, char const **why) ;

#endif
