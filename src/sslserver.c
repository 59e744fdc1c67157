/* ISC license. */

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <malloc.h>

#include <openssl/ssl.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/alloc.h>
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
#include "number.h"
#include "options.h"
#include "tlsctx.h"
#include "connenv.h"
#include "listener.h"
#include "privs.h"
#include "engine.h"
#include "lookup.h"
#include "connection.h"
#include "rules.h"
#include "tickets.h"
#include "counters.h"
#include "notify.h"
#include "check.h"
#include "pool.h"

#define USAGE "sslserver [ -1346CUXpPhHrRoOdDqQvVeEsSnNmzZ ] [ -c limit ] [ -x rules.cdb ] [ -B banner ] [ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] [ -t timeout ] [ -T ssltimeout ] [ -w progtimeout ] host port prog..."
#define dieusage() do { if (verbosity) log_line("usage: ", USAGE) ; _exit(100) ; } while (0)

extern char **environ ;

/* Most limits exist so that a typo cannot make the server allocate or ask
   the kernel for absurd amounts. */
#define LIMIT_MAX 100000
#define BACKLOG_MAX 65535
#define REUSE_MAX 100000
#define IDLE_MAX 3600

 /* ENGINEREUSE's default: connections one engine process serves. */
#define REUSE_DEFAULT 100
 /* Idle engines kept for the next clients, at most this many, for at
    most ENGINEIDLE seconds: a quiet server goes back to its main process
    alone. */
#define POOL_IDLE_MAX 8
#define IDLE_DEFAULT 10

typedef struct options_s options ;
struct options_s
{
  connection_options conn ;     /* what every connection process needs */
  privs_engine engine ;         /* from the server's environment: the engine's and the look-ups' identity */
  unsigned int limit ;
  unsigned int backlog ;
  unsigned int identtimeout ;
  char const *localname ;
  unsigned int printport : 1 ;
  unsigned int password : 1 ;
  unsigned int prefer4 : 1 ;
  unsigned int prefer6 : 1 ;
  unsigned int envuidgid : 1 ;
  unsigned int paranoid : 1 ;
  unsigned int dns : 1 ;
  unsigned int ident : 1 ;
  unsigned int keepipoptions : 1 ;
  unsigned int nagle : 1 ;
  unsigned int check : 1 ;
} ;

#define OPTSTRING "1346CUXpPhHrRoOdDqQvVeEsSnNmzZc:x:B:g:u:b:l:t:T:w:"

static int take_option (int opt, char const *arg, void *data)
{
  options *o = data ;
  switch (opt)
  {
    case '1' : o->printport = 1 ; break ;
    case '3' : o->password = 1 ; break ;
    case 'C' : o->check = 1 ; break ;
    case '4' : o->prefer4 = 1 ; o->prefer6 = 0 ; break ;
    case '6' : o->prefer6 = 1 ; o->prefer4 = 0 ; break ;
    case 'U' : o->envuidgid = 1 ; break ;
    case 'X' : o->conn.rulesoptional = 1 ; break ;
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
    case 'e' : o->conn.tcpenv = 1 ; break ;
    case 'E' : o->conn.tcpenv = 0 ; break ;
    case 's' : o->conn.sslenv = 1 ; break ;
    case 'S' : o->conn.sslenv = 0 ; break ;
    case 'n' : o->conn.deferred = 1 ; break ;
    case 'N' : o->conn.deferred = 0 ; break ;
    case 'm' : o->conn.clientcert = TLSCTX_CLIENTCERT_REQUIRE ; break ;
    case 'z' : o->conn.clientcert = TLSCTX_CLIENTCERT_MATCHHOST ; break ;
    case 'Z' : o->conn.clientcert = TLSCTX_CLIENTCERT_NONE ; break ;
    case 'c' : o->limit = options_number(arg, 'c', 1, LIMIT_MAX) ; break ;
    case 'x' : o->conn.rules = arg ; break ;
    case 'B' : o->conn.banner = arg ; break ;
    case 'g' : o->conn.gid = options_number(arg, 'g', 0, OPTIONS_ID_MAX) ; break ;
    case 'u' : o->conn.uid = options_number(arg, 'u', 0, OPTIONS_ID_MAX) ; break ;
    case 'b' : o->backlog = options_number(arg, 'b', 1, BACKLOG_MAX) ; break ;
    case 'l' : o->localname = arg ; break ;
    case 't' : o->identtimeout = options_number(arg, 't', 0, OPTIONS_SECONDS_MAX) ; break ;
    case 'T' : o->conn.handshaketimeout = options_number(arg, 'T', 0, OPTIONS_SECONDS_MAX) ; break ;
    case 'w' : o->conn.idletimeout = options_number(arg, 'w', 0, OPTIONS_SECONDS_MAX) ; break ;
    default : return options_verbosity(opt, 1) ;
  }
  return 1 ;
}

