/* ISC license. */
#ifndef LISTENER_H
#define LISTENER_H

/*
 * The listening socket: host is 0 (every IPv4 address), :: (every IPv6
 * address, IPv6 only), :0 (dual stack), an address literal, or a name
 * (its first address, IPv4 first with prefer4, IPv6 first with prefer6);
 * port is a number or a service name. Dies with a one-line error (111).
 * The socket is non-blocking and close-on-exec; its bound address is
 * written to ip and port for -1.
 */
extern int listener_open (char const *host, char const *port, int prefer4, int prefer6, unsigned int backlog, char *ip, char *portfmt) ;

#endif
