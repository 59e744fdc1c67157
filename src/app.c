/* ISC license. */

#include <errno.h>
#include <spawn.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include <skalibs/env.h>
#include <skalibs/exec.h>
#include <skalibs/posixplz.h>

#include "log.h"
#include "app.h"

int app_is_secret (char const *var)
{
  static char const *const prefixes[] = { "KEYFILE", "CERTFILE", 0 } ;
  static char const *const names[] = { "CERTCHAINFILE", "SSL_UID", "SSL_GID", "SSL_CHROOT", "TLS_UID", "TLS_GID", 0 } ;
  size_t len = strcspn(var, "=") ;
  for (unsigned int i = 0 ; prefixes[i] ; i++)
  {
    size_t plen = strlen(prefixes[i]) ;
    if (len >= plen && !strncmp(var, prefixes[i], plen) && (len == plen || var[plen] == ':')) return 1 ;
  }
  for (unsigned int i = 0 ; names[i] ; i++)
    if (len == strlen(names[i]) && !strncmp(var, names[i], len)) return 1 ;
  return 0 ;
}

static void close_from (int fd)
{
#ifdef SYS_close_range
  if (syscall(SYS_close_range, (unsigned int)fd, ~0U, 0) == 0) return ;
#endif
  {
    long max = sysconf(_SC_OPEN_MAX) ;
    if (max < 0 || max > 65536) max = 65536 ;
    for (; fd < max ; fd++) close(fd) ;
  }
}

size_t app_envsize (char const *const *envp, char const *const *modifs, size_t const *modiflens, unsigned int nmodifs)
{
  size_t total = env_len(envp) + 1 ;
  for (unsigned int i = 0 ; i < nmodifs ; i++)
    for (size_t j = 0 ; j < modiflens[i] ; j += strlen(modifs[i] + j) + 1) total++ ;
  return total ;
}

void app_environment (char const **v, size_t total, char const *const *envp, char const *const *modifs, size_t const *modiflens, unsigned int nmodifs)
{
  char const *w[total] ;
  size_t n = 0, m = 0 ;
  for (; envp[n] ; n++) v[n] = envp[n] ;
  v[n] = 0 ;
  for (unsigned int i = 0 ; i < nmodifs ; i++)
  {
    n = env_merge(w, total, v, n, modifs[i], modiflens[i]) ;
    if (!n) dieu_sys(111, "build the environment") ;
    memcpy(v, w, n * sizeof(char const *)) ;
    n-- ;
  }
  for (size_t i = 0 ; i < n ; i++) if (!app_is_secret(v[i])) v[m++] = v[i] ;
  v[m] = 0 ;
}

void app_exec (char const *const *argv, char const *const *envp, char const *const *modifs, size_t const *modiflens, unsigned int nmodifs, int keepmax)
{
  size_t total = app_envsize(envp, modifs, modiflens, nmodifs) ;
  char const *v[total] ;
  sigset_t empty ;
  app_environment(v, total, envp, modifs, modiflens, nmodifs) ;
  close_from(keepmax + 1) ;
  sigemptyset(&empty) ;
  sigprocmask(SIG_SETMASK, &empty, 0) ;
  signal(SIGPIPE, SIG_DFL) ;
  signal(SIGCHLD, SIG_DFL) ;
  signal(SIGTERM, SIG_DFL) ;
  signal(SIGHUP, SIG_DFL) ;
  signal(SIGALRM, SIG_DFL) ;
  exec_ae(argv[0], argv, v) ;
  dieu_sys(111, "run ", argv[0]) ;
}

pid_t app_spawn (char const *const *argv, char const *const *v, int in, int out)
{
  posix_spawn_file_actions_t fa ;
  posix_spawnattr_t attr ;
  sigset_t set ;
  pid_t pid ;
  int e ;
  if ((e = posix_spawn_file_actions_init(&fa))) { errno = e ; return -1 ; }
  if ((e = posix_spawnattr_init(&attr))) { posix_spawn_file_actions_destroy(&fa) ; errno = e ; return -1 ; }
  sigemptyset(&set) ;
  if (!(e = posix_spawn_file_actions_adddup2(&fa, in, 0))
   && !(e = posix_spawn_file_actions_adddup2(&fa, out, 1))
   && !(e = posix_spawn_file_actions_addclosefrom_np(&fa, 3))
   && !(e = posix_spawnattr_setsigmask(&attr, &set)))
  {
    sigaddset(&set, SIGPIPE) ;
    sigaddset(&set, SIGCHLD) ;
    sigaddset(&set, SIGTERM) ;
    sigaddset(&set, SIGHUP) ;
    sigaddset(&set, SIGALRM) ;
    if (!(e = posix_spawnattr_setsigdefault(&attr, &set))
     && !(e = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)))
      e = posix_spawnp(&pid, argv[0], &fa, &attr, (char *const *)argv, (char *const *)v) ;
  }
  posix_spawnattr_destroy(&attr) ;
  posix_spawn_file_actions_destroy(&fa) ;
  if (e) { errno = e ; return -1 ; }
  return pid ;
}
