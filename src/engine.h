/* ISC license. */
#ifndef ENGINE_H
#define ENGINE_H

#include <stddef.h>
#include <sys/types.h>
#include <openssl/ssl.h>

#include "privs.h"

/*
 * One connection, from an accepted socket to the application's exit status
 * (the connection process's last two steps): forks the application
 * process, then becomes the TLS engine under its own identity.
 */
typedef struct engine_s engine ;
struct engine_s
{
  SSL_CTX *ctx ;
  int netr ;                    /* network, read side */
  int netw ;                    /* network, write side (the same socket under sslserver) */
  char const *const *argv ;     /* the application */
  char const *const *envp ;     /* its base environment */
  char const *connmodifs ;      /* connection variables, skalibs modifier format */
  size_t connmodiflen ;
  char const *banner ;          /* -B, or 0 */
  uid_t appuid ;                /* -u, 0 = keep */
  gid_t appgid ;                /* -g, 0 = keep */
  privs_engine tls ;            /* SSL_UID, SSL_GID, SSL_CHROOT */
  unsigned int handshaketimeout ;
  unsigned int idletimeout ;
  unsigned int clientcert ;     /* TLSCTX_CLIENTCERT_* */
  char const *remotehost ;      /* for -z, or 0 */
  char const *remoteip ;        /* for log lines */
  char const *pid ;             /* for log lines */
  int sslenv ;                  /* -s: SSL_* in the application's environment */
  int deferred ;                /* UCSPI-TLS: the application starts TLS */
  int reportfd ;                /* counters (counters.h), or -1 */
  int healthcheck ;             /* a balancer's check (PROXY LOCAL or UNKNOWN): closing before a TLS byte is no failure */
  int front ;                   /* STARTTLS: FRONT_* (front.h), the engine starts TLS for the application */
  int tlsrequired ;             /* TLSREQUIRED, with front */
  int client ;                  /* connect side (sslclient): the application on 6/7 */
  char const *servername ;      /* client: SNI, and the name to verify */
  int checkname ;               /* client: verify servername against the certificate */
  unsigned char const *pin ;    /* client: SHA-256 pin of the certificate or key, or 0 */
  int reusable ;                /* sslserver's reusable engine (pool.h): a connection that ends well returns */
} ;

/* Deferred mode: the application's descriptors for the UCSPI-TLS protocol,
   announced in SSLCTLFD, SSLREADFD, SSLWRITEFD; the network is on 0/1
   (server) or 6/7 (client). */
#define ENGINE_CTLFD 3
#define ENGINE_READFD 4
#define ENGINE_WRITEFD 5

/* Never returns, except in an engine marked reusable whose connection
   ended well: then every descriptor of the connection is closed, the
   application has exited, and the return is its status. Any failure ends
   the process (its exit code is the connection's). */
extern int engine_run (engine const *) ;

#endif
