/* ISC license. */

#include <errno.h>
#include <stddef.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/err.h>

#include <skalibs/djbunix.h>
#include <skalibs/iopause.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "log.h"
#include "front.h"

#define BUFSIZE (2 * FRONT_LINEMAX)
#define NPENDING 32
#define TAGMAX 128
#define TEXTMAX (TAGMAX + 80)

typedef struct buf_s buf ;
struct buf_s
{
  size_t len ;
  size_t max ;
  size_t hw ;                   /* the most it held: what front_wipe clears */
  char s[BUFSIZE] ;
} ;

 /* What the daemon or the engine still owes the client, in order. The
    barriers (STARTTLS, DATA, AUTH, IDLE) stop the reading of client
    commands until they are answered: what follows them is not a command
    (message data, an authentication exchange) or must not be read (the
    handshake after STARTTLS). */
enum kind_e
{
  K_REPLY,        /* any command: one reply */
  K_LOCAL,        /* the engine's own reply, in text */
  K_STARTTLS,     /* the engine answers it when it is first in line */
  K_EHLO,         /* smtp: the extension list; ends a transaction */
  K_MAIL,         /* smtp: a 2xx reply opens a transaction */
  K_ENDTX,        /* smtp: RSET, HELO, BDAT LAST */
  K_DATA,         /* smtp: 354, the message, then the reply */
  K_AUTH,         /* a login with challenges (334, "+ ") */
  K_LOGIN,        /* a login in one command */
  K_MULTI,        /* pop3: a multi-line reply after +OK */
  K_CAPA,         /* pop3: the capability list */
  K_IDLE,         /* imap: "+ idling" then DONE */
} ;

typedef struct pending_s pending ;
struct pending_s
{
  unsigned char kind ;
  char text[TEXTMAX] ;   /* K_LOCAL: the reply; imap: the tag */
} ;

enum { READY = 0, WANTS_READ, WANTS_WRITE } ;

typedef struct front_s front ;
struct front_s
{
  int proto ;
  int tlsrequired ;
  int toapp ;
  int fromapp ;
  char const *pid ;
  SSL *ssl ;
  int netr ;
  int netw ;
  pending q[NPENDING] ;
  unsigned int qhead ;
  unsigned int qlen ;
  size_t craw ;                 /* client bytes to pass as they are (BDAT, literal) */
  size_t sraw ;                 /* daemon bytes to pass as they are (literal) */
  int creading ;                /* what a client read waits for */
  int cwriting ;                /* what a client write waits for */
  unsigned int cdata : 1 ;      /* smtp: the client sends the message */
  unsigned int ccont : 1 ;      /* the next client line continues a command (after a literal) */
  unsigned int cgrant : 1 ;     /* the next client line answers a challenge */
  unsigned int cskip : 1 ;      /* dropping the rest of an overlong command */
  unsigned int cmid : 1 ;       /* passing the rest of a long data line */
  unsigned int cdiscard : 1 ;   /* the literal and continuation belong to a refused command */
  unsigned int csync : 1 ;      /* imap: the literal awaited is a synchronizing one */
  unsigned int scont : 1 ;      /* the next daemon line continues a response (after a literal) */
  unsigned int smid : 1 ;       /* passing the rest of a long daemon line */
  unsigned int smulti : 1 ;     /* pop3: inside a multi-line reply */
  unsigned int sfirst : 1 ;     /* smtp: the next daemon line starts a reply */
  unsigned int sdata : 1 ;      /* smtp: the 354 came */
  unsigned int intx : 1 ;       /* smtp: inside a mail transaction */
  unsigned int authed : 1 ;     /* pop3, imap: logged in, no STARTTLS any more */
  unsigned int tls : 1 ;
  unsigned int switching : 1 ;  /* STARTTLS answered: no more reading in clear */
  unsigned int cineof : 1 ;
  unsigned int cgone : 1 ;      /* the client left after its EOF: its replies are dropped */
  unsigned int tappclosed : 1 ;
  unsigned int fappeof : 1 ;
  char const *why ;
  /* last, so that the state above is cleared without touching them:
     pages of theirs that a connection never used stay shared with the
     main process (memory per idle connection) */
  buf cin ;                     /* from the client */
  buf cout ;                    /* to the client */
  buf tapp ;                    /* to the daemon */
  buf fapp ;                    /* from the daemon */
} ;

static front fr ;   /* 64 kB of buffers: static, not on the stack */

int front_protocol (char const *name)
{
  if (!strcmp(name, "smtp")) return FRONT_SMTP ;
  if (!strcmp(name, "pop3")) return FRONT_POP3 ;
  if (!strcmp(name, "imap")) return FRONT_IMAP ;
  return FRONT_NONE ;
}

