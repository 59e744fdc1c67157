/* ISC license. */
/*
 * bench/loadgen: the load generator of bench/run. OpenSSL 3 and libc only.
 *
 *   loadgen conn [-P] [-v 1.2|1.3] [-c clients] [-d secs | -n conns] [-r] [-x]
 *                [-A cafile] host port
 *       Each of the clients (threads) loops: connect, full TLS handshake
 *       (or a resumption with -r), write one line, read it back, send
 *       close_notify, read to EOF, close. The latency of a connection is from
 *       connect() to the echoed line. -P: plain TCP (tcpserver), the same
 *       loop without TLS. -x: accept any line of the right length (openssl
 *       s_server -rev sends the line reversed). -r: each client keeps the
 *       session of its first connection (its ticket) and offers it on every
 *       later one; SSL_session_reused counts the resumed ones.
 *       Prints one line: conns= errors= secs= rate= p50_ms= p99_ms=
 *       resumed= proto= cipher= group= client_cpu_ms=
 *
 *   loadgen bulk [-P] [-v ...] [-A cafile] (-s bytes | -g bytes) host port
 *       One connection to bench/bulkapp: -s sends "sink\n" and the bytes, then
 *       close_notify (or a TCP half-close), and checks the count the server
 *       program writes back; -g sends "source N\n" and reads N bytes.
 *       Prints: bytes= secs= mbps= (10^6 bytes/s, connect to last byte)
 *
 *   loadgen idle [-P] [-v ...] [-A cafile] -n conns host port
 *       Opens conns connections one after the other, handshake done and
 *       nothing sent, prints "ready N", and holds them until its standard
 *       input reaches EOF or it gets SIGTERM.
 *
 *   loadgen freeport
 *       Prints a TCP port free on 127.0.0.1 (for servers that take no 0).
 */

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>

#define LINE "hello from bench/loadgen\n"
#define IOTIMEOUT 20

static struct
{
  int plain ;
  int version ;
  unsigned int clients ;
  double duration ;
  long total ;
  int resume ;
  int anyline ;
  char const *cafile ;
  unsigned long long sendn ;
  unsigned long long getn ;
} opt = { .version = TLS1_3_VERSION, .clients = 1, .duration = 0, .total = 0 } ;

static struct sockaddr_in addr ;
static SSL_CTX *ctx ;
static double deadline ;
static long remaining ;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER ;

static double now (void)
{
  struct timespec ts ;
  clock_gettime(CLOCK_MONOTONIC, &ts) ;
  return ts.tv_sec + ts.tv_nsec / 1e9 ;
}

static void die (char const *what)
{
  fprintf(stderr, "loadgen: fatal: %s: %s\n", what, errno ? strerror(errno) : "error") ;
  ERR_print_errors_fp(stderr) ;
  exit(111) ;
}

static void usage (void)
{
  fprintf(stderr, "usage: loadgen conn|bulk|idle [-P] [-v 1.2|1.3] [-c clients] [-d secs] [-n conns] [-r] [-x] [-A cafile] [-s bytes] [-g bytes] host port\n"
                  "       loadgen freeport\n") ;
  exit(100) ;
}

static int tcp_connect (void)
{
  int one = 1 ;
  struct timeval tv = { .tv_sec = IOTIMEOUT } ;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0) ;
  if (fd == -1) return -1 ;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ;
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ;
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == -1) { int e = errno ; close(fd) ; errno = e ; return -1 ; }
  return fd ;
}

static void make_ctx (void)
{
  ctx = SSL_CTX_new(TLS_client_method()) ;
  if (!ctx) die("SSL_CTX_new") ;
  if (!SSL_CTX_set_min_proto_version(ctx, opt.version) || !SSL_CTX_set_max_proto_version(ctx, opt.version)) die("set version") ;
   /* One cipher and one key exchange (X25519), so that every server negotiates
      the same; P-256 is listed too because in TLS 1.2 it also says that the
      client accepts a P-256 certificate. */
  if (!SSL_CTX_set_ciphersuites(ctx, "TLS_AES_256_GCM_SHA384")) die("set ciphersuites") ;
  if (!SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384")) die("set cipher list") ;
  if (!SSL_CTX_set1_groups_list(ctx, "X25519:P-256")) die("set groups") ;
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF) ;
  if (opt.cafile)
  {
    if (!SSL_CTX_load_verify_locations(ctx, opt.cafile, 0)) die("load CA file") ;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, 0) ;
  }
  else SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, 0) ;
}

 /* A TLS session on a connected socket; 0 on failure (reason in err). */