static void log_status_count (unsigned int n, unsigned int limit)
{
  char a[UINT_FMT], b[UINT_FMT] ;
  a[uint_fmt(a, n)] = 0 ;
  b[uint_fmt(b, limit)] = 0 ;
  log_status("status: ", a, "/", b) ;
}

static void log_setting (char const *name, char const *dflt)
{
  char const *s = getenv(name) ;
  log_line("config: ", name, "=", s && *s ? s : dflt ? dflt : "(not set)") ;
}

 /* -V: what the TLS context was built from, one line per setting. */
static void log_config (options const *o)
{
  char n[UINT_FMT] ;
  for (tlsctx_var const *v = tlsctx_vars ; v->name ; v++) log_setting(v->name, v->dflt) ;
  log_setting("MAXCONIP", 0) ;
  log_setting("REUSEPORT", 0) ;
  log_setting("ENGINEREUSE", "100") ;
  log_setting("ENGINEIDLE", "10") ;
  for (char **e = environ ; *e ; e++)
    if ((*e)[strcspn(*e, ":=")] == ':' && tlsctx_var_has(*e, TLSCTX_VAR_NAMED)) log_line("config: ", *e) ;
  n[uint_fmt(n, o->limit)] = 0 ;
  log_line("config: limit ", n) ;
  n[uint_fmt(n, o->backlog)] = 0 ;
  log_line("config: backlog ", n) ;
  n[uint_fmt(n, o->identtimeout)] = 0 ;
  log_line("config: lookup timeout ", n, " s") ;
  n[uint_fmt(n, o->conn.handshaketimeout)] = 0 ;
  log_line("config: handshake timeout ", n, " s") ;
  n[uint_fmt(n, o->conn.idletimeout)] = 0 ;
  log_line("config: idle timeout ", n, " s") ;
  log_line("config: rules ", o->conn.rules ? o->conn.rules : "(none)") ;
}

typedef struct child_s child ;
struct child_s
{
  pid_t pid ;
  unsigned char ip[16] ;   /* IPv4 as v4-mapped, so both spellings compare equal */
  int report ;             /* behind a balancer: where the real address comes from, else -1 */
  int chan ;               /* a reusable engine's channel (pool.h), else -1 */
  unsigned int served ;    /* connections a reusable engine was given */
  tain idlesince ;         /* an idle engine's last end */
  unsigned int known : 1 ; /* ip is the client's (always, unless behind a balancer) */
  unsigned int busy : 1 ;  /* serving a connection; else an idle or retired engine */
} ;

 /* What the rules cdb allows (connection_rules_reusable), by the identity
    of the file it was learnt from. */
typedef struct rulescache_s rulescache ;
struct rulescache_s
{
  dev_t dev ;
  ino_t ino ;
  off_t size ;
  struct timespec mtime ;
  struct timespec ctime ;
  int reusable ;
} ;

 /* The main process's state. */
typedef struct server_s server ;
struct server_s
{
  options o ;
  tlsctx_config cfg ;
  unsigned char sidctx[32] ;
  SSL_CTX *ctx ;
  char const *const *argv ;     /* the program */
  unsigned int maxconip ;       /* MAXCONIP of the server's environment, 0 = none */
  proxy_list proxies ;          /* PROXYFROM */
  int lfd ;
  int spfd ;
  notify notify ;               /* systemd's NOTIFY_SOCKET */
  unsigned int children ;       /* processes in the table */
  unsigned int busy ;           /* connections being served: what -c limits */
  unsigned int capacity ;       /* entries of the table */
  unsigned int reuse ;          /* ENGINEREUSE */
  unsigned int idlesecs ;       /* ENGINEIDLE */
  int pool ;                    /* engines may be reused (pool.h) */
  rulescache rc ;
  child *table ;                /* capacity entries */
  iopause_fd *x ;               /* 3 + o.limit + capacity entries: reports, channels */
  unsigned int *xchild ;        /* which child an entry of x is for */
  tain rotation ;               /* when the ticket keys rotate next */
  char const *ticketkeyfile ;   /* TICKETKEYFILE, or 0: keys made here and rotated */
  int reportfd ;                /* the connection processes' end of the counters' socket */
  char const *metricsfile ;     /* METRICSFILE, or 0 */
  int metricsdirty ;            /* the counters changed since the file was written */
  tain metricsdue ;             /* not written again before then */
} ;

 /* Engines hold the ticket keys and TLS material of their fork: from now
    on, none is given another connection (each ends with its current one). */
static void retire_engines (server *s)
{
  for (unsigned int i = 0 ; i < s->children ; i++)
    if (s->table[i].chan >= 0) { fd_close(s->table[i].chan) ; s->table[i].chan = -1 ; }
}

