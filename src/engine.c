/* ISC license. */

#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <openssl/err.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/stralloc.h>
#include <skalibs/sig.h>

#include "log.h"
#include "tlsctx.h"
#include "tlsenv.h"
#include "handshake.h"
#include "relay.h"
#include "front.h"
#include "ucspitls.h"
#include "app.h"
#include "peer.h"
#include "number.h"
#include "offer.h"
#include "counters.h"
#include "engine.h"

 /* Descriptors of one connection, engine side; -1 once closed. */
typedef struct conn_s conn ;
struct conn_s
{
  engine const *e ;
  pid_t app ;
  int ctl ;       /* control: pipe (immediate) or socket (deferred) */
  int toapp ;     /* write end of the application's input */
  int fromapp ;   /* read end of the application's output */
} ;

static void close_net (engine const *e)
{
  fd_close(e->netr) ;
  if (e->netw != e->netr) fd_close(e->netw) ;
}

 /* How long a connection that failed waits for its application to exit. */
#define ENGINE_APPWAIT_SECS 5

 /* The application's status; with secs > 0, -1 if it has not exited
    within secs. */
static int wait_app (pid_t pid, unsigned int secs)
{
  struct timespec now, deadline ;
  sigset_t chld ;
  if (secs)
  {
    sigemptyset(&chld) ;
    sigaddset(&chld, SIGCHLD) ;
    sigprocmask(SIG_BLOCK, &chld, 0) ;   /* so that sigtimedwait can take it */
    clock_gettime(CLOCK_MONOTONIC, &deadline) ;
    deadline.tv_sec += secs ;
  }
  for (;;)
  {
    struct timespec left ;
    int wstat ;
    pid_t r = waitpid(pid, &wstat, secs ? WNOHANG : 0) ;
    if (r == pid) return WIFSIGNALED(wstat) ? 128 + WTERMSIG(wstat) : WEXITSTATUS(wstat) ;
    if (r == -1 && errno != EINTR) return 111 ;
    if (!secs) continue ;
    clock_gettime(CLOCK_MONOTONIC, &now) ;
    left.tv_sec = deadline.tv_sec - now.tv_sec ;
    left.tv_nsec = deadline.tv_nsec - now.tv_nsec ;
    if (left.tv_nsec < 0) { left.tv_sec-- ; left.tv_nsec += 1000000000L ; }
    if (left.tv_sec < 0) return -1 ;
    sigtimedwait(&chld, 0, &left) ;
  }
}

 /*
  * Ends the connection: code >= 0 is the exit code of a failure, else the
  * connection ends with the application's status. Closing the control
  * descriptor with nothing written is what tells the application the
  * handshake failed. On a failure the raw connection is shut down before
  * anything else: in deferred mode the application holds the socket too,
  * and must not go on talking in clear on it (a signal cannot stop it if it
  * runs as another user). Then the application gets ENGINE_APPWAIT_SECS to
  * exit; the engine's own exit is what frees the connection's -c slot.
  */
static void end (conn *c, int signalapp, int code) __attribute__((noreturn)) ;
static void end (conn *c, int signalapp, int code)
{
  engine const *e = c->e ;
  if (code >= 0)
  {
    shutdown(e->netr, SHUT_RDWR) ;
    if (e->netw != e->netr) shutdown(e->netw, SHUT_RDWR) ;
  }
  if (c->ctl >= 0) fd_close(c->ctl) ;
  if (c->toapp >= 0) fd_close(c->toapp) ;
  if (c->fromapp >= 0) fd_close(c->fromapp) ;
  close_net(e) ;
  if (!c->app) _exit(code >= 0 ? code : 111) ;   /* no application started */
  if (code < 0) _exit(wait_app(c->app, 0)) ;     /* finish's, in an engine that is not reused */
  if (signalapp || e->front) kill(c->app, SIGTERM) ;   /* a front's program runs from the start */
  if (wait_app(c->app, ENGINE_APPWAIT_SECS) < 0)
    log_warn("the program of pid ", e->pid, " has not exited 5 seconds after its connection failed: no longer waiting for it") ;
  _exit(code) ;
}

 /* The connection ended well: the application's status. An engine that is
    reused returns it, with every descriptor of the connection closed;
    any other exits with it. */
static int finish (conn *c)
{
  engine const *e = c->e ;
  if (!e->reusable) end(c, 0, -1) ;
  if (e->front) front_wipe() ;
  ERR_clear_error() ;
  if (c->ctl >= 0) fd_close(c->ctl) ;
  if (c->toapp >= 0) fd_close(c->toapp) ;
  if (c->fromapp >= 0) fd_close(c->fromapp) ;
  close_net(e) ;
  return c->app ? wait_app(c->app, 0) : 0 ;
}

 /* Deferred mode: wait for 'y' or 'Y' while the application talks in clear.
    Returns the command, 0 if the application never asked (the connection
    is then over, its descriptors closed). */