static SSL *tls_start (int fd, SSL_SESSION *sess, char *err, size_t errlen)
{
  SSL *ssl = SSL_new(ctx) ;
  if (!ssl) { snprintf(err, errlen, "SSL_new failed") ; return 0 ; }
  SSL_set_fd(ssl, fd) ;
  SSL_set_tlsext_host_name(ssl, "localhost") ;
  if (opt.cafile) SSL_set1_host(ssl, "localhost") ;
  if (sess) SSL_set_session(ssl, sess) ;
  ERR_clear_error() ;
  if (SSL_connect(ssl) != 1)
  {
    unsigned long e = ERR_get_error() ;
    snprintf(err, errlen, "handshake: %s", e ? ERR_error_string(e, 0) : errno ? strerror(errno) : "connection closed") ;
    SSL_free(ssl) ;
    return 0 ;
  }
  return ssl ;
}

static int io_write (SSL *ssl, int fd, char const *s, size_t len)
{
  while (len)
  {
    int r = ssl ? SSL_write(ssl, s, len > 1 << 30 ? 1 << 30 : (int)len) : (int)write(fd, s, len) ;
    if (r <= 0) { if (!ssl && errno == EINTR) continue ; return 0 ; }
    s += r ; len -= r ;
  }
  return 1 ;
}

static long io_read (SSL *ssl, int fd, char *s, size_t len)
{
  for (;;)
  {
    long r = ssl ? SSL_read(ssl, s, (int)len) : (long)read(fd, s, len) ;
    if (r < 0 && !ssl && errno == EINTR) continue ;
    if (r < 0 && ssl && SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN) return 0 ;
    return r ;
  }
}

 /* Reads up to and including a newline; returns its length or -1. */
static long read_line (SSL *ssl, int fd, char *buf, size_t max)
{
  size_t len = 0 ;
  while (len < max)
  {
    long r = io_read(ssl, fd, buf + len, max - len) ;
    if (r <= 0) return -1 ;
    len += r ;
    if (memchr(buf + len - r, '\n', r)) return len ;
  }
  return -1 ;
}

 /* Our side is done: close_notify (or FIN), then wait for the server to end. */
static void finish (SSL *ssl, int fd)
{
  char buf[4096] ;
  if (ssl) SSL_shutdown(ssl) ; else shutdown(fd, SHUT_WR) ;
  while (io_read(ssl, fd, buf, sizeof(buf)) > 0) ;
  if (ssl) SSL_free(ssl) ;
  close(fd) ;
}

typedef struct worker_s worker ;
struct worker_s
{
  pthread_t t ;
  long conns, errors, resumed ;
  double *lat ;
  size_t nlat, maxlat ;
  SSL_SESSION *sess ;
  char proto[32], cipher[64], group[32], err[256] ;
} ;

static int one_conn (worker *w)
{
  char buf[4096] ;
  double t0 = now(), t1 ;
  SSL *ssl = 0 ;
  long n ;
  int fd = tcp_connect() ;
  if (fd == -1) { snprintf(w->err, sizeof(w->err), "connect: %s", strerror(errno)) ; return 0 ; }
  if (!opt.plain && !(ssl = tls_start(fd, opt.resume ? w->sess : 0, w->err, sizeof(w->err)))) { close(fd) ; return 0 ; }
  if (!io_write(ssl, fd, LINE, sizeof(LINE) - 1)) { snprintf(w->err, sizeof(w->err), "write: %s", strerror(errno)) ; goto fail ; }
  n = read_line(ssl, fd, buf, sizeof(buf)) ;
  t1 = now() ;
  if (n != sizeof(LINE) - 1 || (!opt.anyline && memcmp(buf, LINE, n)))
  { snprintf(w->err, sizeof(w->err), "bad or no echo (%ld bytes)", n) ; goto fail ; }
  if (ssl)
  {
    if (SSL_session_reused(ssl)) w->resumed++ ;
    if (!w->proto[0])
    {
      int nid = SSL_get_negotiated_group(ssl) ;
      snprintf(w->proto, sizeof(w->proto), "%s", SSL_get_version(ssl)) ;
      snprintf(w->cipher, sizeof(w->cipher), "%s", SSL_get_cipher_name(ssl)) ;
      snprintf(w->group, sizeof(w->group), "%s", nid > 0 && OBJ_nid2sn(nid) ? OBJ_nid2sn(nid) : "?") ;
    }
    if (opt.resume && !w->sess) w->sess = SSL_get1_session(ssl) ;
  }
  else if (!w->proto[0]) { strcpy(w->proto, "TCP") ; strcpy(w->cipher, "none") ; strcpy(w->group, "none") ; }
  finish(ssl, fd) ;
  if (w->nlat == w->maxlat)
  {
    w->maxlat = w->maxlat ? 2 * w->maxlat : 4096 ;
    w->lat = realloc(w->lat, w->maxlat * sizeof(double)) ;
    if (!w->lat) die("realloc") ;
  }
  w->lat[w->nlat++] = t1 - t0 ;
  return 1 ;
 fail:
  if (ssl) SSL_free(ssl) ;
  close(fd) ;
  return 0 ;
}

