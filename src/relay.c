/* ISC license. */

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/err.h>

#include <skalibs/djbunix.h>
#include <skalibs/iopause.h>
#include <skalibs/tai.h>

#include "log.h"
#include "relay.h"

typedef struct ring_s ring ;
struct ring_s
{
  size_t start ;
  size_t end ;
  char s[RELAY_BUFSIZE] ;
} ;

 /* What a TLS operation (read, write, shutdown) waits for before it can be
    retried: OpenSSL may need the socket readable or writable for any of
    them (a write can need a read during a key update, and so on). */
typedef enum tlswait_e tlswait ;
enum tlswait_e
{
  TLS_READY = 0,
  TLS_WANTS_READ,
  TLS_WANTS_WRITE,
} ;

typedef struct relay_s relay ;
struct relay_s
{
  SSL *ssl ;
  int netr ;
  int netw ;
  int toapp ;
  int fromapp ;
  ring n2a ;                    /* network to application */
  ring a2n ;                    /* application to network */
  tlswait reading ;
  tlswait writing ;
  tlswait shutting ;
  unsigned int toappfull : 1 ;  /* the application's input pipe is full */
  unsigned int fromappempty : 1 ; /* nothing to read from the application */
  unsigned int peerdone : 1 ;   /* the peer's close_notify (or EOF) came */
  unsigned int appdone : 1 ;    /* the application's output ended */
  unsigned int toappclosed : 1 ; /* its input is closed: it got EOF or left */
  unsigned int shutsent : 1 ;   /* our close_notify is out */
  char const *why ;             /* what failed */
} ;

static relay rl ;   /* 128 kB of rings: static, not on the stack */

static void ring_tidy (ring *r)
{
  if (r->start == r->end) r->start = r->end = 0 ;
  else if (r->end == RELAY_BUFSIZE && r->start)
  {
    memmove(r->s, r->s + r->start, r->end - r->start) ;
    r->end -= r->start ;
    r->start = 0 ;
  }
}

 /* After a TLS operation returned r <= 0: 1 with *w set if it only has to
    wait, else 0 with the reason in r->why. */
static int tls_wait (relay *r, int ret, tlswait *w)
{
  int e = SSL_get_error(r->ssl, ret) ;
  switch (e)
  {
    case SSL_ERROR_WANT_READ : *w = TLS_WANTS_READ ; return 1 ;
    case SSL_ERROR_WANT_WRITE : *w = TLS_WANTS_WRITE ; return 1 ;
    case SSL_ERROR_SYSCALL : r->why = errno ? strerror(errno) : "connection closed" ; return 0 ;
    default : r->why = log_tlserror() ; return 0 ;
  }
}

static void close_toapp (relay *r)
{
  fd_close(r->toapp) ;
  r->toappclosed = 1 ;
  r->n2a.start = r->n2a.end = 0 ;
}

 /* The steps of the relay. Each returns 1 if it moved something, 0 if it
    could not, -1 on an error (r->why says what). */

static int read_network (relay *r)
{
  int n ;
  if (r->peerdone || r->toappclosed || r->reading || r->n2a.end == RELAY_BUFSIZE) return 0 ;
  ERR_clear_error() ;
  n = SSL_read(r->ssl, r->n2a.s + r->n2a.end, RELAY_BUFSIZE - r->n2a.end) ;
  if (n > 0) { r->n2a.end += n ; return 1 ; }
  if (SSL_get_error(r->ssl, n) == SSL_ERROR_ZERO_RETURN) { r->peerdone = 1 ; return 1 ; }
  return tls_wait(r, n, &r->reading) ? 0 : -1 ;
}

static int write_app (relay *r)
{
  ssize_t w ;
  if (r->toappclosed) return 0 ;
  if (r->n2a.end == r->n2a.start)
  {
    if (!r->peerdone) return 0 ;
    fd_close(r->toapp) ;   /* all delivered: the application's EOF */
    r->toappclosed = 1 ;
    return 1 ;
  }
  if (r->toappfull) return 0 ;
  w = write(r->toapp, r->n2a.s + r->n2a.start, r->n2a.end - r->n2a.start) ;
  if (w > 0) { r->n2a.start += w ; ring_tidy(&r->n2a) ; return 1 ; }
  if (errno == EAGAIN) { r->toappfull = 1 ; return 0 ; }
  if (errno == EPIPE) { close_toapp(r) ; return 1 ; }   /* it stopped reading: drop what it would get */
  if (errno == EINTR) return 0 ;
  r->why = strerror(errno) ;
  return -1 ;
}

static int read_app (relay *r)
{
  ssize_t n ;
  if (r->appdone || r->fromappempty || r->a2n.end == RELAY_BUFSIZE) return 0 ;
  n = read(r->fromapp, r->a2n.s + r->a2n.end, RELAY_BUFSIZE - r->a2n.end) ;
  if (n > 0) { r->a2n.end += n ; return 1 ; }
  if (!n) { r->appdone = 1 ; fd_close(r->fromapp) ; return 1 ; }
  if (errno == EAGAIN) { r->fromappempty = 1 ; return 0 ; }
  if (errno == EINTR) return 0 ;
  r->why = strerror(errno) ;
  return -1 ;
}

static int write_network (relay *r)
{
  int n ;
  if (r->writing || r->a2n.end == r->a2n.start) return 0 ;
  ERR_clear_error() ;
  n = SSL_write(r->ssl, r->a2n.s + r->a2n.start, r->a2n.end - r->a2n.start) ;
  if (n > 0) { r->a2n.start += n ; ring_tidy(&r->a2n) ; return 1 ; }
  return tls_wait(r, n, &r->writing) ? 0 : -1 ;
}

 /* The application's EOF becomes our close_notify once its bytes are out.
    If the peer is gone (reset, broken pipe), what the application still
    reads may be truncated: an error, not an end. */