static void rotate_tickets (server *s)
{
  retire_engines(s) ;
  if (!tickets_rotate()) log_warn("unable to rotate the session ticket keys") ;
  tain_addsec_g(&s->rotation, TICKETS_ROTATE_SECS) ;
}

 /* -C, and SIGHUP: the checks of check.h on the server's environment. */
static unsigned int check_material (server const *s, unsigned int mode)
{
  check_options co = { .mode = mode, .localname = s->o.localname, .rules = s->o.conn.rules, .rulesoptional = s->o.conn.rulesoptional, .cfg = &s->cfg } ;
  return check_run((char const *const *)environ, &co) ;
}

 /* SIGHUP: new ticket keys (or TICKETKEYFILE again) and a new context; on
    failure the old ones stay. */
static void reload (server *s)
{
  char err[1024] ;
  SSL_CTX *fresh ;
  notify_reloading(&s->notify) ;
  retire_engines(s) ;
  check_material(s, CHECK_MODE_RELOAD) ;
  if (!s->ticketkeyfile) rotate_tickets(s) ;
  else if (!tickets_load(s->ticketkeyfile, err, sizeof(err))) log_warn(err, ", keeping the previous keys") ;
  fresh = tlsctx_server((char const *const *)environ, &s->cfg, err, sizeof(err)) ;
  if (!fresh) log_warn("unable to reload TLS material, keeping the previous one: ", err) ;
  else
  {
    SSL_CTX_free(s->ctx) ;
    s->ctx = fresh ;
    tlsctx_warmup(s->ctx) ;
    log_status("reloaded TLS material") ;
  }
  /* serving again, with the old material or the new */
  notify_ready(&s->notify) ;
}

 /* Connections of the client at ip, among those whose address is known. */
static unsigned int count_same (server const *s, unsigned char const *ip)
{
  unsigned int n = 0 ;
  for (unsigned int i = 0 ; i < s->children ; i++)
    if (s->table[i].busy && s->table[i].known && !memcmp(s->table[i].ip, ip, 16)) n++ ;
  return n ;
}

static void forget_report (child *c)
{
  if (c->report >= 0) fd_close(c->report) ;
  c->report = -1 ;
}

static void log_end (pid_t pid, int wstat)
{
  char a[PID_FMT], b[UINT_FMT] ;
  a[pid_fmt(a, pid)] = 0 ;
  b[uint_fmt(b, (unsigned int)wstat)] = 0 ;
  log_status("end ", a, " status ", b) ;
}

static void connection_ended (server *s)
{
  s->busy-- ;
  log_status_count(s->busy, s->o.limit) ;
  counters_current(s->busy) ;
  s->metricsdirty = 1 ;
}

static unsigned int count_idle (server const *s)
{
  unsigned int n = 0 ;
  for (unsigned int i = 0 ; i < s->children ; i++)
    if (!s->table[i].busy && s->table[i].chan >= 0) n++ ;
  return n ;
}

 /* A reusable engine's channel is readable: the connection it served
    ended well (logged as a connection process's end, with the program's
    status), or the engine is gone (its reaping says how it ended). An
    idle engine has nothing to say: one that speaks is retired. */
static void engine_report (server *s, child *c)
{
  int status ;
  if (!c->busy || !pool_read_end(c->chan, &status))
  {
    fd_close(c->chan) ;
    c->chan = -1 ;
    return ;
  }
  log_end(c->pid, (status & 0xff) << 8) ;
  forget_report(c) ;
  c->busy = 0 ;
  c->known = 0 ;
  connection_ended(s) ;
  if (c->served >= s->reuse || count_idle(s) > POOL_IDLE_MAX) { fd_close(c->chan) ; c->chan = -1 ; }
  else c->idlesince = STAMP ;
}

 /* Retires the engines idle for ENGINEIDLE seconds; *next is lowered to when
    the next one will be. */
static void retire_idle (server *s, tain *next)
{
  for (unsigned int i = 0 ; i < s->children ; i++)
  {
    child *c = &s->table[i] ;
    tain due ;
    if (c->busy || c->chan < 0) continue ;
    tain_addsec(&due, &c->idlesince, s->idlesecs) ;
    if (!tain_less(&STAMP, &due)) { fd_close(c->chan) ; c->chan = -1 ; }
    else if (tain_less(&due, next)) *next = due ;
  }
}

 /* A process ended: a connection process, an engine with its connection
    (which may have said how it ended just before), or an idle engine
    retired (nothing to log). */