static void *work (void *arg)
{
  worker *w = arg ;
  for (;;)
  {
    if (opt.total)
    {
      int go ;
      pthread_mutex_lock(&lock) ;
      go = remaining > 0 ;
      if (go) remaining-- ;
      pthread_mutex_unlock(&lock) ;
      if (!go) break ;
    }
    else if (now() >= deadline) break ;
    if (one_conn(w)) w->conns++ ;
    else
    {
      w->errors++ ;
      if (w->errors > 1000 && !w->conns) break ;
    }
  }
  return 0 ;
}

static int cmpd (void const *a, void const *b)
{
  double x = *(double const *)a, y = *(double const *)b ;
  return x < y ? -1 : x > y ;
}

static double cpu_seconds (void)
{
  struct rusage ru ;
  getrusage(RUSAGE_SELF, &ru) ;
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6 ;
}

static int conn_mode (void)
{
  worker *w = calloc(opt.clients, sizeof(worker)) ;
  long conns = 0, errors = 0, resumed = 0 ;
  size_t nlat = 0 ;
  double *lat, t0, secs, cpu0 ;
  char const *err = 0 ;
  if (!w) die("calloc") ;
  if (!opt.total && opt.duration <= 0) opt.duration = 5 ;
  remaining = opt.total ;
  cpu0 = cpu_seconds() ;
  t0 = now() ;
  deadline = t0 + opt.duration ;
  for (unsigned int i = 0 ; i < opt.clients ; i++)
    if ((errno = pthread_create(&w[i].t, 0, &work, &w[i]))) die("pthread_create") ;
  for (unsigned int i = 0 ; i < opt.clients ; i++) pthread_join(w[i].t, 0) ;
  secs = now() - t0 ;
  for (unsigned int i = 0 ; i < opt.clients ; i++)
  {
    conns += w[i].conns ; errors += w[i].errors ; resumed += w[i].resumed ; nlat += w[i].nlat ;
    if (w[i].err[0] && !err) err = w[i].err ;
  }
  lat = malloc((nlat + 1) * sizeof(double)) ;
  if (!lat) die("malloc") ;
  nlat = 0 ;
  for (unsigned int i = 0 ; i < opt.clients ; i++)
  {
    memcpy(lat + nlat, w[i].lat, w[i].nlat * sizeof(double)) ;
    nlat += w[i].nlat ;
  }
  qsort(lat, nlat, sizeof(double), &cmpd) ;
  printf("conns=%ld errors=%ld secs=%.3f rate=%.1f p50_ms=%.3f p99_ms=%.3f resumed=%ld proto=%s cipher=%s group=%s client_cpu_ms=%.4f\n",
    conns, errors, secs, conns / secs,
    nlat ? 1000 * lat[(nlat - 1) / 2] : -1, nlat ? 1000 * lat[(size_t)((nlat - 1) * 0.99)] : -1,
    resumed, w[0].proto[0] ? w[0].proto : "?", w[0].cipher[0] ? w[0].cipher : "?", w[0].group[0] ? w[0].group : "?",
    conns ? 1000 * (cpu_seconds() - cpu0) / conns : -1) ;
  if (err) fprintf(stderr, "loadgen: %ld errors, first: %s\n", errors, err) ;
  return conns ? 0 : 1 ;
}