static char await_starttls (conn *c)
{
  engine const *e = c->e ;
  char cmd ;
  switch (ucspitls_wait_command(c->ctl, e->netr, e->idletimeout, &cmd))
  {
    case UCSPITLS_EOF :
      /* the application never asked for TLS: the connection is its own */
      if (!e->client) log_cleartext(e->pid) ;
      fd_close(c->ctl) ; c->ctl = -1 ;
      fd_close(c->toapp) ; c->toapp = -1 ;
      fd_close(c->fromapp) ; c->fromapp = -1 ;
      return 0 ;
    case UCSPITLS_TIMEOUT :
      log_error(111, "timed out in plaintext with: ", e->remoteip, " for pid: ", e->pid) ;
      end(c, 1, 111) ;
    case UCSPITLS_ERROR :
      log_error(111, "unable to read the control socket for pid: ", e->pid, ": ", strerror(errno)) ;
      end(c, 1, 111) ;
  }
  if (cmd != 'y' && cmd != 'Y')
  {
    char hex[5] = "0x" ;
    hex[2 + number_hex(hex + 2, (unsigned char const *)&cmd, 1, 0)] = 0 ;
    log_error(100, "UCSPI-TLS protocol error for pid: ", e->pid, ": unknown command byte ", hex) ;
    end(c, 1, 100) ;
  }
  return cmd ;
}

 /* 1 if the peer has closed its side (what it sent, if anything, was read). */
static int peer_closed (int fd)
{
  char x ;
  return recv(fd, &x, 1, MSG_PEEK | MSG_DONTWAIT) == 0 ;
}

static void drop_engine_privileges (conn *c)
{
  engine const *e = c->e ;
  char const *what = privs_try(e->tls.root, e->tls.gid, e->tls.uid) ;
  if (what) { log_error(111, "unable to ", what, " for the TLS engine: ", strerror(errno)) ; end(c, 1, 111) ; }
  sig_ignore(SIGPIPE) ;
}

 /* The handshake and every check on the peer; on failure the connection
    ends here (the application, if already started, is terminated in
    deferred mode, and never runs in immediate mode). */
static SSL *tls_start (conn *c)
{
  engine const *e = c->e ;
  char const *why ;
  char reason[LOG_FIELD_FMT] ;
  offer o = { .sni = "-", .version = "-" } ;
  int r ;
  SSL *ssl = SSL_new(e->ctx) ;
  if (!ssl) { log_error(111, "unable to create TLS session: ", log_tlserror()) ; end(c, 1, 111) ; }
  if (!SSL_set_rfd(ssl, e->netr) || !SSL_set_wfd(ssl, e->netw)) { log_error(111, "unable to attach TLS session: ", log_tlserror()) ; end(c, 1, 111) ; }
  if (e->client)
  {
    SSL_set_connect_state(ssl) ;
    if (e->servername && !peer_expect_server(ssl, e->servername, e->checkname))
    {
      log_error(111, "unable to set the expected server name: ", log_tlserror()) ;
      end(c, 1, 111) ;
    }
  }
  else
  {
    SSL_set_accept_state(ssl) ;
    offer_watch(ssl, &o) ;
  }
  if (ndelay_on(e->netr) == -1 || ndelay_on(e->netw) == -1) { log_error(111, "unable to set socket non-blocking: ", strerror(errno)) ; end(c, 1, 111) ; }

  r = handshake_run(ssl, e->netr, e->netw, e->handshaketimeout, &why) ;
  if (r != HANDSHAKE_OK && e->healthcheck && !BIO_number_read(SSL_get_rbio(ssl)) && peer_closed(e->netr))
  {
    log_status("check ", e->pid, " from ", e->remoteip) ;
    end(c, e->deferred, 0) ;
  }
  /* A failed accept is one line of a fixed shape, whatever the cause, for
     fail2ban: "from: IP for pid: PID: sni: NAME: offered: VERSION: REASON",
     every field after PID sanitised. */
  if (r != HANDSHAKE_OK && !e->client) counters_failed(e->reportfd, why, r == HANDSHAKE_REFUSED) ;
  if (r == HANDSHAKE_REFUSED)
  {
    if (e->client) log_error(110, "server certificate refused from: ", e->remoteip, " for pid: ", e->pid, ": ", why, e->checkname && e->servername ? " (expected " : "", e->checkname && e->servername ? e->servername : "", e->checkname && e->servername ? ")" : "") ;
    else log_error(110, "client certificate refused from: ", e->remoteip, " for pid: ", e->pid, ": sni: ", o.sni, ": offered: ", o.version, ": ", log_sanitize(reason, why, LOG_KEEPCOLON | LOG_KEEPSPACE)) ;
    end(c, e->deferred, 110) ;
  }
  if (r != HANDSHAKE_OK)
  {
    if (e->client) log_error(111, "unable to connect TLS to: ", e->remoteip, " for pid: ", e->pid, ": ", why) ;
    else log_error(111, "unable to accept TLS from: ", e->remoteip, " for pid: ", e->pid, ": sni: ", o.sni, ": offered: ", o.version, ": ", log_sanitize(reason, why, LOG_KEEPCOLON | LOG_KEEPSPACE)) ;
    end(c, e->deferred, 111) ;
  }
  if (e->pin && !peer_pin_matches(ssl, e->pin))
  {
    log_error(110, "server certificate refused from: ", e->remoteip, " for pid: ", e->pid, ": certificate pin mismatch") ;
    end(c, e->deferred, 110) ;
  }
  if (!e->client && e->clientcert == TLSCTX_CLIENTCERT_MATCHHOST && !peer_names_host(ssl, e->remotehost, e->remoteip))
  {
    char h[LOG_FIELD_FMT] ;
    counters_failed(e->reportfd, "", 1) ;
    log_error(110, "client certificate does not match host name from: ", e->remoteip, " for pid: ", e->pid, ": sni: ", o.sni, ": offered: ", o.version, ": ", log_sanitize(h, e->remotehost ? e->remotehost : e->remoteip, LOG_KEEPCOLON)) ;
    end(c, e->deferred, 110) ;
  }
  if (!e->client)
  {
    offer_watch(ssl, 0) ;
    tlsctx_release(e->ctx, ssl) ;
    counters_tls(e->reportfd, SSL_get_version(ssl), SSL_get_cipher_name(ssl), SSL_session_reused(ssl)) ;
  }
  return ssl ;
}