static void reap (server *s)
{
  for (;;)
  {
    int wstat ;
    pid_t pid = waitpid(-1, &wstat, WNOHANG) ;
    if (pid <= 0) break ;
    for (unsigned int i = 0 ; i < s->children ; i++)
      if (s->table[i].pid == pid)
      {
        child *c = &s->table[i] ;
        if (c->busy && c->chan >= 0) engine_report(s, c) ;
        if (c->chan >= 0) fd_close(c->chan) ;
        forget_report(c) ;
        if (c->busy)
        {
          log_end(pid, wstat) ;
          connection_ended(s) ;
        }
        s->table[i] = s->table[--s->children] ;
        break ;
      }
  }
}

static void handle_signals (server *s)
{
  for (;;)
  {
    int sig = selfpipe_read() ;
    switch (sig)
    {
      case -1 : dieu_sys(111, "read selfpipe") ;
      case 0 : return ;
      case SIGTERM : notify_stopping(&s->notify) ; _exit(0) ;
      case SIGHUP : reload(s) ; break ;
      case SIGUSR1 : counters_read() ; counters_log() ; break ;
      case SIGCHLD : reap(s) ; break ;
    }
  }
}

static void log_over_limit (unsigned int maxconip, char const *ip)
{
  char n[UINT_FMT] ;
  n[uint_fmt(n, maxconip)] = 0 ;
  log_warn("ip connection limit of ", n, " exceeded for: ", ip) ;
}

 /* Behind a balancer, the connection process learns the real client from
    the PROXY header and the main process counts that client's connections:
    see answer_report. Returns the count, this connection included. */
static unsigned int learn_count (connection const *c, int report, unsigned int secs)
{
  struct sockaddr_storage ss ;
  socklen_t len ;
  unsigned char ip[16] ;
  unsigned int same = 0 ;
  tain deadline ;
  iopause_fd x = { .fd = report, .events = IOPAUSE_READ } ;
  tain_now_g() ;
  if (secs) tain_addsec_g(&deadline, secs) ; else deadline = tain_infinite ;
  if (!connenv_sockaddr(c->info.remoteip, 0, &ss, &len)) dieu_x(111, "parse the address ", c->info.remoteip) ;
  proxy_key(&ss, ip) ;
  if (fd_write(report, (char *)ip, 16) != 16) dieu_sys(111, "report the client's address to the server") ;
  while (iopause_g(&x, 1, &deadline) == -1)
    if (errno != EINTR) dieu_sys(111, "wait for the server") ;
  if (!x.revents || fd_read(report, (char *)&same, sizeof(same)) != sizeof(same))
    dieu_x(111, "learn the client's connection count from the server") ;
  fd_close(report) ;
  return same ;
}

 /* The connection process: everything between accept and the engine.
    samehost counts this client's connections, this one included; with a
    report socket (the peer is a balancer listed in PROXYFROM) it is learnt
    once the PROXY header has named the client. */
static int connection_run (server const *s, int fd, pool_conn const *pc, int report, int rulesfd, int reusable)
{
  options const *o = &s->o ;
  connection c = CONNECTION_ZERO ;
  unsigned int what = 0, samehost = pc->samehost ;
  struct sockaddr_storage const *peer = &pc->peer ;
  int one = 1, status ;

  connection_init(&c) ;
  c.rulesfd = rulesfd ;
  c.rulesmissing = pc->rulesmissing ;
  c.reusable = reusable ;
  c.reportfd = s->reportfd ;
  if (!connenv_fromaccept(&c.info, fd, peer)) { log_status("pid ", c.pid, " from ", c.info.remoteip) ; dieu_sys(111, "get the local address of a connection from ", c.info.remoteip) ; }
  if (report >= 0)
  {
    connection_proxy(&c, &s->proxies, fd, o->conn.handshaketimeout) ;
    samehost = learn_count(&c, report, o->conn.handshaketimeout) ;
    if (s->maxconip && samehost > s->maxconip)
    {
      log_over_limit(s->maxconip, c.info.remoteip) ;
      counters_refused(s->reportfd, "maxconip") ;
      _exit(100) ;
    }
  }
  log_status("pid ", c.pid, " from ", c.info.remoteip) ;
  if (!o->nagle) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ;
  if (!o->keepipoptions && !strchr(c.info.localip, ':')) setsockopt(fd, IPPROTO_IP, IP_OPTIONS, 0, 0) ;
  if (o->localname) connenv_localname(&c.info, o->localname) ;
  else if (o->dns) what |= LOOKUP_LOCALHOST ;
  if (o->dns) what |= LOOKUP_REMOTEHOST | (o->paranoid ? LOOKUP_PARANOID : 0) ;
  if (o->ident) what |= LOOKUP_IDENT ;
  /* as the engine's user: they parse what DNS servers and the client's
     identd send */
  lookup_names(&c.info, what, o->identtimeout, o->engine.uid, o->engine.gid) ;
  connection_prepare(&c, &o->conn, s->ctx, &s->cfg, samehost, fd, fd, s->argv) ;
  status = engine_run(&c.engine) ;
  connection_wipe(&c) ;
  return status ;
}

 /* Overwrites the stack the connection used below this frame: the
    handshake's and the relay's locals. */