void front_init (int protocol, int tlsrequired, int toapp, int fromapp, char const *pid)
{
  memset(&fr, 0, offsetof(front, cin)) ;
  fr.cin.len = fr.cout.len = fr.tapp.len = fr.fapp.len = 0 ;
  fr.proto = protocol ;
  fr.tlsrequired = !!tlsrequired ;
  fr.toapp = toapp ;
  fr.fromapp = fromapp ;
  fr.pid = pid ;
  fr.sfirst = 1 ;
  fr.cin.max = fr.fapp.max = FRONT_LINEMAX ;
  fr.cout.max = fr.tapp.max = BUFSIZE ;
  /* the SMTP and POP3 greetings are replies owed from the start */
  if (protocol != FRONT_IMAP) { fr.q[0].kind = K_REPLY ; fr.qlen = 1 ; }
}


 /* Buffers and words */

static size_t room (buf const *b)
{
  return b->max - b->len ;
}

static void grown (buf *b, size_t n)
{
  b->len += n ;
  if (b->len > b->hw) b->hw = b->len ;
}

static void put (buf *b, char const *s, size_t n)
{
  memcpy(b->s + b->len, s, n) ;   /* callers checked room */
  grown(b, n) ;
}

static void puts_ (buf *b, char const *s)
{
  put(b, s, strlen(s)) ;
}

static void consume (buf *b, size_t n)
{
  memmove(b->s, b->s + n, b->len - n) ;
  b->len -= n ;
}

 /* The length of the line at the start of b, newline included; 0 if none. */
static size_t line_in (buf const *b)
{
  char const *nl = memchr(b->s, '\n', b->len) ;
  return nl ? (size_t)(nl - b->s) + 1 : 0 ;
}

 /* The line without its CR LF. */
static size_t text_len (char const *s, size_t len)
{
  if (len && s[len-1] == '\n') len-- ;
  if (len && s[len-1] == '\r') len-- ;
  return len ;
}

static size_t word_len (char const *s, size_t len)
{
  size_t n = 0 ;
  while (n < len && s[n] != ' ' && s[n] != '\r' && s[n] != '\n') n++ ;
  return n ;
}

static int word_is (char const *s, size_t n, char const *w)
{
  return n == strlen(w) && !strncasecmp(s, w, n) ;
}

 /* An SMTP or POP3 keyword: the first word up to '=' too (AUTH=LOGIN). */
static int keyword_is (char const *s, size_t len, char const *w)
{
  size_t n = 0 ;
  while (n < len && s[n] != ' ' && s[n] != '=' && s[n] != '\r' && s[n] != '\n') n++ ;
  return word_is(s, n, w) ;
}

 /* An IMAP literal announced at the end of a line: 1 for {n} (the client
    waits for the server's "+" before sending it), 2 for {n+}, 0 if none. */
static int literal_at_end (char const *s, size_t len, size_t *n)
{
  size_t t = text_len(s, len), i ;
  uint64_t v ;
  if (!t || s[t-1] != '}') return 0 ;
  i = t - 1 ;
  if (i && s[i-1] == '+') i-- ;
  while (i && s[i-1] >= '0' && s[i-1] <= '9') i-- ;
  if (!i || s[i-1] != '{' || s[i] == '}' || s[i] == '+') return 0 ;
  if (uint64_scan(s + i, &v) > 20) return 0 ;
  *n = v ;
  return s[t-2] == '+' ? 2 : 1 ;
}


 /* The queue of replies owed */

static pending *q_at (unsigned int i)
{
  return &fr.q[(fr.qhead + i) % NPENDING] ;
}

static pending *q_head (void)
{
  return fr.qlen ? q_at(0) : 0 ;
}

static pending *q_tail (void)
{
  return fr.qlen ? q_at(fr.qlen - 1) : 0 ;
}

static void q_pop (void)
{
  fr.qhead = (fr.qhead + 1) % NPENDING ;
  fr.qlen-- ;
}

static void q_remove (unsigned int i)
{
  for (; i + 1 < fr.qlen ; i++) *q_at(i) = *q_at(i + 1) ;
  fr.qlen-- ;
}

static pending *q_push (unsigned char kind, char const *tag, size_t taglen)
{
  pending *p = q_at(fr.qlen++) ;
  p->kind = kind ;
  memcpy(p->text, tag, taglen) ;
  p->text[taglen] = 0 ;
  return p ;
}

 /* The engine's reply, after those owed before it; with an IMAP tag. */
