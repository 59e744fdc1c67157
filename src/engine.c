/* ISC license. */

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/stralloc.h>
#include <skalibs/setgroups.h>
#include <skalibs/sig.h>

#include "log.h"
#include "tlsctx.h"
#include "tlsenv.h"
#include "handshake.h"
#include "relay.h"
#include "app.h"
#include "engine.h"

 /*
  * The application process in immediate mode. It drops to -u/-g at once,
  * then waits for the engine's verdict on the control pipe: EOF with nothing
  * read means the handshake failed and prog must never run; otherwise the
  * bytes are the SSL_* block (possibly empty) followed by one NUL.
  */
static void app_immediate (engine const *e, int const *toapp_p, int const *fromapp_p, int const *ctl_p)
{
  int toapp = toapp_p[0], fromapp = fromapp_p[1], ctl = ctl_p[0] ;
  stralloc block = STRALLOC_ZERO ;
  ssize_t r ;
  char const *modifs[2] = { e->connmodifs, 0 } ;
  size_t lens[2] = { e->connmodiflen, 0 } ;
  fd_close(toapp_p[1]) ;
  fd_close(fromapp_p[0]) ;
  fd_close(ctl_p[1]) ;
  fd_close(e->netr) ;
  if (e->netw != e->netr) fd_close(e->netw) ;
  privs_drop(0, e->appgid, e->appuid) ;
  r = app_readall(ctl, &block) ;
  if (r <= 0 || block.s[r-1]) _exit(111) ;
  fd_close(ctl) ;
  modifs[1] = block.s ;
  lens[1] = r - 1 ;
  if (fd_move2(0, toapp, 1, fromapp) == -1) dieu_sys(111, "set up descriptors 0 and 1") ;
  if (e->banner && allwrite(1, e->banner, strlen(e->banner)) < strlen(e->banner)) dieu_sys(111, "print banner") ;
  app_exec(e->argv, e->envp, modifs, lens, 2, 2) ;
}

static int wait_app (pid_t pid)
{
  int wstat ;
  for (;;)
  {
    pid_t r = waitpid(pid, &wstat, 0) ;
    if (r == pid) return wait_estatus(wstat) ;
    if (r == -1 && errno != EINTR) return 111 ;
  }
}

static void end (engine const *, int, pid_t, int, int) __attribute__((noreturn)) ;
static void end (engine const *e, int ctl, pid_t app, int signalapp, int code)
{
  int status ;
  /* The application process may still wait for the verdict: closing the
     control pipe with nothing written is what tells it not to run. */
  if (ctl >= 0) fd_close(ctl) ;
  fd_close(e->netr) ;
  if (e->netw != e->netr) fd_close(e->netw) ;
  if (signalapp) kill(app, SIGTERM) ;
  status = wait_app(app) ;
  _exit(code >= 0 ? code : status) ;
}

void engine_run (engine const *e)
{
  int toapp[2], fromapp[2], ctl[2] ;
  pid_t app ;
  SSL *ssl ;
  char const *why ;
  int r ;

  if (pipecoe(toapp) == -1 || pipecoe(fromapp) == -1 || pipecoe(ctl) == -1) dieu_sys(111, "create pipe") ;
  app = fork() ;
  if (app == -1) dieu_sys(111, "fork") ;
  if (!app) app_immediate(e, toapp, fromapp, ctl) ;
  fd_close(toapp[0]) ;
  fd_close(fromapp[1]) ;
  fd_close(ctl[0]) ;

  privs_drop(e->tls.root, e->tls.gid, e->tls.uid) ;
  sig_ignore(SIGPIPE) ;

  ssl = SSL_new(e->ctx) ;
  if (!ssl) { log_error(111, "unable to create TLS session: ", log_tlserror()) ; end(e, ctl[1], app, 0, 111) ; }
  if (!SSL_set_rfd(ssl, e->netr) || !SSL_set_wfd(ssl, e->netw)) { log_error(111, "unable to attach TLS session: ", log_tlserror()) ; end(e, ctl[1], app, 0, 111) ; }
  SSL_set_accept_state(ssl) ;
  if (ndelay_on(e->netr) == -1 || ndelay_on(e->netw) == -1) { log_error(111, "unable to set socket non-blocking: ", strerror(errno)) ; end(e, ctl[1], app, 0, 111) ; }

  r = handshake_run(ssl, e->netr, e->netw, e->handshaketimeout, &why) ;
  if (r == HANDSHAKE_REFUSED)
  {
    log_error(110, "client certificate refused from: ", e->remoteip, " for pid: ", e->pid, ": ", why) ;
    end(e, ctl[1], app, 0, 110) ;
  }
  if (r != HANDSHAKE_OK)
  {
    log_error(111, "unable to accept TLS from: ", e->remoteip, " for pid: ", e->pid, ": ", why) ;
    end(e, ctl[1], app, 0, 111) ;
  }
  if (e->clientcert == TLSCTX_CLIENTCERT_MATCHHOST && e->remotehost)
  {
    X509 *peer = SSL_get0_peer_certificate(ssl) ;
    if (!peer || X509_check_host(peer, e->remotehost, 0, 0, 0) != 1)
    {
      char h[LOG_FIELD_FMT] ;
      log_error(110, "client certificate does not match host name from: ", e->remoteip, " for pid: ", e->pid, ": ", log_sanitize(h, e->remotehost, 0)) ;
      end(e, ctl[1], app, 0, 110) ;
    }
  }

  {
    stralloc block = STRALLOC_ZERO ;
    if (e->sslenv && !tlsenv_server(&block, ssl)) { log_error(111, "unable to build the TLS environment: out of memory") ; end(e, ctl[1], app, 0, 111) ; }
    if (!stralloc_0(&block)) { log_error(111, "unable to build the TLS environment: out of memory") ; end(e, ctl[1], app, 0, 111) ; }
    if (allwrite(ctl[1], block.s, block.len) < block.len) { log_error(111, "unable to pass the TLS environment: ", strerror(errno)) ; end(e, ctl[1], app, 1, 111) ; }
    stralloc_free(&block) ;
    fd_close(ctl[1]) ;
    ctl[1] = -1 ;
  }
  log_status("tls ", e->pid, " accept ", SSL_get_version(ssl), ":", SSL_get_cipher_name(ssl)) ;

  r = relay_run(ssl, e->netr, e->netw, toapp[1], fromapp[0], e->idletimeout, &why) ;
  if (r == RELAY_TIMEOUT) log_error(111, "timed out speaking TLS with: ", e->remoteip, " for pid: ", e->pid) ;
  else if (r == RELAY_ERROR) log_error(111, "unable to speak TLS with: ", e->remoteip, " for pid: ", e->pid, ": ", why) ;
  SSL_free(ssl) ;
  end(e, ctl[1], app, r != RELAY_DONE, -1) ;
}