static void __attribute__((noinline)) wipe_stack (void)
{
  char area[65536] ;
  explicit_bzero(area, sizeof(area)) ;
}

 /* The connection process; with a channel, a reusable engine: after each
    connection that ended well it says so and waits for the next one,
    until the main process closes the channel. */
static void serve (server const *s, int chan, int fd, pool_conn const *first, int report, int rulesfd) __attribute__((noreturn)) ;
static void serve (server const *s, int chan, int fd, pool_conn const *first, int report, int rulesfd)
{
  pool_conn pc = *first ;
  for (;;)
  {
    int status = connection_run(s, fd, &pc, report, rulesfd, chan >= 0) ;
    if (!pool_report_end(chan, status)) _exit(status) ;
    wipe_stack() ;
    explicit_bzero(&pc, sizeof(pc)) ;
    malloc_trim(0) ;
    if (!pool_receive(chan, &fd, &rulesfd, &report, &pc)) _exit(0) ;
  }
}

 /* The main process's side of learn_count: answers when the report socket
    is readable, so a slow PROXY header never holds up the accept loop. */
static void answer_report (server *s, child *c)
{
  unsigned char ip[16] ;
  if (fd_read(c->report, (char *)ip, 16) == 16)
  {
    unsigned int same = count_same(s, ip) + 1 ;
    memcpy(c->ip, ip, 16) ;
    c->known = 1 ;
    fd_write(c->report, (char *)&same, sizeof(same)) ;
  }
  forget_report(c) ;
}

 /* Whether this connection may go to a reusable engine, with the rules
    cdb it is to read: opened here, so that the engine, no longer root,
    reads the very file whose rules were checked, whoever may read it. */
static int rules_for_engine (server *s, int *fd, int *missing)
{
  rulescache *rc = &s->rc ;
  struct stat st ;
  *fd = -1 ;
  *missing = 0 ;
  if (!s->o.conn.rules) return 1 ;
  *fd = open(s->o.conn.rules, O_RDONLY | O_CLOEXEC) ;
  if (*fd == -1)
  {
    *missing = errno == ENOENT ;
    return *missing ;
  }
  if (fstat(*fd, &st) == -1) { fd_close(*fd) ; *fd = -1 ; return 0 ; }
  if (st.st_dev != rc->dev || st.st_ino != rc->ino || st.st_size != rc->size
   || st.st_mtim.tv_sec != rc->mtime.tv_sec || st.st_mtim.tv_nsec != rc->mtime.tv_nsec
   || st.st_ctim.tv_sec != rc->ctime.tv_sec || st.st_ctim.tv_nsec != rc->ctime.tv_nsec)
  {
    rc->dev = st.st_dev ;
    rc->ino = st.st_ino ;
    rc->size = st.st_size ;
    rc->mtime = st.st_mtim ;
    rc->ctime = st.st_ctim ;
    rc->reusable = connection_rules_reusable(*fd) ;
  }
  if (!rc->reusable) { fd_close(*fd) ; *fd = -1 ; }
  return rc->reusable ;
}

 /* Gives the connection to an idle engine; 0 if there is none. */
static int hand_over (server *s, int fd, int rulesfd, int report, pool_conn const *pc)
{
  for (unsigned int i = 0 ; i < s->children ; i++)
  {
    child *c = &s->table[i] ;
    if (c->busy || c->chan < 0) continue ;
    if (!pool_send(c->chan, fd, rulesfd, report, pc))
    {
      /* gone: reaped in silence, as an idle engine retired */
      fd_close(c->chan) ;
      c->chan = -1 ;
      continue ;
    }
    c->busy = 1 ;
    c->served++ ;
    c->report = -1 ;
    return (int)i + 1 ;
  }
  return 0 ;
}

 /* Accepts one client, counts its connections (MAXCONIP) and gives it to
    an idle engine or forks its connection process. A balancer's
    connection is counted once its connection process has read whose it
    is. */