static void q_local (char const *tag, size_t taglen, char const *text)
{
  pending *p = q_push(K_LOCAL, tag, taglen) ;
  size_t n = taglen ;
  if (taglen) p->text[n++] = ' ' ;
  memcpy(p->text + n, text, strlen(text) + 1) ;
}

static int is_barrier (pending const *p)
{
  return p && (p->kind == K_STARTTLS || p->kind == K_DATA || p->kind == K_AUTH || p->kind == K_IDLE) ;
}


 /* Client commands: each is given to the daemon with what it will owe, or
    answered by the engine. */

static void to_daemon (char const *s, size_t len)
{
  if (!fr.tappclosed) put(&fr.tapp, s, len) ;
}

static int before_tls_refuse (void)
{
  return fr.tlsrequired && !fr.tls ;
}

static void smtp_command (char const *s, size_t len)
{
  size_t n = word_len(s, len) ;
  unsigned char kind = K_REPLY ;
  if (word_is(s, n, "STARTTLS")) { q_push(K_STARTTLS, "", 0) ; return ; }
  if (before_tls_refuse() && (word_is(s, n, "AUTH") || word_is(s, n, "MAIL")))
  {
    q_local("", 0, "530 5.7.0 Must issue a STARTTLS command first\r\n") ;
    return ;
  }
  if (word_is(s, n, "EHLO")) kind = K_EHLO ;
  else if (word_is(s, n, "HELO") || word_is(s, n, "RSET")) kind = K_ENDTX ;
  else if (word_is(s, n, "MAIL")) kind = K_MAIL ;
  else if (word_is(s, n, "DATA")) kind = K_DATA ;
  else if (word_is(s, n, "AUTH")) kind = K_AUTH ;
  else if (word_is(s, n, "BDAT") && n + 1 < len)
  {
    /* the chunk is bytes, not lines */
    char const *a = s + n + 1 ;
    uint64_t size ;
    size_t m = uint64_scan(a, &size) ;
    if (m)
    {
      fr.craw = size ;
      if (n + 1 + m + 1 < len && keyword_is(a + m + 1, len - n - m - 2, "LAST")) kind = K_ENDTX ;
    }
  }
  to_daemon(s, len) ;
  q_push(kind, "", 0) ;
}

static void pop3_command (char const *s, size_t len)
{
  size_t n = word_len(s, len), t = text_len(s, len) ;
  int bare = n >= t ;
  unsigned char kind = K_REPLY ;
  if (word_is(s, n, "STLS")) { q_push(K_STARTTLS, "", 0) ; return ; }
  if (before_tls_refuse() && (word_is(s, n, "USER") || word_is(s, n, "PASS") || word_is(s, n, "APOP") || word_is(s, n, "AUTH")))
  {
    q_local("", 0, "-ERR Must issue a STLS command first\r\n") ;
    return ;
  }
  if (word_is(s, n, "CAPA")) kind = K_CAPA ;
  else if (word_is(s, n, "RETR") || word_is(s, n, "TOP")) kind = K_MULTI ;
  else if (word_is(s, n, "LIST") || word_is(s, n, "UIDL")) kind = bare ? K_MULTI : K_REPLY ;
  else if (word_is(s, n, "AUTH")) kind = bare ? K_MULTI : K_AUTH ;
  else if (word_is(s, n, "PASS") || word_is(s, n, "APOP")) kind = K_LOGIN ;
  to_daemon(s, len) ;
  q_push(kind, "", 0) ;
}

static void imap_command (char const *s, size_t len)
{
  size_t tn = word_len(s, len), cn, lit ;
  char const *c = s + tn + (tn < len) ;
  int haslit = literal_at_end(s, len, &lit) ;
  unsigned char kind = K_REPLY ;
  cn = word_len(c, len - (c - s)) ;
  if (!tn || tn > TAGMAX)
  {
    if (word_is(c, cn, "STARTTLS") || word_is(c, cn, "LOGIN") || word_is(c, cn, "AUTHENTICATE"))
    {
      q_local("", 0, tn ? "* BAD tag too long\r\n" : "* BAD no tag\r\n") ;
      return ;
    }
    to_daemon(s, len) ;   /* the daemon answers it untagged or under a tag no reply waits for */
    if (haslit) { fr.craw = lit ; fr.ccont = 1 ; fr.csync = haslit == 1 ; }
    return ;
  }
  if (word_is(c, cn, "STARTTLS")) { q_push(K_STARTTLS, s, tn) ; return ; }
  if (before_tls_refuse() && (word_is(c, cn, "LOGIN") || word_is(c, cn, "AUTHENTICATE")))
  {
    q_local(s, tn, "NO [PRIVACYREQUIRED] Must issue a STARTTLS command first\r\n") ;
    /* a client that waits for "+" sends no literal after a NO */
    if (haslit == 2) { fr.craw = lit ; fr.ccont = 1 ; fr.cdiscard = 1 ; }
    return ;
  }
  if (word_is(c, cn, "LOGIN")) kind = K_LOGIN ;
  else if (word_is(c, cn, "AUTHENTICATE")) kind = K_AUTH ;
  else if (word_is(c, cn, "IDLE")) kind = K_IDLE ;
  to_daemon(s, len) ;
  if (haslit) { fr.craw = lit ; fr.ccont = 1 ; fr.csync = haslit == 1 ; }
  q_push(kind, s, tn) ;
}

