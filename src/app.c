/* ISC license. */

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/env.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>
#include <skalibs/exec.h>
#include <skalibs/posixplz.h>

#include "log.h"
#include "engine.h"
#include "privs.h"
#include "tlsctx.h"
#include "ucspitls.h"
#include "app.h"

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

char const *const *app_environment (genalloc *v, char const *const *envp, char const *const *modifs, size_t const *modiflens, unsigned int nmodifs)
{
  genalloc w = GENALLOC_ZERO ;
  size_t total = env_len(envp) + 1, n = 0, m = 0 ;
  char const **a, **b ;
  for (unsigned int i = 0 ; i < nmodifs ; i++)
    for (size_t j = 0 ; j < modiflens[i] ; j += strlen(modifs[i] + j) + 1) total++ ;
  if (!genalloc_ready(char const *, v, total) || !genalloc_ready(char const *, &w, total)) dieu_sys(111, "build the environment") ;
  a = genalloc_s(char const *, v) ;
  b = genalloc_s(char const *, &w) ;
  for (; envp[n] ; n++) a[n] = envp[n] ;
  a[n] = 0 ;
  for (unsigned int i = 0 ; i < nmodifs ; i++)
  {
    n = env_merge(b, total, a, n, modifs[i], modiflens[i]) ;
    if (!n) dieu_sys(111, "build the environment") ;
    memcpy(a, b, n * sizeof(char const *)) ;
    n-- ;
  }
  genalloc_free(char const *, &w) ;
  for (size_t i = 0 ; i < n ; i++) if (!tlsctx_var_has(a[i], TLSCTX_VAR_SECRET)) a[m++] = a[i] ;
  a[m] = 0 ;
  genalloc_setlen(char const *, v, m + 1) ;
  return a ;
}

void app_exec (char const *const *argv, char const *const *envp, char const *const *modifs, size_t const *modiflens, unsigned int nmodifs, int keepmax)
{
  genalloc v = GENALLOC_ZERO ;
  char const *const *env = app_environment(&v, envp, modifs, modiflens, nmodifs) ;
  sigset_t empty ;
  close_from(keepmax + 1) ;
  sigemptyset(&empty) ;
  sigprocmask(SIG_SETMASK, &empty, 0) ;
  signal(SIGPIPE, SIG_DFL) ;
  signal(SIGCHLD, SIG_DFL) ;
  signal(SIGTERM, SIG_DFL) ;
  signal(SIGHUP, SIG_DFL) ;
  signal(SIGALRM, SIG_DFL) ;
  exec_ae(argv[0], argv, env) ;
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

 /* Copies fd above the descriptor numbers the application gets (all below
    10) and closes it, so that no later dup2 onto a target overwrites a
    source still to be moved. */
static int place_high (int fd)
{
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 10) ;
  if (r >= 0) fd_close(fd) ;
  return r ;
}

 /*
  * The application process in immediate mode. It drops to -u/-g at once,
  * then waits for the engine's verdict on the control pipe: EOF before a
  * complete block means the handshake failed and prog must never run;
  * otherwise the block holds the SSL_* variables (empty with -S).
  */
void app_immediate (engine const *e, int in, int out, int ctl)
{
  stralloc block = STRALLOC_ZERO ;
  char const *modifs[2] = { e->connmodifs, 0 } ;
  size_t lens[2] = { e->connmodiflen, 0 } ;
  fd_close(e->netr) ;
  if (e->netw != e->netr) fd_close(e->netw) ;
  privs_drop(0, e->appgid, e->appuid) ;
  switch (ucspitls_read_block(ctl, &block))
  {
    case 1 : break ;
    case UCSPITLS_BADBLOCK : die_x(100, "UCSPI-TLS protocol error: the TLS engine sent more than 1 MiB or a variable that is not SSL_*") ;
    default : _exit(111) ;   /* the handshake failed: the engine has said why */
  }
  fd_close(ctl) ;
  modifs[1] = block.s ;
  lens[1] = block.len - 1 ;
  in = place_high(in) ;
  out = place_high(out) ;
  if (in < 0 || out < 0) dieu_sys(111, "move descriptors") ;
  if (e->client)
  {
    if (dup2(in, 6) == -1 || dup2(out, 7) == -1) dieu_sys(111, "set up descriptors 6 and 7") ;
    for (int fd = 3 ; fd < 6 ; fd++) close(fd) ;
    app_exec(e->argv, e->envp, modifs, lens, 2, 7) ;
  }
  if (dup2(in, 0) == -1 || dup2(out, 1) == -1) dieu_sys(111, "set up descriptors 0 and 1") ;
  if (e->banner && allwrite(1, e->banner, strlen(e->banner)) < strlen(e->banner)) dieu_sys(111, "print banner") ;
  app_exec(e->argv, e->envp, modifs, lens, 2, 2) ;
}

 /* Behind the STARTTLS front: as in immediate mode, without the wait. */
void app_front (engine const *e, int in, int out)
{
  char const *modifs[1] = { e->connmodifs } ;
  size_t lens[1] = { e->connmodiflen } ;
  fd_close(e->netr) ;
  if (e->netw != e->netr) fd_close(e->netw) ;
  privs_drop(0, e->appgid, e->appuid) ;
  in = place_high(in) ;
  out = place_high(out) ;
  if (in < 0 || out < 0) dieu_sys(111, "move descriptors") ;
  if (dup2(in, 0) == -1 || dup2(out, 1) == -1) dieu_sys(111, "set up descriptors 0 and 1") ;
  if (e->banner && allwrite(1, e->banner, strlen(e->banner)) < strlen(e->banner)) dieu_sys(111, "print banner") ;
  app_exec(e->argv, e->envp, modifs, lens, 1, 2) ;
}

 /*
  * The application process in deferred mode: the raw socket on 0 and 1,
  * the banner in clear, and the three UCSPI-TLS descriptors.
  */
void app_deferred (engine const *e, int in, int out, int ctl)
{
  static char const fdvars[] = "SSLCTLFD=3\0SSLREADFD=4\0SSLWRITEFD=5" ;
  char const *modifs[2] = { e->connmodifs, fdvars } ;
  size_t lens[2] = { e->connmodiflen, sizeof(fdvars) } ;
  privs_drop(0, e->appgid, e->appuid) ;
  in = place_high(in) ;
  out = place_high(out) ;
  ctl = place_high(ctl) ;
  if (in < 0 || out < 0 || ctl < 0) dieu_sys(111, "move descriptors") ;
  {
    int r = e->client ? 6 : 0, w = e->client ? 7 : 1 ;
    if ((e->netr != r ? dup2(e->netr, r) : uncoe(r)) == -1 || (e->netw != w ? dup2(e->netw, w) : uncoe(w)) == -1)
      dieu_sys(111, "set up the network descriptors") ;
    if (dup2(ctl, ENGINE_CTLFD) == -1 || dup2(in, ENGINE_READFD) == -1 || dup2(out, ENGINE_WRITEFD) == -1)
      dieu_sys(111, "set up the UCSPI-TLS descriptors") ;
    if (e->banner && allwrite(w, e->banner, strlen(e->banner)) < strlen(e->banner)) dieu_sys(111, "print banner") ;
    app_exec(e->argv, e->envp, modifs, lens, 2, e->client ? 7 : ENGINE_WRITEFD) ;
  }
}
