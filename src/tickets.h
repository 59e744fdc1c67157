/* ISC license. */
#ifndef TICKETS_H
#define TICKETS_H

#include <stddef.h>
#include <openssl/ssl.h>

/*
 * Session-ticket keys. By default they are made and held by sslserver's
 * main process: every engine is forked from it and inherits them, so a
 * ticket issued by one connection's engine is accepted by its siblings.
 * tickets_rotate makes a new current key and keeps the previous one for
 * decryption only (tickets it opens are renewed); call it on a schedule
 * and on SIGHUP.
 *
 * With TICKETKEYFILE (a fleet sharing its keys), tickets_load takes them
 * from the file instead: one key per line, the base64 of 80 bytes (16-byte
 * name, 32-byte HMAC key, 32-byte AES-256 key); the first line encrypts,
 * every line decrypts (tickets opened by another line are renewed under
 * the first). Rotation is then the file's business: tickets_rotate does
 * nothing once a file was loaded.
 */
#define TICKETS_ROTATE_SECS 3600
#define TICKETS_FILE_MAX 64   /* keys in TICKETKEYFILE */

extern int tickets_rotate (void) ;

/* Reads file; on success its keys replace the ones held (which are wiped)
   and 1 is returned. On failure the keys held are kept, and err says why
   in one line ("TICKETKEYFILE FILE: line N: ..."). */
extern int tickets_load (char const *file, char *err, size_t errlen) ;

extern int tickets_attach (SSL_CTX *) ;

#endif