static void too_long (void)
{
  static char const *const reply[] = { "", "500 5.5.2 Line too long\r\n", "-ERR Line too long\r\n", "* BAD Line too long\r\n" } ;
  char n[UINT64_FMT] ;
  n[uint64_fmt(n, FRONT_LINEMAX)] = 0 ;
  log_warn("a client command over ", n, " bytes was cut off for pid: ", fr.pid) ;
  q_local("", 0, reply[fr.proto]) ;
}

 /* Moves what can be moved from the client to the daemon or the queue.
    1 if anything moved. */
static int client_lines (void)
{
  int moved = 0 ;
  while (!fr.switching)
  {
    size_t len ;
    if (fr.craw)
    {
      size_t n = fr.cin.len < fr.craw ? fr.cin.len : fr.craw ;
      if (!fr.cdiscard && n > room(&fr.tapp)) n = room(&fr.tapp) ;
      if (!n) break ;
      if (!fr.cdiscard) to_daemon(fr.cin.s, n) ;
      consume(&fr.cin, n) ;
      fr.craw -= n ;
      moved = 1 ;
      continue ;
    }
    len = line_in(&fr.cin) ;
    if (!len)
    {
      int passing = fr.cdata || fr.ccont || fr.cgrant || fr.cmid ;
      if (!fr.cin.len || (fr.cin.len < fr.cin.max && !fr.cineof)) break ;
      /* a line longer than the buffer, or the last bytes before EOF */
      if (fr.cskip) { fr.cin.len = 0 ; moved = 1 ; continue ; }
      if (passing)
      {
        if (fr.cin.len > room(&fr.tapp)) break ;
        if (!fr.cdiscard) to_daemon(fr.cin.s, fr.cin.len) ;
        fr.cin.len = 0 ;
        fr.cmid = 1 ;
        moved = 1 ;
        continue ;
      }
      if (fr.cineof) { fr.cin.len = 0 ; moved = 1 ; break ; }   /* half a command: dropped */
      if (fr.qlen == NPENDING) break ;
      too_long() ;
      fr.cin.len = 0 ;
      fr.cskip = 1 ;
      moved = 1 ;
      continue ;
    }
    if (fr.cskip) { consume(&fr.cin, len) ; fr.cskip = 0 ; moved = 1 ; continue ; }
    if (len > room(&fr.tapp)) break ;
    if (fr.cmid || fr.cdata || fr.cgrant)
    {
      if (!fr.cmid && fr.cdata && text_len(fr.cin.s, len) == 1 && fr.cin.s[0] == '.') fr.cdata = 0 ;
      if (fr.cmid) fr.ccont = 0 ;
      fr.cmid = 0 ;
      fr.cgrant = 0 ;
      if (!fr.cdiscard) to_daemon(fr.cin.s, len) ;
      fr.cdiscard = 0 ;
    }
    else if (fr.ccont)
    {
      size_t lit ;
      int haslit = literal_at_end(fr.cin.s, len, &lit) ;
      fr.ccont = 0 ;
      fr.csync = 0 ;
      if (!fr.cdiscard) to_daemon(fr.cin.s, len) ;
      if (haslit == 2 || (haslit == 1 && !fr.cdiscard)) { fr.craw = lit ; fr.ccont = 1 ; fr.csync = haslit == 1 ; }
      else fr.cdiscard = 0 ;
    }
    else
    {
      if (is_barrier(q_tail()) || fr.qlen == NPENDING) break ;
      switch (fr.proto)
      {
        case FRONT_SMTP : smtp_command(fr.cin.s, len) ; break ;
        case FRONT_POP3 : pop3_command(fr.cin.s, len) ; break ;
        case FRONT_IMAP : imap_command(fr.cin.s, len) ; break ;
      }
    }
    consume(&fr.cin, len) ;
    moved = 1 ;
  }
  return moved ;
}


 /* The engine's own replies, when their turn comes. */

