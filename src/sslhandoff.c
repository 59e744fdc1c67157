/* ISC license. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include <skalibs/env.h>
#include <skalibs/sgetopt.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "log.h"
#include "options.h"
#include "tlsctx.h"
#include "connenv.h"
#include "privs.h"
#include "engine.h"
#include "policy.h"
#include "rules.h"

#define USAGE "sslhandoff [ -3UXqQvVsSnNmzZ ] [ -x rules.cdb ] [ -B banner ] [ -g gid ] [ -u uid ] [ -T ssltimeout ] [ -w progtimeout ] prog..."
#define dieusage() do { if (verbosity) log_line("usage: ", USAGE) ; _exit(100) ; } while (0)

extern char **environ ;

static void copyvar (char *dst, size_t max, char const *name)
{
  char const *s = getenv(name) ;
  size_t n ;
  if (!s) return ;
  n = strlen(s) ;
  if (n >= max) n = max - 1 ;
  memcpy(dst, s, n) ;
  dst[n] = 0 ;
}

 /* The connection as the UCSPI server before us described it, else as the
    socket on fd 0 tells. */
static void connection_info (conninfo *ci)
{
  if (!getenv("TCPREMOTEIP")) connenv_fromsocket(ci, 0) ;
  copyvar(ci->localip, sizeof(ci->localip), "TCPLOCALIP") ;
  copyvar(ci->localport, sizeof(ci->localport), "TCPLOCALPORT") ;
  copyvar(ci->remoteip, sizeof(ci->remoteip), "TCPREMOTEIP") ;
  copyvar(ci->remoteport, sizeof(ci->remoteport), "TCPREMOTEPORT") ;
  if (getenv("TCPLOCALHOST")) { copyvar(ci->localhost, sizeof(ci->localhost), "TCPLOCALHOST") ; ci->haslocalhost = 1 ; }
  if (getenv("TCPREMOTEHOST")) { copyvar(ci->remotehost, sizeof(ci->remotehost), "TCPREMOTEHOST") ; ci->hasremotehost = 1 ; }
  if (getenv("TCPREMOTEINFO")) { copyvar(ci->remoteinfo, sizeof(ci->remoteinfo), "TCPREMOTEINFO") ; ci->hasremoteinfo = 1 ; }
}

int main (int argc, char const *const *argv)
{
  tlsctx_config cfg = { .clientcert = TLSCTX_CLIENTCERT_NONE } ;
  conninfo ci = { .haslocalhost = 0 } ;
  stralloc modifs = STRALLOC_ZERO ;
  unsigned char sidctx[32] ;
  char pid[PID_FMT] ;
  engine e = { .netr = 0, .netw = 1, .handshaketimeout = 26, .idletimeout = 3600, .sslenv = 1 } ;
  int deferred = -1, password = 0, envuidgid = 0, rulesoptional = 0 ;
  char const *rulesfile = 0 ;
  rules_result r = RULES_RESULT_ZERO ;

  PROG = "sslhandoff" ;
  {
    subgetopt l = SUBGETOPT_ZERO ;
    for (;;)
    {
      int opt = subgetopt_r(argc, argv, "3UXqQvVsSnNmzZx:B:g:u:T:w:", &l) ;
      if (opt == -1) break ;
      switch (opt)
      {
        case '3' : password = 1 ; break ;
        case 'U' : envuidgid = 1 ; break ;
        case 'X' : rulesoptional = 1 ; break ;
        case 'x' : rulesfile = l.arg ; break ;
        case 'q' : verbosity = 0 ; break ;
        case 'Q' : verbosity = 1 ; break ;
        case 'v' : verbosity = 2 ; break ;
        case 'V' : verbosity = 3 ; break ;
        case 's' : e.sslenv = 1 ; break ;
        case 'S' : e.sslenv = 0 ; break ;
        case 'n' : deferred = 1 ; break ;
        case 'N' : deferred = 0 ; break ;
        case 'm' : cfg.clientcert = TLSCTX_CLIENTCERT_REQUIRE ; break ;
        case 'z' : cfg.clientcert = TLSCTX_CLIENTCERT_MATCHHOST ; break ;
        case 'Z' : cfg.clientcert = TLSCTX_CLIENTCERT_NONE ; break ;
        case 'B' : e.banner = l.arg ; break ;
        case 'g' : e.appgid = options_number(l.arg, 'g', 0) ; break ;
        case 'u' : e.appuid = options_number(l.arg, 'u', 0) ; break ;
        case 'T' : e.handshaketimeout = options_number(l.arg, 'T', 0) ; break ;
        case 'w' : e.idletimeout = options_number(l.arg, 'w', 0) ; break ;
        default : dieusage() ;
      }
    }
    argc -= l.ind ; argv += l.ind ;
  }
  if (!argc || !*argv[0]) dieusage() ;
  if (envuidgid) privs_envuidgid(&e.appuid, &e.appgid) ;
  if (password) cfg.password = tlsctx_read_password(3) ;

  {
    char const *local = getenv("TCPLOCALPORT") ;
    stralloc words = STRALLOC_ZERO ;
    if ((local && !stralloc_catb(&words, local, strlen(local) + 1)) || !stralloc_catb(&words, argv[0], strlen(argv[0]) + 1))
      dieu_sys(111, "compute the session id context") ;
    tlsctx_sidctx(sidctx, "sslhandoff", 11, words.s, words.len) ;
    stralloc_free(&words) ;
    cfg.sidctx = sidctx ;
    cfg.sidctxlen = 32 ;
  }
  pid[pid_fmt(pid, getpid())] = 0 ;
  connection_info(&ci) ;
  if (rulesfile) policy_rules(rulesfile, rulesoptional, &ci, &r) ;
  if (r.deny) { connenv_log("deny", pid, &ci, "") ; _exit(100) ; }
  if (!connenv_modifiers(&modifs, &ci, 0) || !stralloc_catb(&modifs, r.env.s, r.env.len)) dieu_sys(111, "build the environment") ;
  {
    size_t envmax = env_len((char const *const *)environ) + 1 ;
    for (size_t i = 0 ; i < r.env.len ; i++) if (!r.env.s[i]) envmax++ ;
    {
      char const *connenv[envmax] ;
      policy_environment(connenv, envmax, (char const *const *)environ, &r) ;
      e.ctx = policy_context(0, connenv, &r, &cfg) ;
      privs_engine_from_env(&e.tls, connenv, e.appuid, e.appgid) ;
      privs_engine_check(&e.tls) ;
      e.clientcert = tlsctx_clientcert(connenv, policy_clientcert(&r, cfg.clientcert)) ;
      e.deferred = deferred == 1 || (deferred == -1 && env_get2(connenv, "UCSPITLS")) ;
    }
  }
  e.argv = argv ;
  e.envp = (char const *const *)environ ;
  e.connmodifs = modifs.s ;
  e.connmodiflen = modifs.len ;
  e.remotehost = ci.hasremotehost ? ci.remotehost : 0 ;
  e.remoteip = ci.remoteip[0] ? ci.remoteip : "unknown" ;
  e.pid = pid ;
  engine_run(&e) ;
}