static int send_shutdown (relay *r)
{
  int n ;
  if (!r->appdone || r->shutsent || r->shutting || r->a2n.start != r->a2n.end) return 0 ;
  ERR_clear_error() ;
  n = SSL_shutdown(r->ssl) ;
  if (n >= 0) { r->shutsent = 1 ; return 1 ; }
  return tls_wait(r, n, &r->shutting) ? 0 : -1 ;
}

 /* Moves bytes until no step can: 1 if anything moved, -1 on an error. */
static int pump (relay *r)
{
  static int (*const steps[])(relay *) = { &read_network, &write_app, &read_app, &write_network, &send_shutdown } ;
  int moved = 0 ;
  for (;;)
  {
    int m = 0 ;
    for (unsigned int i = 0 ; i < sizeof(steps) / sizeof(steps[0]) ; i++)
    {
      int s = (*steps[i])(r) ;
      if (s < 0) return -1 ;
      m |= s ;
    }
    if (!m) return moved ;
    moved = 1 ;
  }
}

static short tls_events (tlswait w)
{
  return w == TLS_WANTS_READ ? IOPAUSE_READ : w == TLS_WANTS_WRITE ? IOPAUSE_WRITE : 0 ;
}

 /* Waits for whatever blocks the steps, until deadline. Returns what
    iopause returned (0: the deadline passed), and clears the waits that the
    events answer. */
static int await (relay *r, tain const *deadline)
{
  iopause_fd x[4] ;
  unsigned int n = 0, inet = 4, onet = 4, itoapp = 4, ifromapp = 4 ;
  short netwev = 0 ;
  int ret ;

  if (r->reading == TLS_WANTS_READ && !r->peerdone && !r->toappclosed)
  { inet = n ; x[n].fd = r->netr ; x[n++].events = IOPAUSE_READ ; }
  if (r->a2n.end > r->a2n.start) netwev |= tls_events(r->writing) ;
  netwev |= tls_events(r->shutting) ;
  if (r->reading == TLS_WANTS_WRITE && !r->peerdone) netwev |= IOPAUSE_WRITE ;
  if (netwev) { onet = n ; x[n].fd = r->netw ; x[n++].events = netwev ; }
  if (!r->toappclosed)   /* watched even when not full: POLLERR says the application left */
  { itoapp = n ; x[n].fd = r->toapp ; x[n++].events = r->toappfull ? IOPAUSE_WRITE : 0 ; }
  if (!r->appdone && r->fromappempty)
  { ifromapp = n ; x[n].fd = r->fromapp ; x[n++].events = IOPAUSE_READ ; }

  ret = iopause_g(x, n, deadline) ;
  if (ret <= 0) return ret ;
  if (inet < n && x[inet].revents) r->reading = TLS_READY ;
  if (onet < n && x[onet].revents)
  {
    short re = x[onet].revents ;
    int canread = !!(re & (POLLIN | POLLHUP | POLLERR)), canwrite = !!(re & (POLLOUT | POLLHUP | POLLERR)) ;
    if ((r->writing == TLS_WANTS_READ && canread) || (r->writing == TLS_WANTS_WRITE && canwrite)) r->writing = TLS_READY ;
    if ((r->shutting == TLS_WANTS_READ && canread) || (r->shutting == TLS_WANTS_WRITE && canwrite)) r->shutting = TLS_READY ;
    if (r->reading == TLS_WANTS_WRITE && canwrite) r->reading = TLS_READY ;
  }
  if (itoapp < n && x[itoapp].revents)
  {
    if (x[itoapp].revents & POLLERR) close_toapp(r) ;
    else if (x[itoapp].revents & POLLOUT) r->toappfull = 0 ;
  }
  if (ifromapp < n && x[ifromapp].revents) r->fromappempty = 0 ;
  return ret ;
}

int relay_run (SSL *ssl, int netr, int netw, int toapp, int fromapp, char const *first, size_t firstlen, unsigned int idlesecs, char const **why)
{
  relay *r = &rl ;
  tain deadline ;
  int ret = RELAY_DONE ;

  memset(r, 0, sizeof(*r)) ;
  r->ssl = ssl ; r->netr = netr ; r->netw = netw ; r->toapp = toapp ; r->fromapp = fromapp ;
  if (firstlen > RELAY_BUFSIZE) firstlen = RELAY_BUFSIZE ;
  if (firstlen) { memcpy(r->a2n.s, first, firstlen) ; r->a2n.end = firstlen ; }
  if (ndelay_on(toapp) == -1 || ndelay_on(fromapp) == -1) { *why = strerror(errno) ; ret = RELAY_ERROR ; goto end ; }
  tain_now_g() ;
  if (idlesecs) tain_addsec_g(&deadline, idlesecs) ; else deadline = tain_infinite ;

  for (;;)
  {
    int moved = pump(r), e ;
    if (moved < 0) { *why = r->why ; ret = RELAY_ERROR ; goto end ; }
    if (r->shutsent && r->toappclosed) break ;
    if (moved && idlesecs) tain_addsec_g(&deadline, idlesecs) ;
    e = await(r, &deadline) ;
    if (e == -1)
    {
      if (errno == EINTR) continue ;
      *why = strerror(errno) ; ret = RELAY_ERROR ; goto end ;
    }
    if (!e) { ret = RELAY_TIMEOUT ; goto end ; }
  }

 end:
  if (!r->toappclosed) fd_close(r->toapp) ;
  if (!r->appdone) fd_close(r->fromapp) ;
  return ret ;
}