static void answer_starttls (pending const *p)
{
  size_t t = strlen(p->text) ;
  char const *reply ;
  int go = !fr.tls && !fr.intx && !fr.authed ;
  switch (fr.proto)
  {
    case FRONT_SMTP :
      reply = go ? "220 2.0.0 Ready to start TLS\r\n"
            : fr.tls ? "503 5.5.1 TLS already active\r\n"
            : "503 5.5.1 STARTTLS not allowed in a mail transaction\r\n" ;
      break ;
    case FRONT_POP3 :
      reply = go ? "+OK Begin TLS negotiation\r\n"
            : fr.tls ? "-ERR Command not permitted when TLS active\r\n"
            : "-ERR Command not permitted after login\r\n" ;
      break ;
    default :
      reply = go ? " OK Begin TLS negotiation now\r\n"
            : fr.tls ? " BAD TLS already active\r\n"
            : " BAD STARTTLS not allowed after login\r\n" ;
      put(&fr.cout, p->text, t) ;
  }
  puts_(&fr.cout, reply) ;
  if (go) fr.switching = 1 ;
}

static int local_replies (void)
{
  int moved = 0 ;
  for (;;)
  {
    pending *p = q_head() ;
    if (!p || (p->kind != K_LOCAL && p->kind != K_STARTTLS) || room(&fr.cout) < TEXTMAX + 64) return moved ;
    if (p->kind == K_LOCAL) puts_(&fr.cout, p->text) ;
    else answer_starttls(p) ;
    q_pop() ;
    moved = 1 ;
    if (fr.switching) return 1 ;
  }
}


 /* Daemon replies: passed to the client, edited where the capability is
    listed, and matched against what is owed. */

static int hide_auth (void)
{
  return fr.tlsrequired && !fr.tls ;
}

static void smtp_reply (char const *s, size_t len, int whole)
{
  pending *p = q_head() ;
  int final = len < 4 || s[3] != '-' ;
  int first = fr.sfirst ;
  fr.sfirst = final ;
  if (p && p->kind == K_EHLO && !strncmp(s, "250", 3) && whole && len >= 4)
  {
    char const *kw = s + 4 ;
    size_t kl = len - 4 ;
    int drop = !first && (keyword_is(kw, kl, "STARTTLS") || (hide_auth() && keyword_is(kw, kl, "AUTH"))) ;
    if (!final) { if (!drop) put(&fr.cout, s, len) ; }
    else if (fr.tls) { if (!drop || first) put(&fr.cout, s, len) ; else puts_(&fr.cout, "250 OK\r\n") ; }
    else
    {
      /* our keyword goes last, so the daemon's last line is no longer last */
      if (!drop) { puts_(&fr.cout, "250-") ; put(&fr.cout, kw, kl) ; }
      puts_(&fr.cout, "250 STARTTLS\r\n") ;
    }
  }
  else put(&fr.cout, s, len) ;
  if (!final || !p || p->kind == K_LOCAL || p->kind == K_STARTTLS) return ;
  switch (p->kind)
  {
    case K_DATA :
      if (s[0] == '3') { fr.cdata = 1 ; fr.sdata = 1 ; return ; }
      if (fr.sdata) fr.intx = 0 ;
      fr.sdata = 0 ;
      break ;
    case K_AUTH :
      if (s[0] == '3') { fr.cgrant = 1 ; return ; }
      break ;
    case K_MAIL : if (s[0] == '2') fr.intx = 1 ; break ;
    case K_EHLO :
    case K_ENDTX : fr.intx = 0 ; break ;
  }
  q_pop() ;
}

static int is_dot (char const *s, size_t len)
{
  return text_len(s, len) == 1 && s[0] == '.' ;
}

static void pop3_reply (char const *s, size_t len)
{
  pending *p = q_head() ;
  if (fr.smulti)
  {
    if (is_dot(s, len))
    {
      if (p && p->kind == K_CAPA && !fr.tls) puts_(&fr.cout, "STLS\r\n") ;
      fr.smulti = 0 ;
      if (p) q_pop() ;
    }
    else if (p && p->kind == K_CAPA && (keyword_is(s, len, "STLS") || (hide_auth() && (keyword_is(s, len, "USER") || keyword_is(s, len, "SASL"))))) return ;
    put(&fr.cout, s, len) ;
    return ;
  }
  put(&fr.cout, s, len) ;
  if (!p || p->kind == K_LOCAL || p->kind == K_STARTTLS) return ;
  if (s[0] == '+' && (len < 2 || s[1] != 'O'))
  {
    if (p->kind == K_AUTH) fr.cgrant = 1 ;   /* a challenge */
    return ;
  }
  if (!strncmp(s, "+OK", 3))
  {
    if (p->kind == K_MULTI || p->kind == K_CAPA) { fr.smulti = 1 ; return ; }
    if (p->kind == K_LOGIN || p->kind == K_AUTH) fr.authed = 1 ;
  }
  q_pop() ;
}

 /* A capability list, in a CAPABILITY response or a response code: the
    daemon's words, minus ours, then ours. */
