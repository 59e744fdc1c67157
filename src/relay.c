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

static ring n2a, a2n ;

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

static int ssl_wait (SSL *ssl, int r, int *wait)
{
  switch (SSL_get_error(ssl, r))
  {
    case SSL_ERROR_WANT_READ : *wait = POLLIN ; return 1 ;
    case SSL_ERROR_WANT_WRITE : *wait = POLLOUT ; return 1 ;
    default : return 0 ;
  }
}

static char const *ssl_reason (SSL *ssl, int r)
{
  int e = SSL_get_error(ssl, r) ;
  if (e == SSL_ERROR_SYSCALL) return errno ? strerror(errno) : "connection closed" ;
  return log_tlserror() ;
}

int relay_run (SSL *ssl, int netr, int netw, int toapp, int fromapp, char const *first, size_t firstlen, unsigned int idlesecs, char const **why)
{
  int neteof = 0, appeof = 0, shutsent = 0, toappclosed = 0 ;
  int rwait = 0, wwait = 0, swait = 0, toappwait = 0, fromappwait = 0 ;
  tain deadline ;
  int ret = RELAY_DONE ;

  n2a.start = n2a.end = a2n.start = a2n.end = 0 ;
  if (firstlen > RELAY_BUFSIZE) firstlen = RELAY_BUFSIZE ;
  if (firstlen) { memcpy(a2n.s, first, firstlen) ; a2n.end = firstlen ; }
  if (ndelay_on(toapp) == -1 || ndelay_on(fromapp) == -1) { *why = strerror(errno) ; ret = RELAY_ERROR ; goto end ; }
  tain_now_g() ;
  if (idlesecs) tain_addsec_g(&deadline, idlesecs) ; else deadline = tain_infinite ;

  for (;;)
  {
    iopause_fd x[4] ;
    unsigned int n = 0, inet = 4, onet = 4, itoapp = 4, ifromapp = 4 ;
    int progress = 0, r ;

    for (;;)
    {
      int moved = 0 ;
      if (!neteof && !toappclosed && !rwait && n2a.end < RELAY_BUFSIZE)
      {
        ERR_clear_error() ;
        r = SSL_read(ssl, n2a.s + n2a.end, RELAY_BUFSIZE - n2a.end) ;
        if (r > 0) { n2a.end += r ; moved = 1 ; }
        else if (SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN) { neteof = 1 ; moved = 1 ; }
        else if (!ssl_wait(ssl, r, &rwait)) { *why = ssl_reason(ssl, r) ; ret = RELAY_ERROR ; goto end ; }
      }
      if (!toappclosed && !toappwait && n2a.end > n2a.start)
      {
        ssize_t w = write(toapp, n2a.s + n2a.start, n2a.end - n2a.start) ;
        if (w > 0) { n2a.start += w ; moved = 1 ; ring_tidy(&n2a) ; }
        else if (errno == EAGAIN) toappwait = 1 ;
        else if (errno == EPIPE) { fd_close(toapp) ; toappclosed = 1 ; n2a.start = n2a.end = 0 ; moved = 1 ; }
        else if (errno != EINTR) { *why = strerror(errno) ; ret = RELAY_ERROR ; goto end ; }
      }
      if (neteof && !toappclosed && n2a.start == n2a.end) { fd_close(toapp) ; toappclosed = 1 ; moved = 1 ; }
      if (!appeof && !fromappwait && a2n.end < RELAY_BUFSIZE)
      {
        ssize_t rr = read(fromapp, a2n.s + a2n.end, RELAY_BUFSIZE - a2n.end) ;
        if (rr > 0) { a2n.end += rr ; moved = 1 ; }
        else if (!rr) { appeof = 1 ; fd_close(fromapp) ; moved = 1 ; }
        else if (errno == EAGAIN) fromappwait = 1 ;
        else if (errno != EINTR) { *why = strerror(errno) ; ret = RELAY_ERROR ; goto end ; }
      }
      if (!wwait && a2n.end > a2n.start)
      {
        ERR_clear_error() ;
        r = SSL_write(ssl, a2n.s + a2n.start, a2n.end - a2n.start) ;
        if (r > 0) { a2n.start += r ; moved = 1 ; ring_tidy(&a2n) ; }
        else if (!ssl_wait(ssl, r, &wwait)) { *why = ssl_reason(ssl, r) ; ret = RELAY_ERROR ; goto end ; }
      }
      if (appeof && !shutsent && !swait && a2n.start == a2n.end)
      {
        ERR_clear_error() ;
        r = SSL_shutdown(ssl) ;
        if (r >= 0) { shutsent = 1 ; moved = 1 ; }
        else if (!ssl_wait(ssl, r, &swait))
        {
          /* the peer is gone (reset, broken pipe): what the application
             still reads may be truncated, so this is an error, not an end */
          *why = ssl_reason(ssl, r) ; ret = RELAY_ERROR ; goto end ;
        }
      }
      if (!moved) break ;
      progress = 1 ;
    }

    if (shutsent && toappclosed) break ;
    if (progress && idlesecs) tain_addsec_g(&deadline, idlesecs) ;

    if (rwait && !neteof && !toappclosed) { inet = n ; x[n].fd = netr ; x[n++].events = rwait == POLLIN ? IOPAUSE_READ : 0 ; }
    if ((wwait && a2n.end > a2n.start) || swait || (rwait == POLLOUT && !neteof))
    {
      short ev = 0 ;
      if (wwait == POLLOUT || swait == POLLOUT || rwait == POLLOUT) ev |= IOPAUSE_WRITE ;
      if (wwait == POLLIN || swait == POLLIN) ev |= IOPAUSE_READ ;
      onet = n ; x[n].fd = netw ; x[n++].events = ev ;
    }
    if (!toappclosed) { itoapp = n ; x[n].fd = toapp ; x[n++].events = toappwait ? IOPAUSE_WRITE : 0 ; }
    if (!appeof && fromappwait) { ifromapp = n ; x[n].fd = fromapp ; x[n++].events = IOPAUSE_READ ; }

    r = iopause_g(x, n, &deadline) ;
    if (r == -1)
    {
      if (errno == EINTR) continue ;
      *why = strerror(errno) ; ret = RELAY_ERROR ; goto end ;
    }
    if (!r) { ret = RELAY_TIMEOUT ; goto end ; }
    if (inet < n && x[inet].revents)
    {
      if (rwait == POLLIN) rwait = 0 ;
    }
    if (onet < n && x[onet].revents)
    {
      short re = x[onet].revents ;
      int canread = !!(re & (POLLIN | POLLHUP | POLLERR)), canwrite = !!(re & (POLLOUT | POLLHUP | POLLERR)) ;
      if ((wwait == POLLIN && canread) || (wwait == POLLOUT && canwrite)) wwait = 0 ;
      if ((swait == POLLIN && canread) || (swait == POLLOUT && canwrite)) swait = 0 ;
      if (rwait == POLLOUT && canwrite) rwait = 0 ;
    }
    if (itoapp < n && x[itoapp].revents)
    {
      if (x[itoapp].revents & POLLERR) { fd_close(toapp) ; toappclosed = 1 ; n2a.start = n2a.end = 0 ; }
      else if (x[itoapp].revents & POLLOUT) toappwait = 0 ;
    }
    if (ifromapp < n && x[ifromapp].revents) fromappwait = 0 ;
  }

 end:
  if (!toappclosed) fd_close(toapp) ;
  if (!appeof) fd_close(fromapp) ;
  return ret ;
}
