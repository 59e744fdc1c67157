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
#include "connection.h"
#include "rules.h"
#include "tickets.h"
#include "check.h"

#define USAGE "sslhandoff [ -3CUXqQvVsSnNmzZ ] [ -x rules.cdb ] [ -B banner ] [ -g gid ] [ -u uid ] [ -T ssltimeout ] [ -w progtimeout ] prog..."
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

 /* The connection as the UCSPI server before us described it, else as
    systemd's Accept=yes did (REMOTE_ADDR, REMOTE_PORT), else as the socket
    on fd 0 tells. */
static void connection_info (conninfo *ci)
{
  if (!getenv("TCPREMOTEIP"))
  {
    connenv_fromsocket(ci, 0) ;
    if (getenv("REMOTE_ADDR"))
    {
      ci->remoteport[0] = 0 ;
      copyvar(ci->remoteip, sizeof(ci->remoteip), "REMOTE_ADDR") ;
      copyvar(ci->remoteport, sizeof(ci->remoteport), "REMOTE_PORT") ;
    }
  }
  copyvar(ci->localip, sizeof(ci->localip), "TCPLOCALIP") ;
  copyvar(ci->localport, sizeof(ci->localport), "TCPLOCALPORT") ;
  copyvar(ci->remoteip, sizeof(ci->remoteip), "TCPREMOTEIP") ;
  copyvar(ci->remoteport, sizeof(ci->remoteport), "TCPREMOTEPORT") ;
  /* an IPv4 client gets the IPv4 rules however its address is spelled */
  connenv_canonical(ci->localip) ;
  connenv_canonical(ci->remoteip) ;
  if (getenv("TCPLOCALHOST")) { copyvar(ci->localhost, sizeof(ci->localhost), "TCPLOCALHOST") ; ci->haslocalhost = 1 ; }
  if (getenv("TCPREMOTEHOST")) { copyvar(ci->remotehost, sizeof(ci->remotehost), "TCPREMOTEHOST") ; ci->hasremotehost = 1 ; }
  if (getenv("TCPREMOTEINFO")) { copyvar(ci->remoteinfo, sizeof(ci->remoteinfo), "TCPREMOTEINFO") ; ci->hasremoteinfo = 1 ; }
}

typedef struct handoff_options_s handoff_options ;
struct handoff_options_s
{
  connection_options conn ;
  unsigned int password : 1 ;
  unsigned int envuidgid : 1 ;
  unsigned int check : 1 ;
} ;

static int take_option (int opt, char const *arg, void *data)
{
  handoff_options *h = data ;
  connection_options *o = &h->conn ;
  switch (opt)
  {
    case '3' : h->password = 1 ; break ;
    case 'C' : h->check = 1 ; break ;
    case 'U' : h->envuidgid = 1 ; break ;
    case 'X' : o->rulesoptional = 1 ; break ;
    case 'x' : o->rules = arg ; break ;
    case 's' : o->sslenv = 1 ; break ;
    case 'S' : o->sslenv = 0 ; break ;
    case 'n' : o->deferred = 1 ; break ;
    case 'N' : o->deferred = 0 ; break ;
    case 'm' : o->clientcert = TLSCTX_CLIENTCERT_REQUIRE ; break ;
    case 'z' : o->clientcert = TLSCTX_CLIENTCERT_MATCHHOST ; break ;
    case 'Z' : o->clientcert = TLSCTX_CLIENTCERT_NONE ; break ;
    case 'B' : o->banner = arg ; break ;
    case 'g' : o->gid = options_number(arg, 'g', 0, OPTIONS_ID_MAX) ; break ;
    case 'u' : o->uid = options_number(arg, 'u', 0, OPTIONS_ID_MAX) ; break ;
    case 'T' : o->handshaketimeout = options_number(arg, 'T', 0, OPTIONS_SECONDS_MAX) ; break ;
    case 'w' : o->idletimeout = options_number(arg, 'w', 0, OPTIONS_SECONDS_MAX) ; break ;
    default : return options_verbosity(opt, 1) ;
  }
  return 1 ;
}

int main (int argc, char const *const *argv)
{
  handoff_options h = { .conn = { .sslenv = 1, .deferred = -1, .clientcert = TLSCTX_CLIENTCERT_NONE, .handshaketimeout = 26, .idletimeout = 3600 } } ;
  connection_options *o = &h.conn ;
  tlsctx_config cfg = { .clientcert = TLSCTX_CLIENTCERT_NONE } ;
  connection c = CONNECTION_ZERO ;
  unsigned char sidctx[32] ;

  PROG = "sslhandoff" ;
  tlsctx_init() ;
  if (!options_parse(&argc, &argv, "3CUXqQvVsSnNmzZx:B:g:u:T:w:", &take_option, &h)) dieusage() ;
  if (!argc || !*argv[0]) dieusage() ;
  if (h.envuidgid) privs_envuidgid(&o->uid, &o->gid) ;
  connection_front(getenv("STARTTLS")) ;
  cfg.clientcert = o->clientcert ;
  if (h.password) cfg.password = tlsctx_read_password(3, "descriptor 3") ;
  if (h.check)
  {
    check_options co = { .mode = CHECK_MODE_REPORT, .rules = o->rules, .rulesoptional = o->rulesoptional, .cfg = &cfg } ;
    _exit(check_run((char const *const *)environ, &co) ? 111 : 0) ;
  }

  /* Tickets only with a fleet's keys: a process per connection has no
     sibling to share keys of its own with. */
  {
    char const *keyfile = getenv("TICKETKEYFILE") ;
    if (keyfile && *keyfile)
    {
      char err[1024] ;
      if (!tickets_load(keyfile, err, sizeof(err))) die_x(111, err) ;
      tlsctx_sidctx(sidctx, TLSCTX_SIDCTX_FLEET, sizeof(TLSCTX_SIDCTX_FLEET), "", 0) ;
      cfg.tickets = 1 ;
    }
    else
    {
      char const *local = getenv("TCPLOCALPORT") ;
      stralloc words = STRALLOC_ZERO ;
      if ((local && !stralloc_catb(&words, local, strlen(local) + 1)) || !stralloc_catb(&words, argv[0], strlen(argv[0]) + 1))
        dieu_sys(111, "compute the session id context") ;
      tlsctx_sidctx(sidctx, "sslhandoff", 11, words.s, words.len) ;
      stralloc_free(&words) ;
    }
    cfg.sidctx = sidctx ;
    cfg.sidctxlen = 32 ;
  }
  connection_init(&c) ;
  connection_info(&c.info) ;
  {
    proxy_list proxies ;
    char const *bad ;
    if (!proxy_list_scan(&proxies, getenv("PROXYFROM"), &bad)) die_x(100, "invalid PROXYFROM entry: ", bad) ;
    /* the UCSPI server's TCP* described the balancer: from now on they
       describe the client, and what was known only of the balancer goes */
    if (connection_proxy(&c, &proxies, 0, o->handshaketimeout))
    {
      o->tcpenv = 1 ;
      c.info.hasremotehost = c.info.hasremoteinfo = 0 ;
    }
  }
  connection_prepare(&c, o, 0, &cfg, 0, 0, 1, argv) ;
  privs_warn_root_engine(&c.engine.tls) ;
  _exit(engine_run(&c.engine)) ;   /* returns only for a reusable engine: never here */
}
