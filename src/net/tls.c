#include "net/tls.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Largest plaintext in one TLS record (RFC 8446 5.1). */
#define TLS_RECORD_PLAIN_MAX_BYTES 16384u
/* Upper bound on what a record adds: 5 header + 8 explicit nonce (1.2 GCM) + 16 tag + 1 inner
 * content type (1.3) = 30; doubled so an estimate never falls short. */
#define TLS_RECORD_OVERHEAD_MAX_BYTES 64u
/* Room a write keeps for a record OpenSSL may send ahead of the data (a KeyUpdate reply). */
#define TLS_WRITE_SLACK_BYTES 1024u
/* Steps (handshake calls or record reads) in one feed; past it the rest waits for the next
 * feed, so one call can never spin. A step consumes at least a 5-byte header, so a full input
 * backlog needs fewer than this. */
#define TLS_FEED_STEPS_MAX (TLS_SESSION_IN_MAX_BYTES / 4u)
/* Certificates in a client chain, the client's own included. */
#define TLS_VERIFY_DEPTH_MAX 4
/* Tickets sent after a TLS 1.3 handshake: one is enough to resume, each costs an encryption. */
#define TLS_TICKETS_COUNT 1
/* Every TLS connection starts with a handshake record (content type 22). */
#define TLS_CONTENT_TYPE_HANDSHAKE 0x16
/* Resumption with client certificates requires a session id context. */
#define TLS_SESSION_ID_CONTEXT "ledgermq"
/* Forward secret AEAD suites for TLS 1.2 (Mozilla "intermediate" without finite-field DHE). */
#define TLS_CIPHERS_TLS12                                                                          \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct tls_server {
    SSL_CTX *ctx; /* the current one; open sessions hold references to older ones */
    char *cert_file;
    char *key_file;
    char *client_ca_file; /* NULL: no client certificates */
    bool client_cert_required;
    struct tls_server_stats stats;
    size_t refs; /* the owner's (until tls_server_free) + one per session */
    bool owner_freed;
};

struct tls_session {
    struct tls_server *server;
    SSL *ssl;
    /* Ciphertext fed earlier and not read by OpenSSL yet; in_off bytes of it are read. */
    struct lmq_buf in;
    size_t in_off;
    /* The input of the feed in progress, advanced as OpenSSL reads it. */
    const uint8_t *feed;
    size_t feed_len;
    /* The caller's wire output during a call, and its bound. */
    struct lmq_buf *sink;
    size_t sink_max;
    /* Output that did not fit in the sink; goes out first on the next call. */
    struct lmq_buf out;
    unsigned long err_code; /* OpenSSL's error, for tls_session_error() */
    const char *err_text;   /* or our own static reason */
    bool first_byte_seen;
    bool established;
    bool failed;
    bool out_overflow;
    bool peer_closed;
    bool close_sent;
    bool has_cn;
    char cn[TLS_CN_MAX_BYTES + 1];
};

/* ---------------------------------------------------------------- the BIO between SSL and us */

static pthread_once_t tls__bio_once = PTHREAD_ONCE_INIT;
static BIO_METHOD *tls__bio_method; /* created once, lives as long as the process */

static size_t tls__in_avail(const struct tls_session *t)
{
    return (t->in.len - t->in_off) + t->feed_len;
}

/* Serves the buffered input first, then the feed in progress; empty means "retry later". */
static int tls__bio_read(BIO *b, char *buf, size_t cap, size_t *read_bytes)
{
    struct tls_session *t = BIO_get_data(b);
    LMQ_ASSERT(t != NULL && buf != NULL && read_bytes != NULL);
    LMQ_ASSERT(t->in_off <= t->in.len);
    BIO_clear_retry_flags(b);
    size_t n = LMQ_MIN(cap, t->in.len - t->in_off);
    if (n > 0) {
        memcpy(buf, t->in.data + t->in_off, n);
        t->in_off += n;
    }
    size_t m = LMQ_MIN(cap - n, t->feed_len);
    if (m > 0) {
        memcpy(buf + n, t->feed, m);
        t->feed += m;
        t->feed_len -= m;
    }
    if (n + m == 0) {
        BIO_set_retry_read(b);
        return 0;
    }
    *read_bytes = n + m;
    return 1;
}

