/* ISC license. */
#ifndef LISTENER_H
#define LISTENER_H

/*
 * The listening socket: host is 0 (every IPv4 address), :: (every IPv6
 * address, IPv6 only), :0 (dual stack), an address literal, or a name
 * (its first address, IPv4 first with prefer4, IPv6 first with prefer6);
 * port is a number or a service name. Dies with a one-line error (111).
 * The socket is non-blocking and close-on-exec; its bound address is
 * written to ip and port for -1. With reuseport, it is bound with
 * SO_REUSEPORT, so that other processes doing the same share the port.
 */
extern int listener_open (char const *host, char const *port, int prefer4, int prefer6, unsigned int backlog, int reuseport, char *ip, char *portfmt) ;

/*
 * systemd socket activation (Accept=no): returns 1 if LISTEN_PID is this
 * process's pid, else 0 (the variables were meant for another process).
 * With 1, LISTEN_FDS must be 1: one socket, descriptor 3 (else it dies,
 * 111). Removes LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES from the
 * environment either way, so that no program started later inherits them.
 */
extern int listener_activated (void) ;

/*
 * The socket handed over on descriptor 3, once listener_activated said 1:
 * it must be a listening TCP socket (IPv4 or IPv6), else it dies with a
 * one-line error (111). Makes it non-blocking and close-on-exec, writes
 * its address to ip and port for -1, and returns 3.
 */
extern int listener_inherit (char *ip, char *portfmt) ;

#endif