static void log_session (engine const *e, SSL *ssl)
{
  malloc_trim(0) ;   /* the handshake's garbage: an idle connection keeps less */
  log_status("tls ", e->pid, e->client ? " connect " : " accept ", SSL_get_version(ssl), ":", SSL_get_cipher_name(ssl)) ;
}

static int tls_relay (conn *c, SSL *ssl, char const *first, size_t firstlen)
{
  engine const *e = c->e ;
  char const *why ;
  int r ;
  log_session(e, ssl) ;
  r = relay_run(ssl, e->netr, e->netw, c->toapp, c->fromapp, first, firstlen, e->idletimeout, &why) ;
  c->toapp = c->fromapp = -1 ;
  if (r == RELAY_TIMEOUT) log_error(111, "timed out speaking TLS with: ", e->remoteip, " for pid: ", e->pid) ;
  else if (r == RELAY_ERROR) log_error(111, "unable to speak TLS with: ", e->remoteip, " for pid: ", e->pid, ": ", why) ;
  SSL_free(ssl) ;
  if (r != RELAY_DONE) end(c, 1, 111) ;
  return finish(c) ;
}

 /*
  * Immediate mode when the engine and the application have the same
  * identity (no SSL_UID/SSL_GID of their own, no SSL_CHROOT): nothing is
  * gained by forking the application before the handshake, so it is
  * spawned after it, vfork-style, with its SSL_* already known - one
  * process copy less per connection. The banner is sent by the engine.
  */
static int engine_spawn_after (engine const *e)
{
  conn c = { .e = e, .app = 0, .ctl = -1, .toapp = -1, .fromapp = -1 } ;
  stralloc block = STRALLOC_ZERO ;
  int in[2], out[2] ;
  SSL *ssl ;

  drop_engine_privileges(&c) ;
  ssl = tls_start(&c) ;
  if (e->sslenv && !tlsenv_server(&block, ssl)) { log_error(111, "unable to build the TLS environment: out of memory") ; end(&c, 0, 111) ; }
  if (pipecoe(in) == -1 || pipecoe(out) == -1) { log_error(111, "unable to create pipe: ", strerror(errno)) ; end(&c, 0, 111) ; }
  {
    char const *modifs[2] = { e->connmodifs, block.s } ;
    size_t lens[2] = { e->connmodiflen, block.len } ;
    genalloc v = GENALLOC_ZERO ;
    c.app = app_spawn(e->argv, app_environment(&v, e->envp, modifs, lens, 2), in[0], out[1]) ;
    genalloc_free(char const *, &v) ;
  }
  fd_close(in[0]) ;
  fd_close(out[1]) ;
  c.toapp = in[1] ;
  c.fromapp = out[0] ;
  if (c.app == -1)
  {
    c.app = 0 ;
    log_error(111, "unable to run ", e->argv[0], ": ", strerror(errno)) ;
    end(&c, 0, 111) ;
  }
  tlsenv_wipe(&block) ;
  return tls_relay(&c, ssl, e->banner, e->banner ? strlen(e->banner) : 0) ;
}

 /*
  * The STARTTLS front: the program runs at once on pipes, the engine
  * speaks the protocol's STARTTLS step for it (front.h), does the
  * handshake when the client asks, and goes on filtering over TLS.
  */
