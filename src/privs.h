/* ISC license. */
#ifndef PRIVS_H
#define PRIVS_H

#include <sys/types.h>

/* chroot(root) and chdir("/") if root is set, then supplementary groups =
   { gid } and setgid(gid) if gid is nonzero, then setuid(uid) if uid is
   nonzero. Dies 111 with a one-line message on failure. */
extern void privs_drop (char const *root, gid_t gid, uid_t uid) ;

/* The same, returning what failed (errno set) instead of dying, or 0. */
extern char const *privs_try (char const *root, gid_t gid, uid_t uid) ;

/* -U: the application's uid and gid from $UID and $GID (envuidgid's).
   Dies 100 if either is missing or not a number. */
extern void privs_envuidgid (uid_t *, gid_t *) ;

/* The engine's identity: SSL_UID/SSL_GID (or the s6 spellings TLS_UID and
   TLS_GID) and SSL_CHROOT from envp, else the application's -u/-g. */
typedef struct privs_engine_s privs_engine ;
struct privs_engine_s
{
  uid_t uid ;
  gid_t gid ;
  char const *root ;
} ;
extern void privs_engine_from_env (privs_engine *, char const *const *envp, uid_t appuid, gid_t appgid) ;

/* Start-up check that a process can become uid/gid (who says whose
   identity it is, for the message): only root can change its user or its
   groups, so a process that is not root and is asked for any uid or gid
   dies 111 here, rather than failing on every connection. */
extern void privs_check_possible (uid_t uid, gid_t gid, char const *who) ;

/* Code that reads what the network sends before the engine exists (the
   name and ident look-ups) runs as the engine's user and group, with no
   supplementary groups and no chroot (the resolver reads /etc). Nothing
   changes when uid and gid are both 0. Returns what failed (errno set),
   or 0. */
extern char const *privs_try_nogroups (gid_t gid, uid_t uid) ;

/* A warning line when this process is root and the engine's uid is 0:
   the TLS engine would parse the network's bytes as root. */
extern void privs_warn_root_engine (privs_engine const *) ;

/* Start-up check of what privs_engine_from_env found: SSL_CHROOT must be
   a directory. Dies 111 otherwise. */
extern void privs_engine_check (privs_engine const *) ;

#endif
