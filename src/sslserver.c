/* ISC license. */

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <openssl/ssl.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/env.h>
#include <skalibs/iopause.h>
#include <skalibs/selfpipe.h>
#include <skalibs/sgetopt.h>
#include <skalibs/sig.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "log.h"
#include "options.h"
#include "tlsctx.h"
#include "connenv.h"
#include "listener.h"
#include "privs.h"
#include "engine.h"
#include "lookup.h"
#include "policy.h"
#include "rules.h"
#include "tickets.h"

#define USAGE "sslserver [ -1346UXpPhHrRoOdDqQvVeEsSnNmzZ ] [ -c limit ] [ -x rules.cdb ] [ -B banner ] [ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] [ -t timeout ] [ -T ssltimeout ] [ -w progtimeout ] host port prog..."
#define dieusage() do { if (verbosity) log_line("usage: ", USAGE) ; _exit(100) ; } while (0)

extern char **environ ;

typedef struct options_s options ;
struct options_s
{
  unsigned int limit ;
  unsigned int backlog ;
  unsigned int identtimeout ;
  unsigned int handshaketimeout ;
  unsigned int idletimeout ;
  char const *banner ;
  char const *localname ;
  char const *rules ;
  uid_t uid ;
  gid_t gid ;
  unsigned int clientcert ;
  int printport : 1 ;
  int password : 1 ;
  int prefer4 : 1 ;
  int prefer6 : 1 ;
  int envuidgid : 1 ;
  int rulesoptional : 1 ;
  int paranoid : 1 ;
  int dns : 1 ;
  int ident : 1 ;
  int keepipoptions : 1 ;
  int nagle : 1 ;
  int tcpenv : 1 ;
  int sslenv : 1 ;
  int deferred : 2 ;            /* -1 = by UCSPITLS, 0 = -N, 1 = -n */
} ;

static void parse_options (int *argc, char const *const **argv, options *o)
{
  subgetopt l = SUBGETOPT_ZERO ;
  for (;;)
  {
    int opt = subgetopt_r(*argc, *argv, "1346UXpPhHrRoOdDqQvVeEsSnNmzZc:x:B:g:u:b:l:t:T:w:", &l) ;
    if (opt == -1) break ;
    switch (opt)
    {
      case '1' : o->printport = 1 ; break ;
      case '3' : o->password = 1 ; break ;
      case '4' : o->prefer4 = 1 ; o->prefer6 = 0 ; break ;
      case '6' : o->prefer6 = 1 ; o->prefer4 = 0 ; break ;
      case 'U' : o->envuidgid = 1 ; break ;
      case 'X' : o->rulesoptional = 1 ; break ;
      case 'p' : o->paranoid = 1 ; break ;
      case 'P' : o->paranoid = 0 ; break ;
      case 'h' : o->dns = 1 ; break ;
      case 'H' : o->dns = 0 ; break ;
      case 'r' : o->ident = 1 ; break ;
      case 'R' : o->ident = 0 ; break ;
      case 'o' : o->keepipoptions = 1 ; break ;
      case 'O' : o->keepipoptions = 0 ; break ;
      case 'd' : o->nagle = 1 ; break ;
      case 'D' : o->nagle = 0 ; break ;
      case 'q' : verbosity = 0 ; break ;
      case 'Q' : verbosity = 1 ; break ;
      case 'v' : verbosity = 2 ; break ;
      case 'V' : verbosity = 3 ; break ;
      case 'e' : o->tcpenv = 1 ; break ;
      case 'E' : o->tcpenv = 0 ; break ;
      case 's' : o->sslenv = 1 ; break ;
      case 'S' : o->sslenv = 0 ; break ;
      case 'n' : o->deferred = 1 ; break ;
      case 'N' : o->deferred = 0 ; break ;
      case 'm' : o->clientcert = TLSCTX_CLIENTCERT_REQUIRE ; break ;
      case 'z' : o->clientcert = TLSCTX_CLIENTCERT_MATCHHOST ; break ;
      case 'Z' : o->clientcert = TLSCTX_CLIENTCERT_NONE ; break ;
      case 'c' : o->limit = options_number(l.arg, 'c', 1) ; break ;
      case 'x' : o->rules = l.arg ; break ;
      case 'B' : o->banner = l.arg ; break ;
      case 'g' : o->gid = options_number(l.arg, 'g', 0) ; break ;
      case 'u' : o->uid = options_number(l.arg, 'u', 0) ; break ;
      case 'b' : o->backlog = options_number(l.arg, 'b', 1) ; break ;
      case 'l' : o->localname = l.arg ; break ;
      case 't' : o->identtimeout = options_number(l.arg, 't', 0) ; break ;
      case 'T' : o->handshaketimeout = options_number(l.arg, 'T', 0) ; break ;
      case 'w' : o->idletimeout = options_number(l.arg, 'w', 0) ; break ;
      default : dieusage() ;
    }
  }
  *argc -= l.ind ; *argv += l.ind ;
}

 /* The connection process: everything between accept and the engine.
    samehost counts this client's connections, this one included. */
