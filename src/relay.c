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

/* What one pass of the application's bytes (RELAY_BUFSIZE) becomes as
   TLS records, with room for the alerts and handshake messages (a
   KeyUpdate) that may go out with them. */
#define NETBUFSIZE (RELAY_BUFSIZE + (RELAY_BUFSIZE / SSL3_RT_MAX_PLAIN_LENGTH + 2) * (SSL3_RT_HEADER_LENGTH + SSL3_RT_MAX_ENCRYPTED_OVERHEAD))

 /* The buffers are static, not on the stack, and start zero: every
    relay_run wipes what it used (up to the high-water mark) before it
    returns, so a reused engine carries no byte of one connection into the
    next, and an engine whose connection moved little touches few pages. */
static char n2abuf[RELAY_BUFSIZE] ;
static char a2nbuf[RELAY_BUFSIZE] ;
static char netbuf[NETBUFSIZE] ;

typedef struct ring_s ring ;
struct ring_s
{
  char *s ;
  size_t size ;
  size_t start ;
  size_t end ;
  size_t used ;                 /* high-water mark: what to wipe */
} ;

 /* What a TLS operation (read, write, shutdown) waits for before it can be
    retried. TLS output goes to the net ring, not to the socket, so
    TLS_WANTS_WRITE means the ring is full: it is answered when the ring
    has been written out. A read can need to write (a KeyUpdate's answer),
    and so on. */
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
  ring net ;                    /* TLS records for the network, one write per pass */
  tlswait reading ;
  tlswait writing ;
  tlswait shutting ;
  unsigned int toappfull : 1 ;  /* the application's input pipe is full */
  unsigned int fromappempty : 1 ; /* nothing to read from the application */
  unsigned int netfull : 1 ;    /* the socket takes no more for now */
  unsigned int peerdone : 1 ;   /* the peer's close_notify (or EOF) came */
  unsigned int appdone : 1 ;    /* the application's output ended */
  unsigned int toappclosed : 1 ; /* its input is closed: it got EOF or left */
  unsigned int shutsent : 1 ;   /* our close_notify is in the net ring */
  char const *why ;             /* what failed */
} ;

static void ring_added (ring *q, size_t n)
{
  q->end += n ;
  if (q->end > q->used) q->used = q->end ;
}

static void ring_tidy (ring *r)
{
  if (r->start == r->end) r->start = r->end = 0 ;
  else if (r->end == r->size && r->start)
  {
    memmove(r->s, r->s + r->start, r->end - r->start) ;
    r->end -= r->start ;
    r->start = 0 ;
  }
}

static void ring_wipe (ring *q)
{
  explicit_bzero(q->s, q->used) ;
  q->start = q->end = q->used = 0 ;
}

 /* The write BIO of the session while it relays: records are appended to
    the net ring (as much as fits: a full ring is a retry, like a full
    socket), and flush_network writes the ring to the socket. So the
    records of one pass leave in one write, not one write per record. */
static int netbio_write (BIO *b, char const *s, int len)
{
  ring *q = BIO_get_data(b) ;
  size_t n ;
  BIO_clear_retry_flags(b) ;
  if (!q || len < 0) return -1 ;
  n = q->size - q->end ;
  if (!n) { BIO_set_retry_write(b) ; return -1 ; }
  if (n > (size_t)len) n = len ;
  memcpy(q->s + q->end, s, n) ;
  ring_added(q, n) ;
  return n ;
}

static long netbio_ctrl (BIO *b, int cmd, long num, void *ptr)
{
  ring *q = BIO_get_data(b) ;
  (void)num ; (void)ptr ;
  switch (cmd)
  {
    case BIO_CTRL_FLUSH : return 1 ;   /* flush_network's job, once per pass */
    case BIO_CTRL_WPENDING : return q ? (long)(q->end - q->start) : 0 ;
    default : return 0 ;
  }
}