static void imap_capabilities (char const *s, size_t len, size_t from, size_t to)
{
  size_t i = from ;
  put(&fr.cout, s, from) ;
  while (i < to)
  {
    size_t n = 0 ;
    while (i < to && s[i] == ' ') i++ ;
    while (i + n < to && s[i+n] != ' ') n++ ;
    if (!n) break ;
    if (!word_is(s + i, n, "STARTTLS") && !word_is(s + i, n, "LOGINDISABLED")
     && !(hide_auth() && n > 5 && !strncasecmp(s + i, "AUTH=", 5)))
    {
      if (i > from) put(&fr.cout, " ", 1) ;
      put(&fr.cout, s + i, n) ;
    }
    i += n ;
  }
  if (!fr.tls) puts_(&fr.cout, " STARTTLS") ;
  if (hide_auth()) puts_(&fr.cout, " LOGINDISABLED") ;
  put(&fr.cout, s + to, len - to) ;
}

 /* Where the capability words are in a line, if it lists them. */
static int imap_capability_span (char const *s, size_t len, size_t *from, size_t *to)
{
  size_t t = text_len(s, len), tn = word_len(s, t), i = tn + 1 ;
  char const *rb ;
  if (i >= t) return 0 ;
  if (!strncasecmp(s + i, "CAPABILITY ", 11) && tn == 1 && s[0] == '*') { *from = i + 11 ; *to = t ; return 1 ; }
  if (strncasecmp(s + i, "OK [CAPABILITY ", 15)) return 0 ;
  rb = memchr(s + i + 15, ']', t - i - 15) ;
  if (!rb) return 0 ;
  *from = i + 15 ;
  *to = rb - s ;
  return 1 ;
}

static void imap_reply (char const *s, size_t len, int whole)
{
  size_t tn = word_len(s, len), from, to, lit ;
  if (fr.scont) fr.scont = 0 ;
  else if (whole && imap_capability_span(s, len, &from, &to)) { imap_capabilities(s, len, from, to) ; goto literal ; }
  else if (s[0] == '+')
  {
    pending *t = q_tail() ;
    if (t && (t->kind == K_AUTH || t->kind == K_IDLE)) fr.cgrant = 1 ;
  }
  else if (s[0] == '*')
  {
    if (!strncasecmp(s, "* PREAUTH", 9)) fr.authed = 1 ;
  }
  else
  {
    for (unsigned int i = 0 ; i < fr.qlen ; i++)
    {
      pending *p = q_at(i) ;
      if (p->kind == K_LOCAL || p->kind == K_STARTTLS || strlen(p->text) != tn || strncmp(p->text, s, tn)) continue ;
      if ((p->kind == K_LOGIN || p->kind == K_AUTH) && tn + 3 < len && !strncasecmp(s + tn + 1, "OK", 2)) fr.authed = 1 ;
      /* refused before its synchronizing literal: the client sends none */
      if (i == fr.qlen - 1 && fr.csync) { fr.craw = 0 ; fr.ccont = 0 ; fr.csync = 0 ; }
      q_remove(i) ;
      break ;
    }
  }
  put(&fr.cout, s, len) ;
 literal:
  if (whole && literal_at_end(s, len, &lit)) { fr.sraw = lit ; fr.scont = 1 ; }
}

static int daemon_lines (void)
{
  int moved = 0 ;
  for (;;)
  {
    size_t len ;
    int whole = 1 ;
    pending *h = q_head() ;
    if (h && (h->kind == K_LOCAL || h->kind == K_STARTTLS)) return moved ;
    if (fr.switching) return moved ;
    if (fr.sraw)
    {
      size_t n = fr.fapp.len < fr.sraw ? fr.fapp.len : fr.sraw ;
      if (n > room(&fr.cout)) n = room(&fr.cout) ;
      if (!n) return moved ;
      put(&fr.cout, fr.fapp.s, n) ;
      consume(&fr.fapp, n) ;
      fr.sraw -= n ;
      moved = 1 ;
      continue ;
    }
    len = line_in(&fr.fapp) ;
    if (!len)
    {
      /* a line longer than the buffer, or the last one without a newline */
      if (!fr.fapp.len || (fr.fapp.len < fr.fapp.max && !fr.fappeof)) return moved ;
      len = fr.fapp.len ;
      whole = 0 ;
    }
    if (room(&fr.cout) < len + TEXTMAX) return moved ;
    if (fr.smid) put(&fr.cout, fr.fapp.s, len) ;
    else switch (fr.proto)
    {
      case FRONT_SMTP : smtp_reply(fr.fapp.s, len, whole) ; break ;
      case FRONT_POP3 : pop3_reply(fr.fapp.s, len) ; break ;
      case FRONT_IMAP : imap_reply(fr.fapp.s, len, whole) ; break ;
    }
    fr.smid = !whole ;
    consume(&fr.fapp, len) ;
    moved = 1 ;
    if (local_replies()) moved = 1 ;
  }
}


 /* The transports */