static void new_connection (server *s)
{
  pool_conn pc = { .samehost = 0 } ;
  socklen_t peerlen = sizeof(pc.peer) ;
  unsigned char ip[16] ;
  int report[2] = { -1, -1 }, chan[2] = { -1, -1 } ;
  int rulesfd = -1, pooled, known, i ;
  child *slot ;
  pid_t pid ;
  int fd = accept4(s->lfd, (struct sockaddr *)&pc.peer, &peerlen, SOCK_CLOEXEC) ;
  if (fd == -1)
  {
    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) log_warn("unable to accept: ", strerror(errno)) ;
    return ;
  }
  counters_accepted() ;
  s->metricsdirty = 1 ;
  proxy_key(&pc.peer, ip) ;
  known = !proxy_listed(&s->proxies, ip) ;
  if (known)
  {
    pc.samehost = count_same(s, ip) + 1 ;
    if (s->maxconip && pc.samehost > s->maxconip)
    {
      char a[CONNENV_IPFMT], p[CONNENV_PORTFMT] ;
      connenv_fmtaddr(&pc.peer, a, p) ;
      log_over_limit(s->maxconip, a) ;
      counters_refused_here("maxconip") ;
      fd_close(fd) ;
      return ;
    }
  }
  else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, report) == -1)
  {
    log_warn("unable to create a report socket: ", strerror(errno)) ;
    fd_close(fd) ;
    return ;
  }
  pooled = s->pool && rules_for_engine(s, &rulesfd, &pc.rulesmissing) ;
  if (pooled && (i = hand_over(s, fd, rulesfd, report[1], &pc)))
  {
    slot = &s->table[i - 1] ;
    pid = slot->pid ;
  }
  else
  {
    if (pooled && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) == -1) chan[0] = chan[1] = -1 ;
    pid = fork() ;
    if (pid == -1)
    {
      log_warn("unable to fork: ", strerror(errno)) ;
      fd_close(fd) ;
      if (report[0] >= 0) { fd_close(report[0]) ; fd_close(report[1]) ; }
      if (chan[0] >= 0) { fd_close(chan[0]) ; fd_close(chan[1]) ; }
      if (rulesfd >= 0) fd_close(rulesfd) ;
      return ;
    }
    if (!pid)
    {
      selfpipe_finish() ;
      fd_close(s->lfd) ;
      fd_close(counters_fd()) ;
      /* the service manager hears from the main process only */
      if (s->notify.fd >= 0) fd_close(s->notify.fd) ;
      /* the other connections' report sockets and the other engines'
         channels are not this one's to hold */
      for (unsigned int j = 0 ; j < s->children ; j++)
      {
        if (s->table[j].report >= 0) fd_close(s->table[j].report) ;
        if (s->table[j].chan >= 0) fd_close(s->table[j].chan) ;
      }
      if (report[0] >= 0) fd_close(report[0]) ;
      if (chan[0] >= 0) fd_close(chan[0]) ;
      serve(s, chan[1], fd, &pc, report[1], rulesfd) ;
    }
    if (chan[1] >= 0) fd_close(chan[1]) ;
    slot = &s->table[s->children++] ;
    slot->pid = pid ;
    slot->chan = chan[0] ;
    slot->served = 1 ;
    slot->busy = 1 ;
  }
  fd_close(fd) ;
  if (rulesfd >= 0) fd_close(rulesfd) ;
  if (report[1] >= 0) { fd_close(report[1]) ; ndelay_on(report[0]) ; }
  memcpy(slot->ip, ip, 16) ;
  slot->known = known ;
  slot->report = report[0] ;
  s->busy++ ;
  counters_current(s->busy) ;
  log_status_count(s->busy, s->o.limit) ;
}

 /* -1: "ip : port" on stdout, which is also s6's readiness notification. */
static void print_port (char const *ip, char const *port)
{
  size_t iplen = strlen(ip), portlen = strlen(port) ;
  char line[CONNENV_IPFMT + 3 + CONNENV_PORTFMT + 1] ;
  memcpy(line, ip, iplen) ;
  memcpy(line + iplen, " : ", 3) ;
  memcpy(line + iplen + 3, port, portlen) ;
  line[iplen + 3 + portlen] = '\n' ;
  if (allwrite(1, line, iplen + portlen + 4) < iplen + portlen + 4) dieu_sys(111, "write to stdout") ;
}

 /* The TLS context, built once while still privileged. The session id
    context is distinct per service: the program name and the words of the
    command line after the options - unless the keys are a fleet's. */
static void build_context (server *s, int argc, char const *const *argv)
{
  stralloc words = STRALLOC_ZERO ;
  char err[1024] ;
  s->cfg.clientcert = s->o.conn.clientcert ;
  if (s->o.password) s->cfg.password = tlsctx_read_password(3, "descriptor 3") ;
  s->ticketkeyfile = getenv("TICKETKEYFILE") ;
  if (s->ticketkeyfile && !*s->ticketkeyfile) s->ticketkeyfile = 0 ;
  if (s->ticketkeyfile)
  {
    if (!tickets_load(s->ticketkeyfile, err, sizeof(err))) die_x(111, err) ;
    tlsctx_sidctx(s->sidctx, TLSCTX_SIDCTX_FLEET, sizeof(TLSCTX_SIDCTX_FLEET), "", 0) ;
  }
  else
  {
    for (int i = 0 ; i < argc ; i++)
      if (!stralloc_catb(&words, argv[i], strlen(argv[i]) + 1)) dieu_sys(111, "compute the session id context") ;
    tlsctx_sidctx(s->sidctx, "sslserver", 10, words.s, words.len) ;
  }
  stralloc_free(&words) ;
  s->cfg.sidctx = s->sidctx ;
  s->cfg.sidctxlen = 32 ;
  s->cfg.tickets = 1 ;
  s->ctx = tlsctx_server((char const *const *)environ, &s->cfg, err, sizeof(err)) ;
  if (!s->ctx) die_x(111, err) ;
  tlsctx_warmup(s->ctx) ;
}