static void connection (int fd, struct sockaddr_storage const *peer, options const *o, SSL_CTX *ctx, tlsctx_config const *cfg, unsigned int samehost, char const *const *argv)
{
  conninfo ci = { .haslocalhost = 0 } ;
  rules_result r = RULES_RESULT_ZERO ;
  char pid[PID_FMT] ;
  stralloc modifs = STRALLOC_ZERO ;
  size_t envmax = env_len((char const *const *)environ) + 1 ;
  engine e = { .ctx = 0 } ;
  int one = 1 ;
  unsigned int what = 0 ;

  pid[pid_fmt(pid, getpid())] = 0 ;
  if (!connenv_fromaccept(&ci, fd, peer)) { log_status("pid ", pid, " from ", ci.remoteip) ; dieu_sys(111, "get the local address of a connection from ", ci.remoteip) ; }
  log_status("pid ", pid, " from ", ci.remoteip) ;
  if (!o->nagle) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ;
  if (!o->keepipoptions && !strchr(ci.localip, ':')) setsockopt(fd, IPPROTO_IP, IP_OPTIONS, 0, 0) ;
  if (o->localname) connenv_localname(&ci, o->localname) ;
  else if (o->dns) what |= LOOKUP_LOCALHOST ;
  if (o->dns) what |= LOOKUP_REMOTEHOST | (o->paranoid ? LOOKUP_PARANOID : 0) ;
  if (o->ident) what |= LOOKUP_IDENT ;
  lookup_names(&ci, what, o->identtimeout) ;

  if (o->rules) policy_rules(o->rules, o->rulesoptional, &ci, &r) ;
  if (r.deny) { connenv_log("deny", pid, &ci, "") ; _exit(100) ; }
  if (r.hasmaxconip && samehost > r.maxconip)
  {
    char n[UINT_FMT + 40] = " ip connection limit:" ;
    n[21 + uint_fmt(n + 21, r.maxconip)] = 0 ;
    connenv_log("deny", pid, &ci, n, " exceeded") ;
    _exit(100) ;
  }
  connenv_log("ok", pid, &ci, "") ;
  if (!connenv_modifiers(&modifs, &ci, o->tcpenv) || !stralloc_catb(&modifs, r.env.s, r.env.len))
    dieu_sys(111, "build the environment") ;
  for (size_t i = 0 ; i < r.env.len ; i++) if (!r.env.s[i]) envmax++ ;

  {
    char const *connenv[envmax] ;
    policy_environment(connenv, envmax, (char const *const *)environ, &r) ;
    e.ctx = policy_context(ctx, connenv, &r, cfg) ;
    privs_engine_from_env(&e.tls, connenv, o->uid, o->gid) ;
    e.clientcert = tlsctx_clientcert(connenv, o->clientcert) ;
    e.deferred = o->deferred == 1 || (o->deferred == -1 && env_get2(connenv, "UCSPITLS")) ;
  }
  e.netr = e.netw = fd ;
  e.argv = argv ;
  e.envp = (char const *const *)environ ;
  e.connmodifs = modifs.s ;
  e.connmodiflen = modifs.len ;
  e.banner = o->banner ;
  e.appuid = o->uid ;
  e.appgid = o->gid ;
  e.handshaketimeout = o->handshaketimeout ;
  e.idletimeout = o->idletimeout ;
  e.remotehost = ci.hasremotehost ? ci.remotehost : 0 ;
  e.remoteip = ci.remoteip ;
  e.pid = pid ;
  e.sslenv = o->sslenv ;
  engine_run(&e) ;
}