static int engine_front (engine const *e)
{
  conn c = { .e = e, .ctl = -1 } ;
  int in[2], out[2] ;
  char const *why = 0 ;
  SSL *ssl = 0 ;
  int r ;

  if (pipecoe(in) == -1 || pipecoe(out) == -1) dieu_sys(111, "create pipe") ;
  c.app = fork() ;
  if (c.app == -1) dieu_sys(111, "fork") ;
  if (!c.app)
  {
    fd_close(in[1]) ;
    fd_close(out[0]) ;
    app_front(e, in[0], out[1]) ;
  }
  fd_close(in[0]) ;
  fd_close(out[1]) ;
  c.toapp = in[1] ;
  c.fromapp = out[0] ;

  drop_engine_privileges(&c) ;
  front_init(e->front, e->tlsrequired, c.toapp, c.fromapp, e->pid) ;
  r = front_run(0, e->netr, e->netw, e->idletimeout, &why) ;
  if (r == FRONT_STARTTLS)
  {
    ssl = tls_start(&c) ;
    log_session(e, ssl) ;
    r = front_run(ssl, e->netr, e->netw, e->idletimeout, &why) ;
  }
  else if (r == FRONT_DONE) log_cleartext(e->pid) ;
  c.toapp = c.fromapp = -1 ;
  if (r == FRONT_TIMEOUT) log_error(111, ssl ? "timed out speaking TLS with: " : "timed out in plaintext with: ", e->remoteip, " for pid: ", e->pid) ;
  else if (r == FRONT_ERROR) log_error(111, ssl ? "unable to speak TLS with: " : "unable to speak in plaintext with: ", e->remoteip, " for pid: ", e->pid, ": ", why) ;
  if (ssl) SSL_free(ssl) ;
  if (r != FRONT_DONE) end(&c, 1, 111) ;
  return finish(&c) ;
}

int engine_run (engine const *e)
{
  int in[2], out[2], ctl[2] ;
  conn c = { .e = e } ;
  SSL *ssl ;
  int sendblock = e->sslenv ;

  if (e->front) return engine_front(e) ;
  if (!e->deferred && !e->client && e->tls.uid == e->appuid && e->tls.gid == e->appgid && !e->tls.root)
    return engine_spawn_after(e) ;

  if (pipecoe(in) == -1 || pipecoe(out) == -1) dieu_sys(111, "create pipe") ;
  if ((e->deferred ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) : pipecoe(ctl)) == -1)
    dieu_sys(111, "create control channel") ;
  c.app = fork() ;
  if (c.app == -1) dieu_sys(111, "fork") ;
  if (!c.app)
  {
    fd_close(in[1]) ;
    fd_close(out[0]) ;
    fd_close(ctl[1]) ;
    if (e->deferred) app_deferred(e, in[0], out[1], ctl[0]) ;
    else app_immediate(e, in[0], out[1], ctl[0]) ;
  }
  fd_close(in[0]) ;
  fd_close(out[1]) ;
  fd_close(ctl[0]) ;
  c.toapp = in[1] ;
  c.fromapp = out[0] ;
  c.ctl = ctl[1] ;

  drop_engine_privileges(&c) ;
  if (e->deferred)
  {
    char cmd = await_starttls(&c) ;
    if (!cmd) return finish(&c) ;
    sendblock = cmd == 'Y' ;
  }
  ssl = tls_start(&c) ;

  if (e->deferred && !sendblock) shutdown(c.ctl, SHUT_RDWR) ;
  else
  {
    stralloc block = STRALLOC_ZERO ;
    if (sendblock && !(e->client ? tlsenv_client(&block, ssl) : tlsenv_server(&block, ssl))) { log_error(111, "unable to build the TLS environment: out of memory") ; end(&c, 1, 111) ; }
    if (!ucspitls_send_block(c.ctl, block.s, block.len)) { log_error(111, "unable to pass the TLS environment: ", strerror(errno)) ; end(&c, 1, 111) ; }
    tlsenv_wipe(&block) ;
  }
  fd_close(c.ctl) ;
  c.ctl = -1 ;
  return tls_relay(&c, ssl, 0, 0) ;
}
