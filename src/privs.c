/* ISC license. */

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <skalibs/env.h>
#include <skalibs/setgroups.h>
#include <skalibs/types.h>

#include "log.h"
#include "number.h"
#include "privs.h"

 /* A reused engine dropped its privileges for its first connection: what
    it is asked for again is where it already is, and not root's to do. */
static int already (gid_t gid, uid_t uid)
{
  return geteuid() && (!uid || uid == geteuid()) && (!gid || gid == getegid()) ;
}

char const *privs_try (char const *root, gid_t gid, uid_t uid)
{
  if ((!root || !*root) && already(gid, uid)) return 0 ;
  if (root && *root)
  {
    if (chroot(root) == -1) return "chroot" ;
    if (chdir("/") == -1) return "chdir to / after chroot" ;
  }
  /* skalibs' setgroups_and_gid sets the supplementary groups only */
  if (gid && (setgroups_and_gid(gid, 1, &gid) == -1 || setgid(gid) == -1)) return "set gid" ;
  /* a uid without a gid must not keep root's supplementary groups */
  if (uid && !gid && skalibs_setgroups(0, 0) == -1) return "clear supplementary groups" ;
  if (uid && setuid(uid) == -1) return "set uid" ;
  return 0 ;
}

char const *privs_try_nogroups (gid_t gid, uid_t uid)
{
  if ((!uid && !gid) || already(gid, uid)) return 0 ;
  if (skalibs_setgroups(0, 0) == -1) return "clear supplementary groups" ;
  if (gid && setgid(gid) == -1) return "set gid" ;
  if (uid && setuid(uid) == -1) return "set uid" ;
  return 0 ;
}

void privs_warn_root_engine (privs_engine const *p)
{
  if (!p->uid && !geteuid()) log_warn("the TLS engine will run as root: set SSL_UID and SSL_GID (or -u and -g)") ;
}

void privs_drop (char const *root, gid_t gid, uid_t uid)
{
  char const *what = privs_try(root, gid, uid) ;
  if (what) dieu_sys(111, what) ;
}

/* A numeric id from a variable: 1 = set and valid, 0 = unset; dies 100 on
   a value that is not a number. */
static int envid (char const *name, char const *s, unsigned int *id)
{
  if (!s || !*s) return 0 ;
  if (!number_scan(s, 0, 0x7fffffffU, id)) die_x(100, "invalid ", name, ": ", s, ": expected a numeric id") ;
  return 1 ;
}

void privs_engine_from_env (privs_engine *p, char const *const *envp, uid_t appuid, gid_t appgid)
{
  unsigned int id ;
  p->uid = appuid ;
  p->gid = appgid ;
  if (envid("SSL_UID", env_get2(envp, "SSL_UID"), &id) || envid("TLS_UID", env_get2(envp, "TLS_UID"), &id)) p->uid = id ;
  if (envid("SSL_GID", env_get2(envp, "SSL_GID"), &id) || envid("TLS_GID", env_get2(envp, "TLS_GID"), &id)) p->gid = id ;
  p->root = env_get2(envp, "SSL_CHROOT") ;
  if (p->root && !*p->root) p->root = 0 ;
}

void privs_engine_check (privs_engine const *p)
{
  struct stat st ;
  if (p->root && (stat(p->root, &st) == -1 || !S_ISDIR(st.st_mode)))
  {
    if (errno == 0) errno = ENOTDIR ;
    dieu_sys(111, "use SSL_CHROOT ", p->root) ;
  }
}

void privs_envuidgid (uid_t *uid, gid_t *gid)
{
  unsigned int id ;
  if (!envid("UID", getenv("UID"), &id)) die_x(100, "-U needs $UID") ;
  *uid = id ;
  if (!envid("GID", getenv("GID"), &id)) die_x(100, "-U needs $GID") ;
  *gid = id ;
}

void privs_check_possible (uid_t uid, gid_t gid, char const *who)
{
  char u[UINT_FMT], g[UINT_FMT] ;
  if ((!uid && !gid) || !geteuid()) return ;
  u[uint_fmt(u, uid)] = 0 ;
  g[uint_fmt(g, gid)] = 0 ;
  die_x(111, "unable to run ", who, " as uid ", u, " gid ", g, ": only root can change its user or groups (run as root, or leave out -u/-g and SSL_UID/SSL_GID)") ;
}