static int bulk_mode (void)
{
  static char buf[65536] ;
  char err[256], line[64] ;
  unsigned long long want = opt.sendn ? opt.sendn : opt.getn, got = 0 ;
  double t0 = now(), secs ;
  SSL *ssl = 0 ;
  int fd = tcp_connect() ;
  if (fd == -1) die("connect") ;
  if (!opt.plain && !(ssl = tls_start(fd, 0, err, sizeof(err)))) { fprintf(stderr, "loadgen: %s\n", err) ; return 1 ; }
  if (opt.sendn)
  {
    unsigned long long left = want ;
    long n ;
    memset(buf, 'x', sizeof(buf)) ;
    if (!io_write(ssl, fd, "sink\n", 5)) die("write") ;
    while (left)
    {
      size_t k = left < sizeof(buf) ? left : sizeof(buf) ;
      if (!io_write(ssl, fd, buf, k)) die("write") ;
      left -= k ;
    }
    if (ssl) SSL_shutdown(ssl) ; else shutdown(fd, SHUT_WR) ;
    n = read_line(ssl, fd, line, sizeof(line) - 1) ;
    if (n <= 0) die("read the count") ;
    line[n] = 0 ;
    got = strtoull(line, 0, 10) ;
  }
  else
  {
    int n = snprintf(line, sizeof(line), "source %llu\n", want) ;
    if (!io_write(ssl, fd, line, n)) die("write") ;
    for (;;)
    {
      long r = io_read(ssl, fd, buf, sizeof(buf)) ;
      if (r < 0) die("read") ;
      if (!r) break ;
      got += r ;
    }
  }
  secs = now() - t0 ;
  if (ssl) { SSL_shutdown(ssl) ; SSL_free(ssl) ; }
  close(fd) ;
  if (got != want) { fprintf(stderr, "loadgen: bulk: %llu bytes arrived, %llu expected\n", got, want) ; return 1 ; }
  printf("bytes=%llu secs=%.3f mbps=%.1f\n", want, secs, want / secs / 1e6) ;
  return 0 ;
}

static int idle_mode (void)
{
  char err[256], c ;
  long n = opt.total ;
  SSL **ssls = calloc(n, sizeof(SSL *)) ;
  int *fds = calloc(n, sizeof(int)) ;
  if (!ssls || !fds) die("calloc") ;
  for (long i = 0 ; i < n ; i++)
  {
    fds[i] = tcp_connect() ;
    if (fds[i] == -1) die("connect") ;
    if (!opt.plain && !(ssls[i] = tls_start(fds[i], 0, err, sizeof(err)))) { fprintf(stderr, "loadgen: idle connection %ld: %s\n", i, err) ; return 1 ; }
  }
  printf("ready %ld\n", n) ;
  fflush(stdout) ;
  while (read(0, &c, 1) > 0) ;
  return 0 ;
}

int main (int argc, char **argv)
{
  char const *mode ;
  int o ;
  if (argc < 2) usage() ;
  mode = argv[1] ;
  signal(SIGPIPE, SIG_IGN) ;
  if (!strcmp(mode, "freeport"))
  {
    socklen_t len = sizeof(addr) ;
    int fd = socket(AF_INET, SOCK_STREAM, 0) ;
    addr.sin_family = AF_INET ;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK) ;
    if (fd == -1 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == -1 || getsockname(fd, (struct sockaddr *)&addr, &len) == -1) die("bind") ;
    printf("%u\n", ntohs(addr.sin_port)) ;
    return 0 ;
  }
  optind = 2 ;
  while ((o = getopt(argc, argv, "Pv:c:d:n:rxA:s:g:")) != -1)
  {
    switch (o)
    {
      case 'P' : opt.plain = 1 ; break ;
      case 'v' : opt.version = !strcmp(optarg, "1.2") ? TLS1_2_VERSION : !strcmp(optarg, "1.3") ? TLS1_3_VERSION : (usage(), 0) ; break ;
      case 'c' : opt.clients = strtoul(optarg, 0, 10) ; break ;
      case 'd' : opt.duration = strtod(optarg, 0) ; break ;
      case 'n' : opt.total = strtol(optarg, 0, 10) ; break ;
      case 'r' : opt.resume = 1 ; break ;
      case 'x' : opt.anyline = 1 ; break ;
      case 'A' : opt.cafile = optarg ; break ;
      case 's' : opt.sendn = strtoull(optarg, 0, 10) ; break ;
      case 'g' : opt.getn = strtoull(optarg, 0, 10) ; break ;
      default : usage() ;
    }
  }
  if (argc - optind != 2 || !opt.clients) usage() ;
  addr.sin_family = AF_INET ;
  addr.sin_port = htons(strtoul(argv[optind + 1], 0, 10)) ;
  if (inet_pton(AF_INET, argv[optind], &addr.sin_addr) != 1) usage() ;
  if (!opt.plain) make_ctx() ;
  if (!strcmp(mode, "conn")) return conn_mode() ;
  if (!strcmp(mode, "bulk")) { if (!opt.sendn == !opt.getn) usage() ; return bulk_mode() ; }
  if (!strcmp(mode, "idle")) { if (opt.total <= 0) usage() ; return idle_mode() ; }
  usage() ;
  return 100 ;
}