static void log_status_count (unsigned int n, unsigned int limit)
{
  char a[UINT_FMT], b[UINT_FMT] ;
  a[uint_fmt(a, n)] = 0 ;
  b[uint_fmt(b, limit)] = 0 ;
  log_status("status: ", a, "/", b) ;
}

static char const *orunset (char const *name)
{
  static struct { char const *name ; char const *dflt ; } const defaults[] =
  {
    { "CIPHERS", TLSCTX_CIPHERS }, { "CIPHERSUITES", TLSCTX_CIPHERSUITES }, { "GROUPS", TLSCTX_GROUPS },
    { "CIPHERORDER", "client" }, { "TLSMINVERSION", "TLSv1.2" }, { "TLSMAXVERSION", "TLSv1.3" }, { "VERIFYDEPTH", TLSCTX_VERIFYDEPTH_STRING }
  } ;
  char const *s = getenv(name) ;
  if (s && *s) return s ;
  for (unsigned int i = 0 ; i < sizeof(defaults) / sizeof(defaults[0]) ; i++)
    if (!strcmp(name, defaults[i].name)) return defaults[i].dflt ;
  return "(not set)" ;
}

 /* -V: what the TLS context was built from, one line per setting. */
static void log_config (options const *o)
{
  static char const *const names[] =
  {
    "CERTFILE", "KEYFILE", "CERTCHAINFILE", "CAFILE", "CADIR", "CCAFILE", "VERIFYDEPTH", "CIPHERS",
    "CIPHERSUITES", "CIPHERORDER", "TLSMINVERSION", "TLSMAXVERSION", "GROUPS", "DHFILE", "SSL_UID", "SSL_GID", "TLS_UID", "TLS_GID", "SSL_CHROOT", "MAXCONIP", 0
  } ;
  char n[UINT_FMT] ;
  for (unsigned int i = 0 ; names[i] ; i++) log_line("config: ", names[i], "=", orunset(names[i])) ;
  for (char **e = environ ; *e ; e++)
    if (!strncmp(*e, "CERTFILE:", 9) || !strncmp(*e, "KEYFILE:", 8)) log_line("config: ", *e) ;
  n[uint_fmt(n, o->limit)] = 0 ;
  log_line("config: limit ", n) ;
  n[uint_fmt(n, o->backlog)] = 0 ;
  log_line("config: backlog ", n) ;
  n[uint_fmt(n, o->identtimeout)] = 0 ;
  log_line("config: lookup timeout ", n, " s") ;
  n[uint_fmt(n, o->handshaketimeout)] = 0 ;
  log_line("config: handshake timeout ", n, " s") ;
  n[uint_fmt(n, o->idletimeout)] = 0 ;
  log_line("config: idle timeout ", n, " s") ;
  log_line("config: rules ", o->rules ? o->rules : "(none)") ;
}

typedef struct child_s child ;
struct child_s
{
  pid_t pid ;
  unsigned char ip[16] ;   /* IPv4 as v4-mapped, so both spellings compare equal */
} ;