/* Straight into the caller's wire output when it has room and nothing is queued before it,
 * otherwise into the session's bounded overflow. Never "retry": SSL_write stays all-or-none. */
static int tls__bio_write(BIO *b, const char *data, size_t len, size_t *written)
{
    struct tls_session *t = BIO_get_data(b);
    LMQ_ASSERT(t != NULL && data != NULL && written != NULL);
    BIO_clear_retry_flags(b);
    int rc = LMQ_ELIMIT;
    if (t->out.len == 0 && t->sink != NULL && t->sink->len <= t->sink_max &&
        len <= t->sink_max - t->sink->len)
        rc = lmq_buf_append(t->sink, data, len, t->sink_max);
    if (rc != LMQ_OK)
        rc = lmq_buf_append(&t->out, data, len, TLS_SESSION_OUT_MAX_BYTES);
    if (rc != LMQ_OK) {
        t->out_overflow = true;
        return 0;
    }
    *written = len;
    return 1;
}

static long tls__bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    LMQ_UNUSED(num);
    LMQ_UNUSED(ptr);
    const struct tls_session *t = BIO_get_data(b);
    LMQ_ASSERT(t != NULL);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* nothing is held back: writes land in memory at once */
    case BIO_CTRL_PENDING:
        return (long)tls__in_avail(t);
    case BIO_CTRL_WPENDING:
        return (long)t->out.len;
    default:
        return 0;
    }
}

static void tls__bio_method_create(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "lmq_tls");
    if (m == NULL)
        return;
    if (BIO_meth_set_read_ex(m, tls__bio_read) != 1 ||
        BIO_meth_set_write_ex(m, tls__bio_write) != 1 || BIO_meth_set_ctrl(m, tls__bio_ctrl) != 1) {
        BIO_meth_free(m);
        return;
    }
    tls__bio_method = m;
}

/* ---------------------------------------------------------------- server */

/* "what path: OpenSSL's reason" into err, then clears the error queue. */
static void tls__ctx_error(char *err, size_t err_len, const char *what, const char *path)
{
    unsigned long code = ERR_peek_last_error();
    const char *reason = code != 0 ? ERR_reason_error_string(code) : NULL;
    if (err != NULL && err_len > 0)
        snprintf(err, err_len, "%s %s: %s", what, path != NULL ? path : "",
                 reason != NULL ? reason : "unknown error");
    ERR_clear_error();
}

static int tls__ctx_policy(SSL_CTX *ctx)
{
    LMQ_ASSERT(ctx != NULL);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        return LMQ_EINVAL;
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Stateless tickets resume sessions; a server-side cache would only cost memory. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_set_num_tickets(ctx, TLS_TICKETS_COUNT) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_TLS12) != 1 ||
        SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SESSION_ID_CONTEXT,
                                       sizeof(TLS_SESSION_ID_CONTEXT) - 1) != 1)
        return LMQ_EINVAL;
    return LMQ_OK;
}