static void trap_signals (server *s)
{
  sigset_t set ;
  s->spfd = selfpipe_init() ;
  if (s->spfd == -1) dieu_sys(111, "init selfpipe") ;
  sigemptyset(&set) ;
  sigaddset(&set, SIGCHLD) ;
  sigaddset(&set, SIGTERM) ;
  sigaddset(&set, SIGHUP) ;
  sigaddset(&set, SIGUSR1) ;
  if (!selfpipe_trapset(&set)) dieu_sys(111, "trap signals") ;
}

static int reuseport (void)
{
  char const *s = getenv("REUSEPORT") ;
  return s && *s ;
}

static void stdio_to_devnull (void)
{
  int null = open("/dev/null", O_RDWR) ;
  if (null == -1 || fd_copy(0, null) == -1 || fd_copy(1, null) == -1) dieu_sys(111, "redirect stdin and stdout to /dev/null") ;
  if (null > 2) fd_close(null) ;
}

 /* METRICSFILE: written when the counters changed, at most once a second. */
static void write_metrics (server *s)
{
  if (!s->metricsfile || !s->metricsdirty || tain_less(&STAMP, &s->metricsdue)) return ;
  if (!counters_write(s->metricsfile)) log_warn("unable to write ", s->metricsfile, ": ", strerror(errno)) ;
  s->metricsdirty = 0 ;
  tain_addsec_g(&s->metricsdue, 1) ;
}

 /* One turn of the main loop: the reports of connections behind a
    balancer first (a signal may reap one and reorder the table), then
    the counters, signals, and a new client while there is room. */
static void wait_and_serve (server *s)
{
  unsigned int n = 2, reports ;
  tain deadline = s->rotation ;
  int r ;
  s->x[0].fd = s->spfd ;
  s->x[0].events = IOPAUSE_READ ;
  s->x[1].fd = counters_fd() ;
  s->x[1].events = IOPAUSE_READ ;
  for (unsigned int i = 0 ; i < s->children ; i++)
  {
    if (s->table[i].report >= 0)
    {
      s->x[n].fd = s->table[i].report ;
      s->x[n].events = IOPAUSE_READ ;
      s->xchild[n++] = i ;
    }
    if (s->table[i].chan >= 0)
    {
      s->x[n].fd = s->table[i].chan ;
      s->x[n].events = IOPAUSE_READ ;
      s->xchild[n++] = i ;
    }
  }
  reports = n ;
  if (s->busy < s->o.limit && s->children < s->capacity) { s->x[n].fd = s->lfd ; s->x[n++].events = IOPAUSE_READ ; }
  if (s->metricsfile && s->metricsdirty && tain_less(&s->metricsdue, &deadline)) deadline = s->metricsdue ;
  retire_idle(s, &deadline) ;
  r = iopause_g(s->x, n, &deadline) ;
  if (r == -1) { if (errno == EINTR) return ; dieu_sys(111, "iopause") ; }
  /* on schedule even when a steady stream of connections keeps iopause
     from ever timing out */
  if (!tain_less(&STAMP, &s->rotation)) rotate_tickets(s) ;
  if (r)
  {
    for (unsigned int k = 2 ; k < reports ; k++)
    {
      child *c = &s->table[s->xchild[k]] ;
      if (!s->x[k].revents) continue ;
      if (s->x[k].fd == c->report) answer_report(s, c) ;
      else if (s->x[k].fd == c->chan) engine_report(s, c) ;
    }
    if (s->x[1].revents) { counters_read() ; s->metricsdirty = 1 ; }
    if (s->x[0].revents) handle_signals(s) ;
    if (n > reports && s->x[reports].revents && s->busy < s->o.limit && s->children < s->capacity) new_connection(s) ;
  }
  write_metrics(s) ;
}