static BIO *netbio_new (ring *q)
{
  static BIO_METHOD *m = 0 ;   /* once per process */
  BIO *b ;
  if (!m)
  {
    int type = BIO_get_new_index() ;
    if (type == -1) return 0 ;
    m = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "relay output") ;
    if (!m || !BIO_meth_set_write(m, &netbio_write) || !BIO_meth_set_ctrl(m, &netbio_ctrl))
    {
      BIO_meth_free(m) ;
      m = 0 ;
      return 0 ;
    }
  }
  b = BIO_new(m) ;
  if (!b) return 0 ;
  BIO_set_data(b, q) ;
  BIO_set_init(b, 1) ;
  return b ;
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
  if (r->peerdone || r->toappclosed || r->reading || r->n2a.end == r->n2a.size) return 0 ;
  ERR_clear_error() ;
  n = SSL_read(r->ssl, r->n2a.s + r->n2a.end, r->n2a.size - r->n2a.end) ;
  if (n > 0) { ring_added(&r->n2a, n) ; return 1 ; }
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
  if (r->appdone || r->fromappempty || r->a2n.end == r->a2n.size) return 0 ;
  n = read(r->fromapp, r->a2n.s + r->a2n.end, r->a2n.size - r->a2n.end) ;
  if (n > 0) { ring_added(&r->a2n, n) ; return 1 ; }
  if (!n) { r->appdone = 1 ; fd_close(r->fromapp) ; return 1 ; }
  if (errno == EAGAIN) { r->fromappempty = 1 ; return 0 ; }
  if (errno == EINTR) return 0 ;
  r->why = strerror(errno) ;
  return -1 ;
}

 /* Encrypts all the application's bytes at hand into the net ring. The
    session writes partially (SSL_MODE_ENABLE_PARTIAL_WRITE): one record
    per SSL_write, hence the loop. */
static int write_network (relay *r)
{
  int moved = 0 ;
  while (!r->writing && r->a2n.end > r->a2n.start)
  {
    int n ;
    ERR_clear_error() ;
    n = SSL_write(r->ssl, r->a2n.s + r->a2n.start, r->a2n.end - r->a2n.start) ;
    if (n <= 0) return tls_wait(r, n, &r->writing) ? moved : -1 ;
    r->a2n.start += n ;
    ring_tidy(&r->a2n) ;
    moved = 1 ;
  }
  return moved ;
}

 /* The net ring to the socket. Once it is empty, whatever OpenSSL could
    not put in it can be retried. */
static int flush_network (relay *r)
{
  ssize_t w ;
  if (r->netfull || r->net.end == r->net.start) return 0 ;
  w = write(r->netw, r->net.s + r->net.start, r->net.end - r->net.start) ;
  if (w > 0)
  {
    r->net.start += w ;
    if (r->net.start < r->net.end) return 1 ;
    r->net.start = r->net.end = 0 ;
    if (r->reading == TLS_WANTS_WRITE) r->reading = TLS_READY ;
    if (r->writing == TLS_WANTS_WRITE) r->writing = TLS_READY ;
    if (r->shutting == TLS_WANTS_WRITE) r->shutting = TLS_READY ;
    return 1 ;
  }
  if (errno == EAGAIN || errno == EINTR) { r->netfull = 1 ; return 0 ; }   /* await polls for it */
  r->why = strerror(errno) ;
  return -1 ;
}

 /* The application's EOF becomes our close_notify once its bytes are in
    the net ring (relay_run ends once the ring is written out). If the peer
    is gone (reset, broken pipe), what the application still reads may be
    truncated: an error, not an end. */
static int send_shutdown (relay *r)
{
  int n ;
  if (!r->appdone || r->shutsent || r->shutting || r->a2n.start != r->a2n.end) return 0 ;
  ERR_clear_error() ;
  n = SSL_shutdown(r->ssl) ;
  if (n >= 0) { r->shutsent = 1 ; return 1 ; }
  return tls_wait(r, n, &r->shutting) ? 0 : -1 ;
}

 /* Moves bytes until no step can: 1 if anything moved, -1 on an error.
    When it returns, a non-empty net ring means the socket is full. */