static int tls_wait (int ret, int *w)
{
  switch (SSL_get_error(fr.ssl, ret))
  {
    case SSL_ERROR_WANT_READ : *w = WANTS_READ ; return 0 ;
    case SSL_ERROR_WANT_WRITE : *w = WANTS_WRITE ; return 0 ;
    case SSL_ERROR_SYSCALL : fr.why = errno ? strerror(errno) : "connection closed" ; return -1 ;
    default : fr.why = log_tlserror() ; return -1 ;
  }
}

static int read_client (void)
{
  ssize_t n ;
  if (fr.cineof || fr.switching || fr.creading || !room(&fr.cin)) return 0 ;
  if (fr.ssl)
  {
    ERR_clear_error() ;
    n = SSL_read(fr.ssl, fr.cin.s + fr.cin.len, room(&fr.cin)) ;
    if (n > 0) { grown(&fr.cin, n) ; return 1 ; }
    if (SSL_get_error(fr.ssl, n) == SSL_ERROR_ZERO_RETURN) { fr.cineof = 1 ; return 1 ; }
    return tls_wait(n, &fr.creading) ;
  }
  n = read(fr.netr, fr.cin.s + fr.cin.len, room(&fr.cin)) ;
  if (n > 0) { grown(&fr.cin, n) ; return 1 ; }
  if (!n) { fr.cineof = 1 ; return 1 ; }
  if (errno == EAGAIN) { fr.creading = WANTS_READ ; return 0 ; }
  if (errno == EINTR) return 0 ;
  fr.why = strerror(errno) ;
  return -1 ;
}

static int write_client (void)
{
  ssize_t n ;
  if (fr.cwriting || !fr.cout.len) return 0 ;
  if (fr.cgone) { fr.cout.len = 0 ; return 1 ; }
  if (fr.ssl)
  {
    ERR_clear_error() ;
    n = SSL_write(fr.ssl, fr.cout.s, fr.cout.len) ;
    if (n > 0) { consume(&fr.cout, n) ; return 1 ; }
    if (!tls_wait(n, &fr.cwriting)) return 0 ;
  }
  else
  {
    n = write(fr.netw, fr.cout.s, fr.cout.len) ;
    if (n > 0) { consume(&fr.cout, n) ; return 1 ; }
    if (errno == EAGAIN) { fr.cwriting = WANTS_WRITE ; return 0 ; }
    if (errno == EINTR) return 0 ;
    fr.why = strerror(errno) ;
  }
  /* a client that has said its last word may leave before the daemon's
     goodbye: no error then */
  if (!fr.cineof) return -1 ;
  fr.cgone = 1 ;
  fr.cout.len = 0 ;
  return 1 ;
}

static void close_toapp (void)
{
  if (fr.tappclosed) return ;
  fd_close(fr.toapp) ;
  fr.tappclosed = 1 ;
  fr.tapp.len = 0 ;
}

static int write_app (void)
{
  ssize_t n ;
  if (fr.tappclosed) return 0 ;
  if (!fr.tapp.len)
  {
    /* the client's EOF, once every line it sent is through */
    if (!fr.cineof || fr.cin.len || fr.craw) return 0 ;
    close_toapp() ;
    return 1 ;
  }
  n = write(fr.toapp, fr.tapp.s, fr.tapp.len) ;
  if (n > 0) { consume(&fr.tapp, n) ; return 1 ; }
  if (errno == EAGAIN || errno == EINTR) return 0 ;
  if (errno == EPIPE) { close_toapp() ; return 1 ; }
  fr.why = strerror(errno) ;
  return -1 ;
}

static int read_app (void)
{
  ssize_t n ;
  if (fr.fappeof || !room(&fr.fapp)) return 0 ;
  n = read(fr.fromapp, fr.fapp.s + fr.fapp.len, room(&fr.fapp)) ;
  if (n > 0) { grown(&fr.fapp, n) ; return 1 ; }
  if (!n) { fr.fappeof = 1 ; return 1 ; }
  if (errno == EAGAIN || errno == EINTR) return 0 ;
  fr.why = strerror(errno) ;
  return -1 ;
}