int main (int argc, char const *const *argv)
{
  static server s =
  {
    .o =
    {
      .conn = { .sslenv = 1, .logok = 1, .deferred = -1, .handshaketimeout = 26, .idletimeout = 3600 },
      .limit = 40, .backlog = 20, .identtimeout = 26, .dns = 1,
    },
  } ;
  char ip[CONNENV_IPFMT], port[CONNENV_PORTFMT] ;
  int activated ;

  PROG = "sslserver" ;
  tlsctx_init() ;
  if (!options_parse(&argc, &argv, OPTSTRING, &take_option, &s.o)) dieusage() ;
  if (argc < 3 || !*argv[0]) dieusage() ;
  s.argv = argv + 2 ;
  if (fcntl(0, F_GETFD) == -1 && open("/dev/null", O_RDONLY) == -1) dieu_sys(111, "open /dev/null") ;
  if (fcntl(1, F_GETFD) == -1 && open("/dev/null", O_WRONLY) == -1) dieu_sys(111, "open /dev/null") ;
  if (s.o.envuidgid) privs_envuidgid(&s.o.conn.uid, &s.o.conn.gid) ;
  activated = listener_activated() ;
  if (activated && s.o.password) die_x(100, "-3 conflicts with socket activation: descriptor 3 is the listening socket") ;
  {
    char const *m = getenv("MAXCONIP") ;
    if (m && *m && !number_scan(m, 1, UINT_MAX, &s.maxconip)) die_x(100, "invalid MAXCONIP: ", m) ;
  }
  {
    char const *bad ;
    if (!proxy_list_scan(&s.proxies, getenv("PROXYFROM"), &bad)) die_x(100, "invalid PROXYFROM entry: ", bad) ;
  }
  connection_front(getenv("STARTTLS")) ;
  {
    char const *m = getenv("ENGINEREUSE") ;
    s.reuse = REUSE_DEFAULT ;
    if (m && *m && !number_scan(m, 1, REUSE_MAX, &s.reuse)) die_x(100, "invalid ENGINEREUSE: ", m, " (1 to 100000)") ;
    m = getenv("ENGINEIDLE") ;
    s.idlesecs = IDLE_DEFAULT ;
    if (m && *m && !number_scan(m, 1, IDLE_MAX, &s.idlesecs)) die_x(100, "invalid ENGINEIDLE: ", m, " (1 to 3600)") ;
  }
  privs_engine_from_env(&s.o.engine, (char const *const *)environ, s.o.conn.uid, s.o.conn.gid) ;
  privs_engine_check(&s.o.engine) ;
  privs_check_possible(s.o.conn.uid, s.o.conn.gid, "the program") ;
  privs_check_possible(s.o.engine.uid, s.o.engine.gid, "the TLS engine") ;
  if (s.o.check)
  {
    s.cfg.clientcert = s.o.conn.clientcert ;
    if (s.o.password) s.cfg.password = tlsctx_read_password(3, "descriptor 3") ;
    _exit(check_material(&s, CHECK_MODE_REPORT) ? 111 : 0) ;
  }
  build_context(&s, argc, argv) ;
  /* An engine is reused only where it would have served as it is: its
     identity the program's, no chroot, no SNI pairs to free after the
     handshake (per-rule settings are checked per connection) */
  s.pool = s.reuse > 1 && s.o.engine.uid == s.o.conn.uid && s.o.engine.gid == s.o.conn.gid && !s.o.engine.root && !tlsctx_has_sni(s.ctx) ;
  if (!counters_open(&s.reportfd)) dieu_sys(111, "create the counters' socket") ;
  s.metricsfile = getenv("METRICSFILE") ;
  if (s.metricsfile && !*s.metricsfile) s.metricsfile = 0 ;
  if (verbosity >= 3) log_config(&s.o) ;

  /* busy connections, idle engines, and retired ones not yet reaped */
  s.capacity = 2 * s.o.limit + POOL_IDLE_MAX ;
  s.table = alloc(s.capacity * sizeof(child)) ;
  s.x = alloc((3 + s.o.limit + s.capacity) * sizeof(iopause_fd)) ;
  s.xchild = alloc((3 + s.o.limit + s.capacity) * sizeof(unsigned int)) ;
  if (!s.table || !s.x || !s.xchild) dieu_sys(111, "allocate the connection table") ;
  s.lfd = activated ? listener_inherit(ip, port)
    : listener_open(argv[0], argv[1], s.o.prefer4, s.o.prefer6, s.o.backlog, reuseport(), ip, port) ;
  /* once nothing can stop the start-up, so that a start-up error stays
     one line; before the port is announced and the first client accepted */
  privs_warn_root_engine(&s.o.engine) ;
  notify_init(&s.notify) ;
  /* before anyone is told we are ready, who may then signal us at once */
  trap_signals(&s) ;
  if (s.o.printport) print_port(ip, port) ;
  stdio_to_devnull() ;
  notify_ready(&s.notify) ;
  tain_now_set_stopwatch_g() ;
  log_status_count(0, s.o.limit) ;
  tain_addsec_g(&s.rotation, TICKETS_ROTATE_SECS) ;
  s.metricsdirty = 1 ;   /* the file exists from the start */
  s.metricsdue = STAMP ;
  write_metrics(&s) ;

  for (;;) wait_and_serve(&s) ;
}
