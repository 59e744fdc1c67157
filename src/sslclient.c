/* ISC license. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include <skalibs/djbunix.h>
#include <skalibs/sgetopt.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "log.h"
#include "number.h"
#include "options.h"
#include "tlsctx.h"
#include "connenv.h"
#include "connector.h"
#include "lookup.h"
#include "peer.h"
#include "engine.h"

#define USAGE "sslclient [ -463hHrRdDqQvsSeExXnNy ] [ -i localip ] [ -p localport ] [ -T timeoutconn ] [ -l localname ] [ -t timeoutinfo ] [ -a cafile ] [ -A cadir ] [ -c certfile ] [ -k keyfile ] [ -K keypassfile ] [ -V verifydepth ] [ -z ciphers ] [ -F sha256:fingerprint ] [ -w progtimeout ] host port prog..."
#define dieusage() do { if (verbosity) log_line("usage: ", USAGE) ; _exit(100) ; } while (0)

extern char **environ ;

typedef struct options_s options ;
struct options_s
{
  char const *localip ;
  char const *localport ;
  char const *localname ;
  unsigned int timeout1 ;
  unsigned int timeout2 ;
  unsigned int identtimeout ;
  unsigned int idletimeout ;
  char const *passfile ;
  unsigned char pin[PEER_PINLEN] ;
  unsigned int haspin : 1 ;
  unsigned int prefer4 : 1 ;
  unsigned int prefer6 : 1 ;
  unsigned int password : 1 ;
  unsigned int dns : 1 ;
  unsigned int ident : 1 ;
  unsigned int nagle : 1 ;
  unsigned int sslenv : 1 ;
  unsigned int tcpenv : 1 ;
  unsigned int checkname : 1 ;
  unsigned int deferred : 1 ;
} ;

static void timeouts_scan (char const *s, options *o)
{
  char const *plus = strchr(s, '+') ;
  if (!plus) { o->timeout1 = options_number(s, 'T', 1, OPTIONS_SECONDS_MAX) ; o->timeout2 = 0 ; return ; }
  if (!number_scanb(s, plus - s, 1, OPTIONS_SECONDS_MAX, &o->timeout1)) die_x(100, "invalid argument for -T: ", s) ;
  o->timeout2 = options_number(plus + 1, 'T', 0, OPTIONS_SECONDS_MAX) ;
}

typedef struct client_options_s client_options ;
struct client_options_s
{
  options *o ;
  tlsctx_client_config *cfg ;
} ;

static int take_option (int opt, char const *arg, void *data)
{
  options *o = ((client_options *)data)->o ;
  tlsctx_client_config *cfg = ((client_options *)data)->cfg ;
  switch (opt)
  {
    case '4' : o->prefer4 = 1 ; o->prefer6 = 0 ; break ;
    case '6' : o->prefer6 = 1 ; o->prefer4 = 0 ; break ;
    case '3' : o->password = 1 ; break ;
    case 'h' : o->dns = 1 ; break ;
    case 'H' : o->dns = 0 ; break ;
    case 'r' : o->ident = 1 ; break ;
    case 'R' : o->ident = 0 ; break ;
    case 'd' : o->nagle = 1 ; break ;
    case 'D' : o->nagle = 0 ; break ;
    case 's' : o->sslenv = 1 ; break ;
    case 'S' : o->sslenv = 0 ; break ;
    case 'e' : o->tcpenv = 1 ; break ;
    case 'E' : o->tcpenv = 0 ; break ;
    case 'x' : cfg->verify = 1 ; break ;
    case 'X' : cfg->verify = 0 ; break ;
    case 'n' : o->checkname = 1 ; break ;
    case 'N' : o->checkname = 0 ; break ;
    case 'y' : o->deferred = 1 ; break ;
    case 'i' : o->localip = arg ; break ;
    case 'p' : o->localport = arg ; break ;
    case 'T' : timeouts_scan(arg, o) ; break ;
    case 'l' : o->localname = arg ; break ;
    case 't' : o->identtimeout = options_number(arg, 't', 0, OPTIONS_SECONDS_MAX) ; break ;
    case 'a' : cfg->cafile = arg ; break ;
    case 'A' : cfg->cadir = arg ; break ;
    case 'c' : cfg->certfile = arg ; break ;
    case 'k' : cfg->keyfile = arg ; break ;
    case 'K' : o->passfile = arg ; break ;
    case 'V' : cfg->depth = options_number(arg, 'V', 1, 100) ; break ;
    case 'z' : cfg->ciphers = arg ; break ;
    case 'F' : if (!peer_pin_scan(arg, o->pin)) die_x(100, "invalid fingerprint for -F: ", arg, ": expected sha256:64 hex digits") ; o->haspin = 1 ; break ;
    case 'w' : o->idletimeout = options_number(arg, 'w', 0, OPTIONS_SECONDS_MAX) ; break ;
    default : return options_verbosity(opt, 0) ;
  }
  return 1 ;
}

int main (int argc, char const *const *argv)
{
  options o = { .timeout1 = 2, .timeout2 = 58, .identtimeout = 26, .idletimeout = 3600, .dns = 1, .checkname = 1 } ;
  tlsctx_client_config cfg = { .verify = 1, .depth = TLSCTX_CLIENT_VERIFYDEPTH } ;
  client_options co = { .o = &o, .cfg = &cfg } ;
  conninfo ci = { .haslocalhost = 0 } ;
  stralloc modifs = STRALLOC_ZERO ;
  char pid[PID_FMT] ;
  char err[1024] ;
  char const *why ;
  engine e = { .netr = -1, .reportfd = -1 } ;
  int fd, refused, one = 1 ;
  unsigned int what = 0 ;

  PROG = "sslclient" ;
  tlsctx_init() ;
  if (!options_parse(&argc, &argv, "463hHrRdDqQvsSeExXnNyi:p:T:l:t:a:A:c:k:K:V:z:F:w:", &take_option, &co)) dieusage() ;
  if (argc < 3 || !*argv[0]) dieusage() ;
  if (!cfg.cafile && getenv("CAFILE") && *getenv("CAFILE")) cfg.cafile = getenv("CAFILE") ;
  if (!cfg.cadir && getenv("CADIR") && *getenv("CADIR")) cfg.cadir = getenv("CADIR") ;
  if (o.haspin) cfg.verify = 0 ;   /* the pin replaces the CA and the name */
  else if (!cfg.verify) log_warn("-X: the server's certificate is not verified at all") ;
  else if (!o.checkname) log_warn("-N: the server's certificate is not checked against the name ", argv[0]) ;
  if (o.passfile)
  {
    int fd = openb_read(o.passfile) ;
    if (fd == -1) dieu_sys(111, "open ", o.passfile) ;
    cfg.password = tlsctx_read_password(fd, o.passfile) ;
  }
  else if (o.password) cfg.password = tlsctx_read_password(3, "descriptor 3") ;
  e.ctx = tlsctx_client((char const *const *)environ, &cfg, err, sizeof(err)) ;
  if (!e.ctx) die_x(111, err) ;
  tlsctx_forget_password() ;

  fd = connector_open(argv[0], argv[1], o.localip, o.localport, o.prefer4, o.prefer6, o.timeout1, o.timeout2, &refused, &why) ;
  if (fd == -1)
  {
    if (refused) die_x(110, "unable to connect to: ", argv[0], " port: ", argv[1], ": ", why) ;
    die_x(111, "unable to connect to: ", argv[0], " port: ", argv[1], ": ", why) ;
  }
  if (!o.nagle) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ;
  if (!connenv_fromsocket(&ci, fd)) dieu_sys(111, "get connection addresses") ;
  pid[pid_fmt(pid, getpid())] = 0 ;
  log_status("connected to: ", ci.remoteip, " port: ", ci.remoteport) ;
  if (o.localname) connenv_localname(&ci, o.localname) ;
  else if (o.dns) what |= LOOKUP_LOCALHOST ;
  if (o.dns) what |= LOOKUP_REMOTEHOST ;
  if (o.ident) what |= LOOKUP_IDENT ;
  lookup_names(&ci, what, o.identtimeout, 0, 0) ;
  if (!connenv_modifiers(&modifs, &ci, o.tcpenv)) dieu_sys(111, "build the environment") ;

  e.netr = e.netw = fd ;
  e.argv = argv + 2 ;
  e.envp = (char const *const *)environ ;
  e.connmodifs = modifs.s ;
  e.connmodiflen = modifs.len ;
  e.handshaketimeout = o.timeout1 + o.timeout2 ;
  e.idletimeout = o.idletimeout ;
  e.remoteip = ci.remoteip ;
  e.pid = pid ;
  e.sslenv = o.sslenv ;
  e.deferred = o.deferred ;
  e.client = 1 ;
  e.servername = strcmp(argv[0], "0") ? argv[0] : "127.0.0.1" ;
  e.checkname = cfg.verify && o.checkname ;
  e.pin = o.haspin ? o.pin : 0 ;
  _exit(engine_run(&e)) ;   /* returns only for a reusable engine: never here */
}