static int pump (void)
{
  static int (*const steps[])(void) = { &read_client, &client_lines, &write_app, &read_app, &daemon_lines, &local_replies, &write_client } ;
  int moved = 0 ;
  for (;;)
  {
    int m = 0 ;
    for (unsigned int i = 0 ; i < sizeof(steps) / sizeof(steps[0]) ; i++)
    {
      int s = (*steps[i])() ;
      if (s < 0) return -1 ;
      m |= s ;
    }
    if (!m) return moved ;
    moved = 1 ;
  }
}

static short wanted (int w)
{
  return w == WANTS_READ ? IOPAUSE_READ : w == WANTS_WRITE ? IOPAUSE_WRITE : 0 ;
}

static int await (tain const *deadline)
{
  iopause_fd x[4] ;
  unsigned int n = 0, ir = 4, iw = 4, ita = 4, ifa = 4 ;
  int ret ;
  if (fr.creading && !fr.cineof && !fr.switching && room(&fr.cin))
  {
    ir = n ; x[n].fd = fr.creading == WANTS_WRITE ? fr.netw : fr.netr ; x[n++].events = wanted(fr.creading) ;
  }
  if (fr.cwriting && fr.cout.len)
  {
    iw = n ; x[n].fd = fr.cwriting == WANTS_READ ? fr.netr : fr.netw ; x[n++].events = wanted(fr.cwriting) ;
  }
  if (!fr.tappclosed && fr.tapp.len) { ita = n ; x[n].fd = fr.toapp ; x[n++].events = IOPAUSE_WRITE ; }
  if (!fr.fappeof && room(&fr.fapp)) { ifa = n ; x[n].fd = fr.fromapp ; x[n++].events = IOPAUSE_READ ; }
  ret = iopause_g(x, n, deadline) ;
  if (ret <= 0) return ret ;
  if (ir < n && x[ir].revents) fr.creading = READY ;
  if (iw < n && x[iw].revents) fr.cwriting = READY ;
  (void)ita ; (void)ifa ;
  return ret ;
}

int front_run (SSL *ssl, int netr, int netw, unsigned int idlesecs, char const **why)
{
  tain deadline ;
  int ret = FRONT_DONE ;

  fr.ssl = ssl ;
  fr.netr = netr ;
  fr.netw = netw ;
  fr.creading = fr.cwriting = READY ;
  if (ssl)
  {
    /* nothing read in clear after STARTTLS survives into TLS */
    fr.cin.len = 0 ;
    fr.cineof = 0 ;
    fr.cskip = fr.cmid = fr.cgrant = 0 ;
    fr.craw = 0 ;
    fr.switching = 0 ;
    fr.tls = 1 ;
  }
  if (ndelay_on(netr) == -1 || ndelay_on(netw) == -1 || ndelay_on(fr.toapp) == -1 || ndelay_on(fr.fromapp) == -1)
  {
    *why = strerror(errno) ;
    ret = FRONT_ERROR ;
    goto end ;
  }
  tain_now_g() ;
  if (idlesecs) tain_addsec_g(&deadline, idlesecs) ; else deadline = tain_infinite ;
  for (;;)
  {
    int moved = pump(), e ;
    if (moved < 0) { *why = fr.why ; ret = FRONT_ERROR ; goto end ; }
    if (fr.switching && !fr.cout.len) return FRONT_STARTTLS ;
    if (fr.fappeof && !fr.fapp.len && !fr.cout.len) break ;
    if (moved && idlesecs) tain_addsec_g(&deadline, idlesecs) ;
    e = await(&deadline) ;
    if (e == -1)
    {
      if (errno == EINTR) continue ;
      *why = strerror(errno) ; ret = FRONT_ERROR ; goto end ;
    }
    if (!e) { ret = FRONT_TIMEOUT ; goto end ; }
  }
  if (ssl && !fr.cgone)
  {
    ERR_clear_error() ;
    SSL_shutdown(ssl) ;   /* our close_notify, once, as far as it goes */
  }

 end:
  close_toapp() ;
  if (!fr.fappeof) { fd_close(fr.fromapp) ; fr.fappeof = 1 ; }
  return ret ;
}

static void wipe_buf (buf *b)
{
  explicit_bzero(b->s, b->hw) ;
  b->len = b->hw = 0 ;
}

void front_wipe (void)
{
  explicit_bzero(&fr, offsetof(front, cin)) ;
  wipe_buf(&fr.cin) ;
  wipe_buf(&fr.cout) ;
  wipe_buf(&fr.tapp) ;
  wipe_buf(&fr.fapp) ;
}
