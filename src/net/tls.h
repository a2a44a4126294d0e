/*
 * TLS 1.2/1.3 server engine over OpenSSL 3, driven with bytes: no sockets, no blocking calls.
 * The loop code reads ciphertext from the socket and feeds it in; the engine hands back the
 * decrypted application bytes and the bytes to write to the socket (handshake messages, alerts,
 * session tickets, encrypted application data).
 *
 * Policy: TLS 1.2 minimum; TLS 1.3 with OpenSSL's default suites; TLS 1.2 limited to ECDHE with
 * AEAD ciphers; no compression; no renegotiation; stateless session tickets (no server-side
 * session cache); record buffers released while a session is idle (SSL_MODE_RELEASE_BUFFERS)
 * and the engine's own buffers freed whenever they are empty, so an idle session holds only
 * OpenSSL's SSL object.
 *
 * Bounds: plaintext output never grows past the caller's plain_max and wire output never past
 * wire_max; ciphertext the caller fed that could not be processed yet (plain or wire output full)
 * is kept inside, at most TLS_SESSION_IN_MAX_BYTES (feeding more fails with LMQ_ELIMIT: stop
 * reading the socket while tls_session_buffered_bytes() is large); bytes OpenSSL produced that
 * did not fit in wire_max are kept inside, at most TLS_SESSION_OUT_MAX_BYTES, and come out on the
 * next call.
 *
 * Single-threaded: a server and its sessions are used on one thread (the loop thread). OpenSSL's
 * error queue is cleared before and after every call.
 */
#ifndef LMQ_TLS_H
#define LMQ_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/lmq.h"

/* Ciphertext held inside a session while it waits for room in plain or wire output. */
#define TLS_SESSION_IN_MAX_BYTES (256u * 1024u)
/* Output held inside a session when wire_max left no room for it (a handshake flight fits). */
#define TLS_SESSION_OUT_MAX_BYTES (64u * 1024u)
/* Longest subject CN returned by tls_session_peer_cn() (X.520 ub-common-name). */
#define TLS_CN_MAX_BYTES 64

struct tls_config {
    const char *cert_file;      /* PEM: the server certificate, then any intermediates */
    const char *key_file;       /* PEM: the private key of cert_file */
    const char *client_ca_file; /* PEM: CAs for client certificates; NULL: none requested */
    bool client_cert_required;  /* with client_ca_file: refuse clients without a valid one */
};

struct tls_server_stats {
    uint64_t handshakes_completed;
    uint64_t handshakes_failed; /* a session that failed before its handshake completed */
};

struct tls_server;
struct tls_session;

/* Loads cert, key and CA files into a new server. Returns 0, or LMQ_EINVAL (unreadable or bad
 * files, key not matching the certificate) or LMQ_ENOMEM with a one-line reason in err. */
int tls_server_new(const struct tls_config *cfg, struct tls_server **out, char *err,
                   size_t err_len) LMQ_WUR;
/* Re-reads the same paths. On success new sessions use the new files and open ones keep theirs;
 * on failure (same codes as tls_server_new) nothing changes and err says why. */
int tls_server_reload(struct tls_server *s, char *err, size_t err_len) LMQ_WUR;
/* Drops the caller's reference; the memory goes when the last session is freed too. */
void tls_server_free(struct tls_server *s);
/* Copies the handshake counters (sessions of this server, across reloads). */
void tls_server_get_stats(const struct tls_server *s, struct tls_server_stats *out);

/* Starts a server-side session in the handshake state. Returns 0 or LMQ_ENOMEM. */
int tls_session_new(struct tls_server *s, struct tls_session **out) LMQ_WUR;
/*
 * Feeds len bytes of ciphertext (len 0: only continue with what is buffered). Appends decrypted
 * application bytes to plain (never past plain_max; the rest waits inside for the next call) and
 * bytes for the peer to wire_out (never past wire_max). Returns 0; LMQ_EPROTO when the handshake
 * or a record fails, also for plain text or garbage sent to a TLS port, as soon as the first
 * bytes show it (wire_out may then hold an alert: send it, then close; every later feed fails
 * too); LMQ_ELIMIT when more than TLS_SESSION_IN_MAX_BYTES would wait inside (close);
 * LMQ_ENOMEM.
 */
int tls_session_feed(struct tls_session *t, const uint8_t *in, size_t len, struct lmq_buf *plain,
                     size_t plain_max, struct lmq_buf *wire_out, size_t wire_max) LMQ_WUR;
/* Encrypts all len bytes into wire_out, or nothing: LMQ_ELIMIT when the records might not fit
 * in wire_max (send, then retry), LMQ_EINVAL before the handshake completed or after a close
 * notify was sent, LMQ_EPROTO after a failure, LMQ_ENOMEM. */
int tls_session_write(struct tls_session *t, const uint8_t *data, size_t len,
                      struct lmq_buf *wire_out, size_t wire_max) LMQ_WUR;
/* Appends a close_notify alert to wire_out (once; later calls add nothing). Returns 0,
 * LMQ_EINVAL before the handshake completed, LMQ_EPROTO after a failure, LMQ_ENOMEM. */
int tls_session_close_notify(struct tls_session *t, struct lmq_buf *wire_out,
                             size_t wire_max) LMQ_WUR;
/* True once the handshake completed (and no failure since). */
bool tls_session_established(const struct tls_session *t);
/* True once the peer's close_notify arrived (our reply is then already in wire_out). */
bool tls_session_peer_closed(const struct tls_session *t);
/* Ciphertext and output the engine holds beyond the partial record OpenSSL buffers (at most
 * one record): what read backpressure watches. */
size_t tls_session_buffered_bytes(const struct tls_session *t);
/* Subject CN of a client certificate that passed verification (NUL-terminated, owned by the
 * session), or NULL: no certificate, no CN, a CN with a NUL or longer than TLS_CN_MAX_BYTES. */
const char *tls_session_peer_cn(const struct tls_session *t);
/* "TLSv1.2" or "TLSv1.3" once established, "" before (static string). */
const char *tls_session_version(const struct tls_session *t);
/* Why the session failed, for logs (OpenSSL's reason or the certificate verification result),
 * or "" (static string). */
const char *tls_session_error(const struct tls_session *t);
/* Frees the session (NULL is a no-op); drops its reference on the server. */
void tls_session_free(struct tls_session *t);

#endif
