/* ISC license. */

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include <skalibs/stralloc.h>
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

ssize_t app_readall (int fd, stralloc *sa)
{
  size_t start = sa->len ;
  for (;;)
  {
    ssize_t r ;
    if (!stralloc_readyplus(sa, 4096)) return -1 ;
    r = read(fd, sa->s + sa->len, 4096) ;
    if (r == -1) { if (errno == EINTR) continue ; return -1 ; }
    if (!r) return sa->len - start ;
    sa->len += r ;
  }
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

void app_exec (char const *const *argv, char const *const *envp, char const *const *modifs, size_t const *modiflens, unsigned int nmodifs, int keepmax)
{
  size_t envlen = env_len(envp) ;
  size_t total = envlen + 1 ;
  sigset_t empty ;
  for (unsigned int i = 0 ; i < nmodifs ; i++)
    for (size_t j = 0 ; j < modiflens[i] ; j += strlen(modifs[i] + j) + 1) total++ ;
  {
    char const *v[total] ;
    char const *w[total] ;
    size_t n = 0 ;
    for (size_t i = 0 ; i < envlen ; i++) v[n++] = envp[i] ;
    v[n] = 0 ;
    for (unsigned int i = 0 ; i < nmodifs ; i++)
    {
      n = env_merge(w, total, v, n, modifs[i], modiflens[i]) ;
      if (!n) dieu_sys(111, "build the environment") ;
      memcpy(v, w, n * sizeof(char const *)) ;
      n-- ;
    }
    {
      size_t m = 0 ;
      for (size_t i = 0 ; i < n ; i++) if (!app_is_secret(v[i])) v[m++] = v[i] ;
      v[m] = 0 ;
    }
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
}
