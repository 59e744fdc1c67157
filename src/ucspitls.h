/* ISC license. */
#ifndef UCSPITLS_H
#define UCSPITLS_H

#include <skalibs/stralloc.h>

/*
 * The UCSPI-TLS control channel, ucspi-ssl's deferred-TLS protocol. The
 * application writes one byte on the control socket: 'y' starts TLS, 'Y'
 * starts TLS and asks for the SSL_* block "NAME=value\0...NAME=value\0\0"
 * in return.
 */

#define UCSPITLS_GOT 1
#define UCSPITLS_EOF 0
#define UCSPITLS_TIMEOUT (-1)
#define UCSPITLS_ERROR (-2)

/* Waits for the command byte on ctl while the application talks in clear
   on sock. The wait ends after idlesecs (0 = never) without any byte going
   either way on sock, as far as the kernel's TCP counters tell; on a socket
   that is not TCP, after idlesecs in all. */
extern int ucspitls_wait_command (int ctl, int sock, unsigned int idlesecs, char *cmd) ;

/* Sends the block (entries as built by tlsenv_*, without the final NUL) and
   shuts the socket down: readers that stop at "\0\0" and readers that read
   to EOF both finish. Returns 1, or 0 with errno. */
extern int ucspitls_send_block (int ctl, char const *entries, size_t len) ;

/* Reads one block from fd into sa (appended, final NUL included): 1 when
   complete, 0 on EOF before the end of a block, -1 on a read error,
   UCSPITLS_BADBLOCK when it is larger than UCSPITLS_BLOCK_MAX or holds an
   entry that is not SSL_NAME=value. A lone "\0" is the empty block. The
   application process believes nothing else of the engine: a compromised
   engine must not set LD_PRELOAD, RELAYCLIENT or SSLREMOTEIP. */
#define UCSPITLS_BLOCK_MAX (1 << 20)
#define UCSPITLS_BADBLOCK (-2)
extern int ucspitls_read_block (int fd, stralloc *sa) ;

#endif