static void peer_key (struct sockaddr_storage const *ss, unsigned char *key)
{
  if (ss->ss_family == AF_INET6) memcpy(key, &((struct sockaddr_in6 const *)ss)->sin6_addr, 16) ;
  else
  {
    memcpy(key, "\0\0\0\0\0\0\0\0\0\0\377\377", 12) ;
    memcpy(key + 12, &((struct sockaddr_in const *)ss)->sin_addr, 4) ;
  }
}

int main (int argc, char const *const *argv)
{
  options o =
  {
    .limit = 40, .backlog = 20, .identtimeout = 26, .handshaketimeout = 26, .idletimeout = 3600,
    .dns = 1, .sslenv = 1, .deferred = -1,
  } ;
  unsigned char sidctx[32] ;
  tlsctx_config cfg = { .sidctx = sidctx, .sidctxlen = 32, .tickets = 1 } ;
  char err[1024] ;
  char ip[CONNENV_IPFMT], port[CONNENV_PORTFMT] ;
  unsigned int children = 0, maxconip = 0 ;
  SSL_CTX *ctx ;
  int lfd, spfd ;

  PROG = "sslserver" ;
  parse_options(&argc, &argv, &o) ;
  if (argc < 3 || !*argv[0]) dieusage() ;
  if (fcntl(0, F_GETFD) == -1 && open("/dev/null", O_RDONLY) == -1) dieu_sys(111, "open /dev/null") ;
  if (fcntl(1, F_GETFD) == -1 && open("/dev/null", O_WRONLY) == -1) dieu_sys(111, "open /dev/null") ;
  if (o.envuidgid) privs_envuidgid(&o.uid, &o.gid) ;
  {
    char const *s = getenv("MAXCONIP") ;
    char *end ;
    if (s && *s && (*s < '0' || *s > '9' || !(maxconip = strtoul(s, &end, 10)) || *end)) die_x(100, "invalid MAXCONIP: ", s) ;
  }
  {
    privs_engine p ;
    privs_engine_from_env(&p, (char const *const *)environ, o.uid, o.gid) ;
    privs_engine_check(&p) ;
  }
  cfg.clientcert = o.clientcert ;
  if (o.password) cfg.password = tlsctx_read_password(3) ;

  {
    stralloc words = STRALLOC_ZERO ;
    for (int i = 0 ; i < argc ; i++)
      if (!stralloc_catb(&words, argv[i], strlen(argv[i]) + 1)) dieu_sys(111, "compute the session id context") ;
    tlsctx_sidctx(sidctx, "sslserver", 10, words.s, words.len) ;
    stralloc_free(&words) ;
  }
  ctx = tlsctx_server((char const *const *)environ, &cfg, err, sizeof(err)) ;
  if (!ctx) die_x(111, err) ;
  tlsctx_warmup(ctx) ;
  if (verbosity >= 3) log_config(&o) ;

  lfd = listener_open(argv[0], argv[1], o.prefer4, o.prefer6, o.backlog, ip, port) ;
  if (o.printport)
  {
    size_t iplen = strlen(ip), portlen = strlen(port) ;
    char line[CONNENV_IPFMT + 3 + CONNENV_PORTFMT + 1] ;
    memcpy(line, ip, iplen) ;
    memcpy(line + iplen, " : ", 3) ;
    memcpy(line + iplen + 3, port, portlen) ;
    line[iplen + 3 + portlen] = '\n' ;
    if (allwrite(1, line, iplen + portlen + 4) < iplen + portlen + 4) dieu_sys(111, "write to stdout") ;
  }
  {
    int null = open("/dev/null", O_RDWR) ;
    if (null == -1 || fd_copy(0, null) == -1 || fd_copy(1, null) == -1) dieu_sys(111, "redirect stdin and stdout to /dev/null") ;
    if (null > 2) fd_close(null) ;
  }

  spfd = selfpipe_init() ;
  if (spfd == -1) dieu_sys(111, "init selfpipe") ;
  {
    sigset_t set ;
    sigemptyset(&set) ;
    sigaddset(&set, SIGCHLD) ;
    sigaddset(&set, SIGTERM) ;
    sigaddset(&set, SIGHUP) ;
    if (!selfpipe_trapset(&set)) dieu_sys(111, "trap signals") ;
  }
  tain_now_set_stopwatch_g() ;
  log_status_count(0, o.limit) ;

  {
    child table[o.limit] ;
    tain rotation ;
    tain_addsec_g(&rotation, TICKETS_ROTATE_SECS) ;
    for (;;)
    {
      iopause_fd x[2] = { { .fd = spfd, .events = IOPAUSE_READ }, { .fd = lfd, .events = IOPAUSE_READ } } ;
      int r = iopause_g(x, children < o.limit ? 2 : 1, &rotation) ;
      if (r == -1) { if (errno == EINTR) continue ; dieu_sys(111, "iopause") ; }
      if (!r)
      {
        if (!tickets_rotate()) log_warn("unable to rotate the session ticket keys") ;
        tain_addsec_g(&rotation, TICKETS_ROTATE_SECS) ;
        continue ;
      }
      if (x[0].revents)
      {
        for (;;)
        {
          int sig = selfpipe_read() ;
          if (sig == -1) dieu_sys(111, "read selfpipe") ;
          if (!sig) break ;
          if (sig == SIGTERM) _exit(0) ;
          if (sig == SIGHUP)
          {
            SSL_CTX *fresh ;
            if (!tickets_rotate()) log_warn("unable to rotate the session ticket keys") ;
            fresh = tlsctx_server((char const *const *)environ, &cfg, err, sizeof(err)) ;
            if (fresh) { SSL_CTX_free(ctx) ; ctx = fresh ; tlsctx_warmup(ctx) ; log_status("reloaded TLS material") ; }
            else log_warn("unable to reload TLS material, keeping the previous one: ", err) ;
          }
          if (sig == SIGCHLD)
          {
            for (;;)
            {
              int wstat ;
              pid_t pid = waitpid(-1, &wstat, WNOHANG) ;
              char a[PID_FMT], b[UINT_FMT] ;
              if (pid <= 0) break ;
              for (unsigned int i = 0 ; i < children ; i++)
                if (table[i].pid == pid) { table[i] = table[--children] ; break ; }
              a[pid_fmt(a, pid)] = 0 ;
              b[uint_fmt(b, (unsigned int)wstat)] = 0 ;
              log_status("end ", a, " status ", b) ;
              log_status_count(children, o.limit) ;
            }
          }
        }
      }
      if (children < o.limit && x[1].revents)
      {
        struct sockaddr_storage peer ;
        socklen_t peerlen = sizeof(peer) ;
        unsigned int same = 1 ;
        pid_t pid ;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &peerlen, SOCK_CLOEXEC) ;
        if (fd == -1)
        {
          if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) log_warn("unable to accept: ", strerror(errno)) ;
          continue ;
        }
        peer_key(&peer, table[children].ip) ;
        for (unsigned int i = 0 ; i < children ; i++)
          if (!memcmp(table[i].ip, table[children].ip, 16)) same++ ;
        if (maxconip && same > maxconip)
        {
          char a[CONNENV_IPFMT], p[CONNENV_PORTFMT], n[UINT_FMT] ;
          connenv_fmtaddr(&peer, a, p) ;
          n[uint_fmt(n, maxconip)] = 0 ;
          log_warn("ip connection limit of ", n, " exceeded for: ", a) ;
          fd_close(fd) ;
          continue ;
        }
        pid = fork() ;
        if (pid == -1) { log_warn("unable to fork: ", strerror(errno)) ; fd_close(fd) ; continue ; }
        if (!pid)
        {
          selfpipe_finish() ;
          fd_close(lfd) ;
          connection(fd, &peer, &o, ctx, &cfg, same, argv + 2) ;
        }
        fd_close(fd) ;
        table[children++].pid = pid ;
        log_status_count(children, o.limit) ;
      }
    }
  }
}