static int pump (relay *r)
{
  static int (*const steps[])(relay *) = { &read_network, &write_app, &read_app, &write_network, &send_shutdown, &flush_network } ;
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

 /* Waits for whatever blocks the steps, until deadline. Returns what
    iopause returned (0: the deadline passed), and clears the waits that the
    events answer. */
static int await (relay *r, tain const *deadline)
{
  iopause_fd x[4] ;
  unsigned int n = 0, inet = 4, onet = 4, itoapp = 4, ifromapp = 4 ;
  int ret ;

  if ((r->reading == TLS_WANTS_READ && !r->peerdone && !r->toappclosed)
   || (r->writing == TLS_WANTS_READ && r->a2n.end > r->a2n.start)
   || r->shutting == TLS_WANTS_READ)
  { inet = n ; x[n].fd = r->netr ; x[n++].events = IOPAUSE_READ ; }
  if (r->netfull)
  { onet = n ; x[n].fd = r->netw ; x[n++].events = IOPAUSE_WRITE ; }
  if (!r->toappclosed)   /* watched even when not full: POLLERR says the application left */
  { itoapp = n ; x[n].fd = r->toapp ; x[n++].events = r->toappfull ? IOPAUSE_WRITE : 0 ; }
  if (!r->appdone && r->fromappempty)
  { ifromapp = n ; x[n].fd = r->fromapp ; x[n++].events = IOPAUSE_READ ; }

  ret = iopause_g(x, n, deadline) ;
  if (ret <= 0) return ret ;
  if (inet < n && x[inet].revents)
  {
    if (r->reading == TLS_WANTS_READ) r->reading = TLS_READY ;
    if (r->writing == TLS_WANTS_READ) r->writing = TLS_READY ;
    if (r->shutting == TLS_WANTS_READ) r->shutting = TLS_READY ;
  }
  if (onet < n && x[onet].revents) r->netfull = 0 ;   /* writable, or an error the next write reports */
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
  relay rr =
  {
    .ssl = ssl, .netr = netr, .netw = netw, .toapp = toapp, .fromapp = fromapp,
    .n2a = { .s = n2abuf, .size = sizeof(n2abuf) },
    .a2n = { .s = a2nbuf, .size = sizeof(a2nbuf) },
    .net = { .s = netbuf, .size = sizeof(netbuf) },
  } ;
  relay *r = &rr ;
  BIO *sock = SSL_get_wbio(ssl), *out ;
  tain deadline ;
  int ret = RELAY_DONE ;

  if (firstlen > RELAY_BUFSIZE) firstlen = RELAY_BUFSIZE ;
  if (firstlen) { memcpy(r->a2n.s, first, firstlen) ; ring_added(&r->a2n, firstlen) ; }
  if (ndelay_on(toapp) == -1 || ndelay_on(fromapp) == -1) { *why = strerror(errno) ; ret = RELAY_ERROR ; goto end ; }
  out = netbio_new(&r->net) ;
  if (!out || !BIO_up_ref(sock)) { BIO_free(out) ; *why = "out of memory" ; ret = RELAY_ERROR ; goto end ; }
  SSL_set0_wbio(ssl, out) ;   /* the session lets go of sock; our reference gives it back */
  SSL_set_read_ahead(ssl, 1) ;   /* a record in one read, not a header's read and a body's */
  tain_now_g() ;
  if (idlesecs) tain_addsec_g(&deadline, idlesecs) ; else deadline = tain_infinite ;

  for (;;)
  {
    int moved = pump(r), e ;
    if (moved < 0) { *why = r->why ; ret = RELAY_ERROR ; break ; }
    if (r->shutsent && r->toappclosed && r->net.start == r->net.end) break ;
    if (moved && idlesecs) tain_addsec_g(&deadline, idlesecs) ;
    e = await(r, &deadline) ;
    if (e == -1)
    {
      if (errno == EINTR) continue ;
      *why = strerror(errno) ; ret = RELAY_ERROR ; break ;
    }
    if (!e) { ret = RELAY_TIMEOUT ; break ; }
  }
  SSL_set0_wbio(ssl, sock) ;   /* frees out */

 end:
  if (!r->toappclosed) fd_close(r->toapp) ;
  if (!r->appdone) fd_close(r->fromapp) ;
  ring_wipe(&r->n2a) ;
  ring_wipe(&r->a2n) ;
  ring_wipe(&r->net) ;
  return ret ;
}