static int tls__ctx_client_ca(const struct tls_server *s, SSL_CTX *ctx, char *err, size_t err_len)
{
    LMQ_ASSERT(s != NULL && ctx != NULL);
    LMQ_ASSERT(s->client_ca_file != NULL);
    if (SSL_CTX_load_verify_locations(ctx, s->client_ca_file, NULL) != 1) {
        tls__ctx_error(err, err_len, "client CA file", s->client_ca_file);
        return LMQ_EINVAL;
    }
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(s->client_ca_file);
    if (names == NULL) {
        tls__ctx_error(err, err_len, "client CA names", s->client_ca_file);
        return LMQ_EINVAL;
    }
    SSL_CTX_set_client_CA_list(ctx, names); /* takes ownership */
    int mode = SSL_VERIFY_PEER | (s->client_cert_required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    SSL_CTX_set_verify(ctx, mode, NULL);
    SSL_CTX_set_verify_depth(ctx, TLS_VERIFY_DEPTH_MAX);
    return LMQ_OK;
}

/* A fresh SSL_CTX from the server's paths, or an error in err and nothing allocated. */
static int tls__ctx_build(const struct tls_server *s, SSL_CTX **out, char *err, size_t err_len)
{
    LMQ_ASSERT(s != NULL && out != NULL);
    LMQ_ASSERT(s->cert_file != NULL && s->key_file != NULL);
    ERR_clear_error();
    int rc = LMQ_ENOMEM;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        tls__ctx_error(err, err_len, "SSL_CTX_new", "");
        goto out;
    }
    rc = tls__ctx_policy(ctx);
    if (rc != LMQ_OK) {
        tls__ctx_error(err, err_len, "TLS policy", "");
        goto out;
    }
    rc = LMQ_EINVAL;
    if (SSL_CTX_use_certificate_chain_file(ctx, s->cert_file) != 1) {
        tls__ctx_error(err, err_len, "certificate file", s->cert_file);
        goto out;
    }
    /* Fails with "key values mismatch" when the key is not the certificate's. */
    if (SSL_CTX_use_PrivateKey_file(ctx, s->key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        tls__ctx_error(err, err_len, "key file", s->key_file);
        goto out;
    }
    if (s->client_ca_file != NULL) {
        rc = tls__ctx_client_ca(s, ctx, err, err_len);
        if (rc != LMQ_OK)
            goto out;
    }
    *out = ctx;
    ctx = NULL;
    rc = LMQ_OK;
out:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

static void tls__server_unref(struct tls_server *s)
{
    LMQ_ASSERT(s != NULL && s->refs > 0);
    s->refs--;
    if (s->refs > 0)
        return;
    LMQ_ASSERT(s->owner_freed);
    SSL_CTX_free(s->ctx);
    free(s->cert_file);
    free(s->key_file);
    free(s->client_ca_file);
    free(s);
}

int tls_server_new(const struct tls_config *cfg, struct tls_server **out, char *err, size_t err_len)
{
    LMQ_ASSERT(cfg != NULL && out != NULL);
    LMQ_ASSERT(err != NULL || err_len == 0);
    if (err_len > 0)
        err[0] = '\0';
    if (cfg->cert_file == NULL || cfg->key_file == NULL) {
        if (err_len > 0)
            snprintf(err, err_len, "cert_file and key_file are required");
        return LMQ_EINVAL;
    }
    int rc = LMQ_ENOMEM;
    struct tls_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto fail;
    s->refs = 1;
    s->client_cert_required = cfg->client_cert_required;
    s->cert_file = strdup(cfg->cert_file);
    s->key_file = strdup(cfg->key_file);
    if (cfg->client_ca_file != NULL)
        s->client_ca_file = strdup(cfg->client_ca_file);
    if (s->cert_file == NULL || s->key_file == NULL ||
        (cfg->client_ca_file != NULL && s->client_ca_file == NULL))
        goto fail;
    rc = tls__ctx_build(s, &s->ctx, err, err_len);
    if (rc != LMQ_OK)
        goto fail;
    *out = s;
    return LMQ_OK;
fail:
    if (rc == LMQ_ENOMEM && err_len > 0 && err[0] == '\0')
        snprintf(err, err_len, "out of memory");
    if (s != NULL) {
        s->owner_freed = true;
        tls__server_unref(s);
    }
    return rc;
}

int tls_server_reload(struct tls_server *s, char *err, size_t err_len)
{
    LMQ_ASSERT(s != NULL && !s->owner_freed);
    LMQ_ASSERT(s->ctx != NULL);
    if (err_len > 0)
        err[0] = '\0';
    SSL_CTX *ctx = NULL;
    int rc = tls__ctx_build(s, &ctx, err, err_len);
    if (rc != LMQ_OK)
        return rc;
    /* Open sessions hold their own references to the old context (SSL_new up-refs it). */
    SSL_CTX_free(s->ctx);
    s->ctx = ctx;
    return LMQ_OK;
}

void tls_server_free(struct tls_server *s)
{
    if (s == NULL)
        return;
    LMQ_ASSERT(!s->owner_freed);
    s->owner_freed = true;
    tls__server_unref(s);
}

void tls_server_get_stats(const struct tls_server *s, struct tls_server_stats *out)
{
    LMQ_ASSERT(s != NULL && out != NULL);
    *out = s->stats;
}

/* ---------------------------------------------------------------- session */

int tls_session_new(struct tls_server *s, struct tls_session **out)
{
    LMQ_ASSERT(s != NULL && out != NULL);
    LMQ_ASSERT(!s->owner_freed && s->ctx != NULL);
    pthread_once(&tls__bio_once, tls__bio_method_create);
    if (tls__bio_method == NULL)
        return LMQ_ENOMEM;
    ERR_clear_error();
    struct tls_session *t = calloc(1, sizeof(*t));
    BIO *bio = BIO_new(tls__bio_method);
    SSL *ssl = SSL_new(s->ctx);
    if (t == NULL || bio == NULL || ssl == NULL) {
        SSL_free(ssl);
        BIO_free(bio);
        free(t);
        ERR_clear_error();
        return LMQ_ENOMEM;
    }
    BIO_set_data(bio, t);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl, bio, bio); /* one reference, owned by ssl from here */
    SSL_set_accept_state(ssl);
    t->ssl = ssl;
    t->server = s;
    s->refs++;
    *out = t;
    return LMQ_OK;
}

void tls_session_free(struct tls_session *t)
{
    if (t == NULL)
        return;
    LMQ_ASSERT(t->server != NULL && t->ssl != NULL);
    LMQ_ASSERT(t->sink == NULL); /* not from inside one of our own calls */
    SSL_free(t->ssl);
    ERR_clear_error();
    lmq_buf_release(&t->in);
    lmq_buf_release(&t->out);
    tls__server_unref(t->server);
    free(t);
}

/* Moves queued output into the sink as far as it has room; frees the queue once empty. */
static void tls__flush_out(struct tls_session *t)
{
    LMQ_ASSERT(t != NULL && t->sink != NULL);
    if (t->out.len == 0 || t->sink->len >= t->sink_max)
        return;
    size_t n = LMQ_MIN(t->out.len, t->sink_max - t->sink->len);
    if (lmq_buf_append(t->sink, t->out.data, n, t->sink_max) != LMQ_OK)
        return; /* out of memory: the bytes stay queued for the next call */
    lmq_buf_consume(&t->out, n);
    if (t->out.len == 0)
        lmq_buf_release(&t->out);
    LMQ_ASSERT(t->sink->len <= t->sink_max);
}

static void tls__call_begin(struct tls_session *t, struct lmq_buf *wire_out, size_t wire_max)
{
    LMQ_ASSERT(t != NULL && wire_out != NULL && wire_out->len <= wire_max);
    LMQ_ASSERT(t->sink == NULL && t->feed_len == 0);
    ERR_clear_error();
    t->sink = wire_out;
    t->sink_max = wire_max;
    tls__flush_out(t);
}

static void tls__call_end(struct tls_session *t)
{
    LMQ_ASSERT(t != NULL && t->sink != NULL);
    LMQ_ASSERT(t->feed_len == 0);
    tls__flush_out(t);
    t->sink = NULL;
    t->sink_max = 0;
    ERR_clear_error();
}

/* Records why the session failed (once) and counts a failed handshake. */
static int tls__fail(struct tls_session *t, int ssl_error, const char *text)
{
    LMQ_ASSERT(t != NULL && t->server != NULL);
    if (t->failed)
        return LMQ_EPROTO;
    t->failed = true;
    t->err_text = text;
    if (text == NULL) {
        t->err_code = ERR_peek_last_error();
        long verify = SSL_get_verify_result(t->ssl);
        if (ERR_GET_REASON(t->err_code) == SSL_R_CERTIFICATE_VERIFY_FAILED && verify != X509_V_OK)
            t->err_text = X509_verify_cert_error_string(verify);
        else if (t->err_code == 0 && t->out_overflow)
            t->err_text = "output over TLS_SESSION_OUT_MAX_BYTES";
        else if (t->err_code == 0 && ssl_error == SSL_ERROR_SYSCALL)
            t->err_text = "unexpected end of TLS input";
    }
    if (!t->established)
        t->server->stats.handshakes_failed++;
    return t->out_overflow ? LMQ_ELIMIT : LMQ_EPROTO;
}

/* The client certificate's single subject CN, when verification passed and the CN is text. */
static void tls__take_peer_cn(struct tls_session *t)
{
    LMQ_ASSERT(t != NULL && t->established);
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
    if (peer == NULL || SSL_get_verify_result(t->ssl) != X509_V_OK)
        return;
    const X509_NAME *name = X509_get_subject_name(peer);
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    /* Two CNs would make "who is this" ambiguous: no name rather than a guess. */
    if (idx < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0)
        return;
    const ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    if (n > 0 && (size_t)n <= TLS_CN_MAX_BYTES && memchr(utf8, 0, (size_t)n) == NULL) {
        memcpy(t->cn, utf8, (size_t)n);
        t->cn[n] = '\0';
        t->has_cn = true;
    }
    OPENSSL_free(utf8);
    LMQ_ASSERT(!t->has_cn || strlen(t->cn) == (size_t)n);
}

/* One handshake step or one read into plain. 1: progress, go on; 0: wait for more; <0: error. */
static int tls__feed_step(struct tls_session *t, struct lmq_buf *plain, size_t plain_max)
{
    LMQ_ASSERT(plain->len <= plain_max);
    int r;
    if (!t->established) {
        r = SSL_do_handshake(t->ssl);
        if (r == 1) {
            t->established = true;
            t->server->stats.handshakes_completed++;
            tls__take_peer_cn(t);
            return 1;
        }
    } else {
        size_t want = LMQ_MIN(plain_max - plain->len, TLS_RECORD_PLAIN_MAX_BYTES);
        if (want == 0)
            return 0; /* plain is full: the rest stays buffered */
        int rc = lmq_buf_reserve(plain, want, plain_max);
        if (rc != LMQ_OK)
            return rc;
        size_t got = 0;
        r = SSL_read_ex(t->ssl, plain->data + plain->len, want, &got);
        if (r == 1) {
            LMQ_ASSERT(got > 0 && got <= want);
            plain->len += got;
            return 1;
        }
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    if (e == SSL_ERROR_ZERO_RETURN) {
        /* close_notify: answer with ours, as RFC 8446 6.1 asks. */
        t->peer_closed = true;
        t->close_sent = true;
        (void)SSL_shutdown(t->ssl);
        return 0;
    }
    return tls__fail(t, e, NULL);
}

/* Keeps the unread rest of this feed for the next call, compacting what was read before. */
static int tls__keep_leftover(struct tls_session *t)
{
    LMQ_ASSERT(t->in_off <= t->in.len);
    if (t->in_off == t->in.len)
        lmq_buf_release(&t->in);
    else
        lmq_buf_consume(&t->in, t->in_off);
    t->in_off = 0;
    int rc = LMQ_OK;
    if (t->feed_len > 0 && !t->failed) {
        rc = lmq_buf_append(&t->in, t->feed, t->feed_len, TLS_SESSION_IN_MAX_BYTES);
        if (rc == LMQ_ELIMIT) {
            /* Bytes are lost: the stream cannot continue. */
            (void)tls__fail(t, 0, "input over TLS_SESSION_IN_MAX_BYTES");
        }
    }
    t->feed = NULL;
    t->feed_len = 0;
    LMQ_ASSERT(t->in.len <= TLS_SESSION_IN_MAX_BYTES);
    return rc;
}

int tls_session_feed(struct tls_session *t, const uint8_t *in, size_t len, struct lmq_buf *plain,
                     size_t plain_max, struct lmq_buf *wire_out, size_t wire_max)
{
    LMQ_ASSERT(t != NULL && plain != NULL && wire_out != NULL && (in != NULL || len == 0));
    LMQ_ASSERT(plain->len <= plain_max && wire_out->len <= wire_max);
    if (t->failed)
        return LMQ_EPROTO;
    if (len > 0 && !t->first_byte_seen) {
        /* Plain text (MQTT CONNECT 0x10, "GET ...") shows at the first byte: refuse it now
         * rather than wait for a 5-byte record header. This also refuses SSLv2-format hellos. */
        t->first_byte_seen = true;
        if (in[0] != TLS_CONTENT_TYPE_HANDSHAKE)
            return tls__fail(t, 0, "not a TLS handshake (plain text on a TLS port?)");
    }
    tls__call_begin(t, wire_out, wire_max);
    t->feed = in;
    t->feed_len = len;
    int rc = LMQ_OK;
    for (size_t step = 0; step < TLS_FEED_STEPS_MAX; step++) {
        /* Output not yet taken: stop reading until the caller makes room (backpressure). */
        if (t->out.len > 0 || t->peer_closed)
            break;
        int r = tls__feed_step(t, plain, plain_max);
        if (r <= 0) {
            rc = r;
            break;
        }
        tls__flush_out(t);
    }
    int keep = tls__keep_leftover(t);
    tls__call_end(t);
    LMQ_ASSERT(plain->len <= plain_max && wire_out->len <= wire_max);
    return rc != LMQ_OK ? rc : keep;
}

int tls_session_write(struct tls_session *t, const uint8_t *data, size_t len,
                      struct lmq_buf *wire_out, size_t wire_max)
{
    LMQ_ASSERT(t != NULL && wire_out != NULL && (data != NULL || len == 0));
    LMQ_ASSERT(wire_out->len <= wire_max);
    if (t->failed)
        return LMQ_EPROTO;
    if (!t->established || t->close_sent)
        return LMQ_EINVAL;
    if (len == 0)
        return LMQ_OK;
    /* All or nothing: refuse up front what might not fit, so SSL_write never stops halfway. */
    size_t records = len / TLS_RECORD_PLAIN_MAX_BYTES + 1;
    size_t room = wire_max - wire_out->len;
    if (len > room || records > (room - len) / TLS_RECORD_OVERHEAD_MAX_BYTES ||
        t->out.len + TLS_WRITE_SLACK_BYTES > room - len - records * TLS_RECORD_OVERHEAD_MAX_BYTES)
        return LMQ_ELIMIT;
    tls__call_begin(t, wire_out, wire_max);
    size_t written = 0;
    int rc = LMQ_OK;
    int r = SSL_write_ex(t->ssl, data, len, &written);
    if (r != 1)
        rc = tls__fail(t, SSL_get_error(t->ssl, r), NULL);
    else
        LMQ_ASSERT(written == len);
    tls__call_end(t);
    return rc;
}

int tls_session_close_notify(struct tls_session *t, struct lmq_buf *wire_out, size_t wire_max)
{
    LMQ_ASSERT(t != NULL && wire_out != NULL);
    LMQ_ASSERT(wire_out->len <= wire_max);
    if (t->failed)
        return LMQ_EPROTO;
    if (!t->established)
        return LMQ_EINVAL;
    if (t->close_sent)
        return LMQ_OK;
    tls__call_begin(t, wire_out, wire_max);
    t->close_sent = true;
    int rc = LMQ_OK;
    int r = SSL_shutdown(t->ssl); /* 0: ours sent, theirs not yet seen; 1: both */
    if (r < 0)
        rc = tls__fail(t, SSL_get_error(t->ssl, r), NULL);
    tls__call_end(t);
    return rc;
}

bool tls_session_established(const struct tls_session *t)
{
    LMQ_ASSERT(t != NULL);
    return t->established && !t->failed;
}

bool tls_session_peer_closed(const struct tls_session *t)
{
    LMQ_ASSERT(t != NULL);
    return t->peer_closed;
}

size_t tls_session_buffered_bytes(const struct tls_session *t)
{
    LMQ_ASSERT(t != NULL);
    return tls__in_avail(t) + t->out.len;
}

const char *tls_session_peer_cn(const struct tls_session *t)
{
    LMQ_ASSERT(t != NULL);
    return t->has_cn && !t->failed ? t->cn : NULL;
}

const char *tls_session_version(const struct tls_session *t)
{
    LMQ_ASSERT(t != NULL && t->ssl != NULL);
    return t->established ? SSL_get_version(t->ssl) : "";
}

const char *tls_session_error(const struct tls_session *t)
{
    LMQ_ASSERT(t != NULL);
    if (t->err_text != NULL)
        return t->err_text;
    const char *reason = t->err_code != 0 ? ERR_reason_error_string(t->err_code) : NULL;
    return reason != NULL ? reason : "";
}
