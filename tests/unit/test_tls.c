/*
 * TLS engine through net/tls.h: a real OpenSSL client (SSL over memory BIOs) talks to a
 * tls_session, the test pumping bytes both ways. Certificates are generated here with OpenSSL's
 * API into a temporary directory: a CA, a server (SAN IP:127.0.0.1, DNS:localhost), a second
 * server, a client "alice" signed by the CA and a self-signed "mallory".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/buf.h"
#include "core/lmq.h"
#include "net/tls.h"

#define PATH_MAX_BYTES 512
#define ERR_MAX_BYTES 256
#define PUMP_ROUNDS_MAX 1000
#define CHUNK_BYTES 8192
#define PLAIN_MAX_BYTES (4u * 1024u * 1024u)
#define WIRE_MAX_BYTES (64u * 1024u)
#define BIG_BYTES (1024u * 1024u)
#define PIECE_BYTES 10000u
#define CERT_DAYS 1

/* ---------------------------------------------------------------- certificates */

static char g_dir[PATH_MAX_BYTES];

static void path_of(char *out, const char *name)
{
    int n = snprintf(out, PATH_MAX_BYTES, "%s/%s", g_dir, name);
    assert_true(n > 0 && n < PATH_MAX_BYTES);
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for key with subject CN=cn, signed by issuer (NULL: self-signed). kind is
 * "ca", "server" or "client". */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
                       const char *kind, long serial)
{
    X509 *cert = X509_new();
    assert_non_null(cert);
    assert_int_equal(X509_set_version(cert, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(cert), serial), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(cert), -60));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(cert), 60L * 60 * 24 * CERT_DAYS));
    X509_NAME *name = X509_get_subject_name(cert);
    assert_int_equal(
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0),
        1);
    assert_int_equal(
        X509_set_issuer_name(cert, issuer != NULL ? X509_get_subject_name(issuer) : name), 1);
    assert_int_equal(X509_set_pubkey(cert, key), 1);
    X509 *ext_issuer = issuer != NULL ? issuer : cert;
    if (strcmp(kind, "ca") == 0) {
        add_ext(cert, ext_issuer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(cert, ext_issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(cert, ext_issuer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(cert, ext_issuer, NID_key_usage, "critical,digitalSignature");
    }
    if (strcmp(kind, "server") == 0) {
        add_ext(cert, ext_issuer, NID_ext_key_usage, "serverAuth");
        add_ext(cert, ext_issuer, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    } else if (strcmp(kind, "client") == 0) {
        add_ext(cert, ext_issuer, NID_ext_key_usage, "clientAuth");
    }
    assert_true(X509_sign(cert, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
    return cert;
}

static void write_pair(const char *base, X509 *cert, EVP_PKEY *key)
{
    char path[PATH_MAX_BYTES + 8];
    snprintf(path, sizeof(path), "%s/%s.pem", g_dir, base);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, cert), 1);
    assert_int_equal(fclose(f), 0);
    snprintf(path, sizeof(path), "%s/%s.key", g_dir, base);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(f), 0);
}

static void copy_file(const char *from_name, const char *to_name)
{
    char from[PATH_MAX_BYTES], to[PATH_MAX_BYTES];
    path_of(from, from_name);
    path_of(to, to_name);
    FILE *in = fopen(from, "rb");
    FILE *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[CHUNK_BYTES];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* live.pem/live.key are what the servers load; tests copy a pair over them to reload. */
static void set_live(const char *pem, const char *key)
{
    copy_file(pem, "live.pem");
    copy_file(key, "live.key");
}

static const char *const g_files[] = {"ca.pem",      "ca.key",      "server.pem", "server.key",
                                      "server2.pem", "server2.key", "client.pem", "client.key",
                                      "rogue.pem",   "rogue.key",   "live.pem",   "live.key"};

static int group_setup(void **state)
{
    LMQ_UNUSED(state);
    snprintf(g_dir, sizeof(g_dir), "%s/lmq-tls-XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    EVP_PKEY *ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *srv_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *srv2_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *cli_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *rogue_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!ca_key || !srv_key || !srv2_key || !cli_key || !rogue_key)
        return -1;
    X509 *ca = make_cert(ca_key, "LedgerMQ test CA", NULL, NULL, "ca", 1);
    X509 *srv = make_cert(srv_key, "server1", ca, ca_key, "server", 2);
    X509 *srv2 = make_cert(srv2_key, "server2", ca, ca_key, "server", 3);
    X509 *cli = make_cert(cli_key, "alice", ca, ca_key, "client", 4);
    X509 *rogue = make_cert(rogue_key, "mallory", NULL, NULL, "client", 5);
    write_pair("ca", ca, ca_key);
    write_pair("server", srv, srv_key);
    write_pair("server2", srv2, srv2_key);
    write_pair("client", cli, cli_key);
    write_pair("rogue", rogue, rogue_key);
    X509 *certs[] = {ca, srv, srv2, cli, rogue};
    EVP_PKEY *keys[] = {ca_key, srv_key, srv2_key, cli_key, rogue_key};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(certs); i++) {
        X509_free(certs[i]);
        EVP_PKEY_free(keys[i]);
    }
    set_live("server.pem", "server.key");
    return 0;
}

static int group_teardown(void **state)
{
    LMQ_UNUSED(state);
    char path[PATH_MAX_BYTES];
    for (size_t i = 0; i < LMQ_ARRAY_LEN(g_files); i++) {
        path_of(path, g_files[i]);
        unlink(path);
    }
    return rmdir(g_dir);
}

/* ---------------------------------------------------------------- server and client */

enum ca_mode { CA_NONE, CA_OPTIONAL, CA_REQUIRED };

static struct tls_server *server_new(enum ca_mode mode)
{
    char cert[PATH_MAX_BYTES], key[PATH_MAX_BYTES], ca[PATH_MAX_BYTES], err[ERR_MAX_BYTES];
    path_of(cert, "live.pem");
    path_of(key, "live.key");
    path_of(ca, "ca.pem");
    struct tls_config cfg = {.cert_file = cert,
                             .key_file = key,
                             .client_ca_file = mode == CA_NONE ? NULL : ca,
                             .client_cert_required = mode == CA_REQUIRED};
    struct tls_server *s = NULL;
    int rc = tls_server_new(&cfg, &s, err, sizeof(err));
    if (rc != LMQ_OK)
        fail_msg("tls_server_new: %s", err);
    assert_non_null(s);
    return s;
}

/* One client SSL over memory BIOs against one tls_session, with the server side's buffers. */
struct conn {
    SSL_CTX *cctx;
    SSL *ssl;
    BIO *to_client;   /* server's output, read by the client */
    BIO *from_client; /* client's output, fed to the server */
    struct tls_session *t;
    struct lmq_buf plain; /* what the server decrypted */
    struct lmq_buf wire;  /* what the server sends */
    size_t plain_max;
    size_t wire_max;
    int feed_rc;       /* first failing feed, or 0 */
    int client_fail;   /* SSL_get_error of a failed client handshake, or 0 */
    int client_reason; /* its OpenSSL reason (the engine clears the thread's error queue) */
    bool client_done;  /* the client's handshake completed */
};

/* client_pair: "client", "rogue" or NULL; max_version 0 for the default. */
static void conn_open(struct conn *c, struct tls_server *s, const char *client_pair,
                      int max_version)
{
    memset(c, 0, sizeof(*c));
    c->plain_max = PLAIN_MAX_BYTES;
    c->wire_max = WIRE_MAX_BYTES;
    c->cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(c->cctx);
    char path[PATH_MAX_BYTES];
    path_of(path, "ca.pem");
    assert_int_equal(SSL_CTX_load_verify_locations(c->cctx, path, NULL), 1);
    SSL_CTX_set_verify(c->cctx, SSL_VERIFY_PEER, NULL);
    if (max_version != 0) {
        assert_int_equal(SSL_CTX_set_max_proto_version(c->cctx, max_version), 1);
        if (max_version < TLS1_2_VERSION) {
            /* OpenSSL 3 refuses TLS 1.1 at security level 1; the test client must offer it. */
            assert_int_equal(SSL_CTX_set_min_proto_version(c->cctx, TLS1_VERSION), 1);
            assert_int_equal(SSL_CTX_set_cipher_list(c->cctx, "DEFAULT:@SECLEVEL=0"), 1);
        }
    }
    if (client_pair != NULL) {
        char pem[PATH_MAX_BYTES + 8], key[PATH_MAX_BYTES + 8];
        snprintf(pem, sizeof(pem), "%s/%s.pem", g_dir, client_pair);
        snprintf(key, sizeof(key), "%s/%s.key", g_dir, client_pair);
        assert_int_equal(SSL_CTX_use_certificate_file(c->cctx, pem, SSL_FILETYPE_PEM), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(c->cctx, key, SSL_FILETYPE_PEM), 1);
    }
    c->ssl = SSL_new(c->cctx);
    assert_non_null(c->ssl);
    assert_int_equal(SSL_set1_host(c->ssl, "localhost"), 1);
    c->to_client = BIO_new(BIO_s_mem());
    c->from_client = BIO_new(BIO_s_mem());
    assert_non_null(c->to_client);
    assert_non_null(c->from_client);
    SSL_set_bio(c->ssl, c->to_client, c->from_client);
    SSL_set_connect_state(c->ssl);
    assert_int_equal(tls_session_new(s, &c->t), LMQ_OK);
}

static void conn_close(struct conn *c)
{
    tls_session_free(c->t);
    SSL_free(c->ssl);
    SSL_CTX_free(c->cctx);
    lmq_buf_release(&c->plain);
    lmq_buf_release(&c->wire);
    ERR_clear_error();
}

static int feed(struct conn *c, const void *data, size_t len)
{
    int rc = tls_session_feed(c->t, data, len, &c->plain, c->plain_max, &c->wire, c->wire_max);
    assert_true(c->plain.len <= c->plain_max);
    assert_true(c->wire.len <= c->wire_max);
    return rc;
}

/* Moves bytes both ways (driving the client's handshake) until neither side has any to move or
 * the server fails. */
static void pump(struct conn *c)
{
    for (int round = 0; round < PUMP_ROUNDS_MAX; round++) {
        if (!c->client_done && c->client_fail == 0) {
            int r = SSL_do_handshake(c->ssl);
            if (r == 1)
                c->client_done = true;
            else if (SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ) {
                c->client_fail = SSL_get_error(c->ssl, r);
                c->client_reason = ERR_GET_REASON(ERR_peek_last_error());
            }
        }
        bool moved = false;
        uint8_t buf[CHUNK_BYTES];
        int n;
        while (c->feed_rc == 0 && (n = BIO_read(c->from_client, buf, sizeof(buf))) > 0) {
            c->feed_rc = feed(c, buf, (size_t)n);
            moved = true;
        }
        if (c->wire.len > 0) {
            assert_int_equal(BIO_write(c->to_client, c->wire.data, (int)c->wire.len),
                             (int)c->wire.len);
            lmq_buf_consume(&c->wire, c->wire.len);
            moved = true;
        }
        if (!moved && c->feed_rc == 0 && tls_session_buffered_bytes(c->t) > 0) {
            /* Output waited inside for room in wire: drain it. */
            c->feed_rc = feed(c, NULL, 0);
            moved = c->wire.len > 0; /* plain may be what is full */
        }
        if (!moved)
            return;
    }
    fail_msg("pump did not settle in %d rounds", PUMP_ROUNDS_MAX);
}

/* Handshake with a client; returns 0 or the server's feed error. */
static int handshake(struct conn *c)
{
    pump(c);
    return c->feed_rc;
}

static void assert_established(struct conn *c)
{
    assert_int_equal(handshake(c), LMQ_OK);
    assert_true(c->client_done);
    assert_int_equal(c->client_fail, 0);
    assert_true(tls_session_established(c->t));
    assert_string_equal(tls_session_error(c->t), "");
}

/* Reads everything the client can decrypt now, appending to out (bounded by max). */
static void client_read(struct conn *c, struct lmq_buf *out, size_t max)
{
    for (int i = 0; i < PUMP_ROUNDS_MAX * 100; i++) {
        assert_int_equal(lmq_buf_reserve(out, CHUNK_BYTES, max + CHUNK_BYTES), LMQ_OK);
        size_t got = 0;
        if (SSL_read_ex(c->ssl, out->data + out->len, CHUNK_BYTES, &got) != 1) {
            assert_int_equal(SSL_get_error(c->ssl, 0), SSL_ERROR_WANT_READ);
            return;
        }
        out->len += got;
    }
    fail_msg("client_read did not finish");
}

static void client_write(struct conn *c, const void *data, size_t len)
{
    size_t written = 0;
    assert_int_equal(SSL_write_ex(c->ssl, data, len, &written), 1);
    assert_int_equal(written, len);
}

static X509_NAME *served_subject(struct conn *c)
{
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    assert_non_null(peer);
    return X509_get_subject_name(peer);
}

static void assert_served_cn(struct conn *c, const char *cn)
{
    char buf[TLS_CN_MAX_BYTES + 1];
    assert_true(
        X509_NAME_get_text_by_NID(served_subject(c), NID_commonName, buf, (int)sizeof(buf)) > 0);
    assert_string_equal(buf, cn);
}

static uint64_t stat_failed(struct tls_server *s)
{
    struct tls_server_stats st;
    tls_server_get_stats(s, &st);
    return st.handshakes_failed;
}

static uint64_t stat_completed(struct tls_server *s)
{
    struct tls_server_stats st;
    tls_server_get_stats(s, &st);
    return st.handshakes_completed;
}

static uint8_t pattern_byte(size_t i)
{
    return (uint8_t)((i * 31u + (i >> 9)) & 0xffu);
}

/* ---------------------------------------------------------------- handshakes */

static void test_handshake_tls13_by_default_and_server_name_verifies(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_NONE);
    struct conn c;
    conn_open(&c, s, NULL, 0);
    assert_false(tls_session_established(c.t));
    assert_string_equal(tls_session_version(c.t), "");
    assert_established(&c);
    assert_string_equal(tls_session_version(c.t), "TLSv1.3");
    assert_int_equal(SSL_get_verify_result(c.ssl), X509_V_OK); /* SAN DNS:localhost matched */
    assert_served_cn(&c, "server1");
    assert_null(tls_session_peer_cn(c.t));
    assert_int_equal(stat_completed(s), 1);
    assert_int_equal(stat_failed(s), 0);
    /* Idle after the handshake: nothing held inside the engine. */
    assert_int_equal(tls_session_buffered_bytes(c.t), 0);
    conn_close(&c);
    tls_server_free(s);
}

static void test_handshake_tls12_when_client_caps_at_12_uses_ecdhe_aead(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_NONE);
    struct conn c;
    conn_open(&c, s, NULL, TLS1_2_VERSION);
    assert_established(&c);
    assert_string_equal(tls_session_version(c.t), "TLSv1.2");
    const char *cipher = SSL_get_cipher_name(c.ssl);
    assert_non_null(strstr(cipher, "ECDHE"));
    assert_true(strstr(cipher, "GCM") != NULL || strstr(cipher, "CHACHA20") != NULL);
    conn_close(&c);
    tls_server_free(s);
}

static void test_tls11_client_refused_and_counted(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_NONE);
    struct conn c;
    conn_open(&c, s, NULL, TLS1_1_VERSION);
    assert_int_equal(handshake(&c), LMQ_EPROTO);
    assert_false(tls_session_established(c.t));
    assert_false(c.client_done);
    assert_int_not_equal(c.client_fail, 0); /* the protocol_version alert reached the client */
    assert_string_not_equal(tls_session_error(c.t), "");
    assert_int_equal(stat_failed(s), 1);
    assert_int_equal(stat_completed(s), 0);
    /* A failed session stays failed. */
    assert_int_equal(feed(&c, "\x16", 1), LMQ_EPROTO);
    conn_close(&c);
    tls_server_free(s);
}

static void test_renegotiation_in_tls12_refused(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_NONE);
    struct conn c;
    conn_open(&c, s, NULL, TLS1_2_VERSION);
    assert_established(&c);
    assert_int_equal(SSL_renegotiate(c.ssl), 1);
    c.client_done = false;
    pump(&c);
    assert_false(c.client_done);
    assert_int_equal(c.client_fail, SSL_ERROR_SSL); /* no_renegotiation alert */
    assert_int_equal(c.client_reason, SSL_R_NO_RENEGOTIATION);
    conn_close(&c);
    tls_server_free(s);
}

/* ---------------------------------------------------------------- application data */

static void data_both_ways(int max_version)
{
    struct tls_server *s = server_new(CA_NONE);
    struct conn c;
    conn_open(&c, s, NULL, max_version);
    assert_established(&c);
    uint8_t *big = malloc(BIG_BYTES);
    assert_non_null(big);
    for (size_t i = 0; i < BIG_BYTES; i++)
        big[i] = pattern_byte(i);

    /* Client to server, in pieces. */
    for (size_t off = 0; off < BIG_BYTES; off += PIECE_BYTES) {
        client_write(&c, big + off, LMQ_MIN(PIECE_BYTES, BIG_BYTES - off));
        pump(&c);
        assert_int_equal(c.feed_rc, LMQ_OK);
    }
    assert_int_equal(c.plain.len, BIG_BYTES);
    assert_memory_equal(c.plain.data, big, BIG_BYTES);

    /* Server to client, in pieces; a full wire buffer refuses a piece until it is sent. */
    struct lmq_buf got = {0};
    size_t refused = 0;
    for (size_t off = 0; off < BIG_BYTES;) {
        size_t n = LMQ_MIN(PIECE_BYTES, BIG_BYTES - off);
        int rc = tls_session_write(c.t, big + off, n, &c.wire, WIRE_MAX_BYTES);
        if (rc == LMQ_ELIMIT) {
            refused++;
            pump(&c);
            client_read(&c, &got, BIG_BYTES);
            continue;
        }
        assert_int_equal(rc, LMQ_OK);
        off += n;
    }
    pump(&c);
    client_read(&c, &got, BIG_BYTES);
    assert_true(refused > 0);
    assert_int_equal(got.len, BIG_BYTES);
    assert_memory_equal(got.data, big, BIG_BYTES);
    assert_int_equal(tls_session_buffered_bytes(c.t), 0);
    lmq_buf_release(&got);
    free(big);
    conn_close(&c);
    tls_server_free(s);
}

static void test_data_both_ways_1mib_in_pieces_tls13(void **state)
{
    LMQ_UNUSED(state);
    data_both_ways(0);
}

static void test_data_both_ways_1mib_in_pieces_tls12(void **state)
{
    LMQ_UNUSED(state);
    data_both_ways(TLS1_2_VERSION);
}

static void test_plain_max_backpressure_keeps_order(void **state)
{
    LMQ_UNUSED(state);
    enum { TOTAL = 50000, SMALL_MAX = 100 };
    struct tls_server *s = server_new(CA_NONE);
    struct conn c;
    conn_open(&c, s, NULL, 0);
    assert_established(&c);
    uint8_t *data = malloc(TOTAL);
    assert_non_null(data);
    for (size_t i = 0; i < TOTAL; i++)
        data[i] = pattern_byte(i);
    client_write(&c, data, TOTAL);
    c.plain_max = SMALL_MAX;
    pump(&c);
    assert_int_equal(c.feed_rc, LMQ_OK);
    assert_int_equal(c.plain.len, SMALL_MAX);
    assert_true(tls_session_buffered_bytes(c.t) > 0); /* ciphertext waits inside */
    uint8_t *got = malloc(TOTAL);
    assert_non_null(got);
    size_t got_len = 0;
    for (int i = 0; i < TOTAL && got_len < TOTAL; i++) {
        assert_true(c.plain.len <= SMALL_MAX);
        memcpy(got + got_len, c.plain.data, c.plain.len);
        got_len += c.plain.len;
        lmq_buf_consume(&c.plain, c.plain.len);
        assert_int_equal(feed(&c, NULL, 0), LMQ_OK);
    }
    assert_int_equal(got_len, TOTAL);
    assert_memory_equal(got, data, TOTAL);
    assert_int_equal(tls_session_buffered_bytes(c.t), 0);
    free(got);
    free(data);
    conn_close(&c);
    tls_server_free(s);
}

static void test_write_before_handshake_is_refused(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_NONE);
    struct conn c;
    conn_open(&c, s, NULL, 0);
    assert_int_equal(tls_session_write(c.t, (const uint8_t *)"x", 1, &c.wire, WIRE_MAX_BYTES),
                     LMQ_EINVAL);
    assert_int_equal(tls_session_close_notify(c.t, &c.wire, WIRE_MAX_BYTES), LMQ_EINVAL);
    assert_int_equal(c.wire.len, 0);
    conn_close(&c);
    tls_server_free(s);
}

static void test_tiny_wire_max_handshake_and_close_come_out_in_pieces(void **state)
{
    LMQ_UNUSED(state);
    enum { TINY_WIRE_MAX = 100 };
    struct tls_server *s = server_new(CA_NONE);
    struct conn c;
    conn_open(&c, s, NULL, 0);
    c.wire_max = TINY_WIRE_MAX; /* the server's first flight is several times this */
    assert_int_equal(SSL_do_handshake(c.ssl), -1);
    uint8_t hello[CHUNK_BYTES];
    int n = BIO_read(c.from_client, hello, sizeof(hello));
    assert_true(n > 0);
    assert_int_equal(feed(&c, hello, (size_t)n), LMQ_OK);
    assert_int_equal(c.wire.len, TINY_WIRE_MAX);
    assert_true(tls_session_buffered_bytes(c.t) > 0);
    assert_established(&c);
    assert_int_equal(tls_session_buffered_bytes(c.t), 0);
    assert_int_equal(tls_session_close_notify(c.t, &c.wire, c.wire_max), LMQ_OK);
    pump(&c);
    uint8_t b;
    size_t got = 0;
    assert_int_equal(SSL_read_ex(c.ssl, &b, 1, &got), 0);
    assert_int_equal(SSL_get_error(c.ssl, 0), SSL_ERROR_ZERO_RETURN);
    conn_close(&c);
    tls_server_free(s);
}

/* ---------------------------------------------------------------- client certificates */

static void test_client_cert_required_without_cert_fails(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_REQUIRED);
    struct conn c;
    conn_open(&c, s, NULL, 0);
    assert_int_equal(handshake(&c), LMQ_EPROTO);
    assert_false(tls_session_established(c.t));
    assert_null(tls_session_peer_cn(c.t));
    assert_string_not_equal(tls_session_error(c.t), "");
    assert_int_equal(stat_failed(s), 1);
    conn_close(&c);
    tls_server_free(s);
}

static void test_client_cert_required_rogue_cert_fails(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_REQUIRED);
    struct conn c;
    conn_open(&c, s, "rogue", 0);
    assert_int_equal(handshake(&c), LMQ_EPROTO);
    assert_false(tls_session_established(c.t));
    assert_null(tls_session_peer_cn(c.t));
    /* The verification result, not a generic "certificate verify failed". */
    assert_non_null(strstr(tls_session_error(c.t), "certificate"));
    assert_int_equal(stat_failed(s), 1);
    conn_close(&c);
    tls_server_free(s);
}

static void test_client_cert_required_alice_established_with_cn(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_REQUIRED);
    struct conn c;
    conn_open(&c, s, "client", 0);
    assert_established(&c);
    assert_non_null(tls_session_peer_cn(c.t));
    assert_string_equal(tls_session_peer_cn(c.t), "alice");
    assert_int_equal(stat_completed(s), 1);
    conn_close(&c);
    tls_server_free(s);
}

static void test_client_cert_required_alice_over_tls12(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_REQUIRED);
    struct conn c;
    conn_open(&c, s, "client", TLS1_2_VERSION);
    assert_established(&c);
    assert_string_equal(tls_session_peer_cn(c.t), "alice");
    conn_close(&c);
    tls_server_free(s);
}

static void test_ticket_resumption_keeps_client_cn(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_REQUIRED);
    struct conn first;
    conn_open(&first, s, "client", 0);
    assert_established(&first);
    struct lmq_buf none = {0};
    client_read(&first, &none, CHUNK_BYTES); /* takes the NewSessionTicket */
    assert_int_equal(none.len, 0);
    lmq_buf_release(&none);
    SSL_SESSION *ticket = SSL_get1_session(first.ssl);
    assert_non_null(ticket);
    assert_true(SSL_SESSION_is_resumable(ticket));
    struct conn again;
    conn_open(&again, s, "client", 0);
    assert_int_equal(SSL_set_session(again.ssl, ticket), 1);
    assert_established(&again);
    assert_true(SSL_session_reused(again.ssl));
    assert_string_equal(tls_session_peer_cn(again.t), "alice");
    SSL_SESSION_free(ticket);
    conn_close(&first);
    conn_close(&again);
    tls_server_free(s);
}

static void test_client_cert_optional(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_OPTIONAL);
    struct conn c;
    conn_open(&c, s, NULL, 0);
    assert_established(&c);
    assert_null(tls_session_peer_cn(c.t));
    conn_close(&c);
    conn_open(&c, s, "client", 0);
    assert_established(&c);
    assert_string_equal(tls_session_peer_cn(c.t), "alice");
    conn_close(&c);
    /* A certificate that is presented must verify, required or not. */
    conn_open(&c, s, "rogue", 0);
    assert_int_equal(handshake(&c), LMQ_EPROTO);
    assert_null(tls_session_peer_cn(c.t));
    conn_close(&c);
    assert_int_equal(stat_completed(s), 2);
    assert_int_equal(stat_failed(s), 1);
    tls_server_free(s);
}

/* ---------------------------------------------------------------- not TLS */

static void assert_refused_at_once(const void *bytes, size_t len)
{
    struct tls_server *s = server_new(CA_NONE);
    struct conn c;
    conn_open(&c, s, NULL, 0);
    assert_int_equal(feed(&c, bytes, len), LMQ_EPROTO);
    assert_false(tls_session_established(c.t));
    assert_string_not_equal(tls_session_error(c.t), "");
    assert_int_equal(c.plain.len, 0);
    assert_int_equal(stat_failed(s), 1);
    conn_close(&c);
    tls_server_free(s);
}

static void test_plain_mqtt_connect_refused_at_once(void **state)
{
    LMQ_UNUSED(state);
    static const uint8_t connect[] = {0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02};
    assert_refused_at_once(connect, sizeof(connect));
    assert_refused_at_once(connect, 2); /* even a fragment too short for a record header */
}

static void test_plain_http_request_refused_at_once(void **state)
{
    LMQ_UNUSED(state);
    static const char get[] = "GET / HTTP/1.1\r\n";
    assert_refused_at_once(get, sizeof(get) - 1);
}

static void test_random_garbage_refused(void **state)
{
    LMQ_UNUSED(state);
    enum { GARBAGE_BYTES = 600 };
    uint8_t garbage[GARBAGE_BYTES];
    uint32_t x = 0x2545f491u;
    for (size_t i = 0; i < sizeof(garbage); i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage[i] = (uint8_t)x;
    }
    garbage[0] = 0x5a;
    assert_refused_at_once(garbage, sizeof(garbage));
    /* A handshake record header with garbage inside gets past the first-byte check. */
    static const uint8_t header[] = {0x16, 0x03, 0x01, 0x01, 0x00};
    memcpy(garbage, header, sizeof(header));
    assert_refused_at_once(garbage, sizeof(header) + 0x100);
    /* And a record length over the limit is refused on the header alone. */
    static const uint8_t huge[] = {0x16, 0x03, 0x01, 0xff, 0xff};
    assert_refused_at_once(huge, sizeof(huge));
}

static void test_truncated_handshake_waits_without_error(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_NONE);
    struct conn c;
    conn_open(&c, s, NULL, 0);
    assert_int_equal(SSL_do_handshake(c.ssl), -1);
    uint8_t hello[CHUNK_BYTES];
    int n = BIO_read(c.from_client, hello, sizeof(hello));
    assert_true(n > 100);
    assert_int_equal(feed(&c, hello, 1), LMQ_OK);
    assert_int_equal(feed(&c, hello + 1, (size_t)n - 11), LMQ_OK);
    assert_int_equal(feed(&c, NULL, 0), LMQ_OK);
    assert_false(tls_session_established(c.t));
    assert_int_equal(c.wire.len, 0);
    assert_string_equal(tls_session_error(c.t), "");
    /* OpenSSL holds the partial record itself (at most one record): nothing left with us. */
    assert_int_equal(tls_session_buffered_bytes(c.t), 0);
    assert_int_equal(stat_failed(s), 0);
    /* The rest arrives: the handshake goes on. */
    assert_int_equal(feed(&c, hello + n - 10, 10), LMQ_OK);
    assert_true(c.wire.len > 0);
    assert_established(&c);
    conn_close(&c);
    tls_server_free(s);
}

/* ---------------------------------------------------------------- reload */

static void test_reload_serves_new_cert_to_new_sessions_old_session_continues(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_NONE);
    struct conn old;
    conn_open(&old, s, NULL, 0);
    assert_established(&old);
    assert_served_cn(&old, "server1");

    set_live("server2.pem", "server2.key");
    char err[ERR_MAX_BYTES];
    assert_int_equal(tls_server_reload(s, err, sizeof(err)), LMQ_OK);
    struct conn fresh;
    conn_open(&fresh, s, NULL, 0);
    assert_established(&fresh);
    assert_served_cn(&fresh, "server2");

    /* The old session still works both ways. */
    client_write(&old, "ping", 4);
    pump(&old);
    assert_int_equal(old.plain.len, 4);
    assert_memory_equal(old.plain.data, "ping", 4);
    assert_int_equal(
        tls_session_write(old.t, (const uint8_t *)"pong", 4, &old.wire, WIRE_MAX_BYTES), LMQ_OK);
    pump(&old);
    struct lmq_buf got = {0};
    client_read(&old, &got, CHUNK_BYTES);
    assert_int_equal(got.len, 4);
    assert_memory_equal(got.data, "pong", 4);
    lmq_buf_release(&got);
    conn_close(&old);
    conn_close(&fresh);
    tls_server_free(s);
    set_live("server.pem", "server.key");
}

static void test_reload_with_mismatched_key_fails_and_keeps_old_cert(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_NONE);
    set_live("server2.pem", "server.key");
    char err[ERR_MAX_BYTES] = "";
    assert_int_equal(tls_server_reload(s, err, sizeof(err)), LMQ_EINVAL);
    assert_non_null(strstr(err, "key values mismatch"));
    struct conn c;
    conn_open(&c, s, NULL, 0);
    assert_established(&c);
    assert_served_cn(&c, "server1");
    conn_close(&c);
    tls_server_free(s);
    set_live("server.pem", "server.key");
}

static void test_server_new_reports_missing_file(void **state)
{
    LMQ_UNUSED(state);
    char cert[PATH_MAX_BYTES], err[ERR_MAX_BYTES] = "";
    path_of(cert, "live.pem");
    struct tls_config cfg = {.cert_file = cert, .key_file = "/nonexistent/key.pem"};
    struct tls_server *s = NULL;
    assert_int_equal(tls_server_new(&cfg, &s, err, sizeof(err)), LMQ_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err, "/nonexistent/key.pem"));
}

static void test_server_free_while_session_open(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_NONE);
    struct conn c;
    conn_open(&c, s, NULL, 0);
    tls_server_free(s); /* the session keeps the server alive */
    assert_established(&c);
    client_write(&c, "late", 4);
    pump(&c);
    assert_int_equal(c.plain.len, 4);
    conn_close(&c); /* ASan would report a leak or use after free here */
}

/* ---------------------------------------------------------------- close_notify */

static void test_close_notify_server_first(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_NONE);
    struct conn c;
    conn_open(&c, s, NULL, 0);
    assert_established(&c);
    assert_int_equal(tls_session_close_notify(c.t, &c.wire, WIRE_MAX_BYTES), LMQ_OK);
    assert_true(c.wire.len > 0);
    assert_int_equal(tls_session_write(c.t, (const uint8_t *)"x", 1, &c.wire, WIRE_MAX_BYTES),
                     LMQ_EINVAL);
    pump(&c);
    uint8_t b;
    size_t got = 0;
    assert_int_equal(SSL_read_ex(c.ssl, &b, 1, &got), 0);
    assert_int_equal(SSL_get_error(c.ssl, 0), SSL_ERROR_ZERO_RETURN);
    assert_false(tls_session_peer_closed(c.t));
    assert_int_equal(SSL_shutdown(c.ssl), 1); /* sends the client's reply */
    pump(&c);
    assert_int_equal(c.feed_rc, LMQ_OK);
    assert_true(tls_session_peer_closed(c.t));
    assert_int_equal(c.wire.len, 0); /* ours was sent already: nothing more */
    conn_close(&c);
    tls_server_free(s);
}

static void test_close_notify_client_first_gets_reply(void **state)
{
    LMQ_UNUSED(state);
    struct tls_server *s = server_new(CA_NONE);
    struct conn c;
    conn_open(&c, s, NULL, 0);
    assert_established(&c);
    client_write(&c, "bye", 3);
    assert_int_equal(SSL_shutdown(c.ssl), 0); /* sent, the reply not yet seen */
    pump(&c);
    assert_int_equal(c.feed_rc, LMQ_OK);
    assert_int_equal(c.plain.len, 3);
    assert_true(tls_session_peer_closed(c.t));
    assert_int_equal(SSL_shutdown(c.ssl), 1); /* the server's reply arrived */
    conn_close(&c);
    tls_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_tls13_by_default_and_server_name_verifies),
        cmocka_unit_test(test_handshake_tls12_when_client_caps_at_12_uses_ecdhe_aead),
        cmocka_unit_test(test_tls11_client_refused_and_counted),
        cmocka_unit_test(test_renegotiation_in_tls12_refused),
        cmocka_unit_test(test_data_both_ways_1mib_in_pieces_tls13),
        cmocka_unit_test(test_data_both_ways_1mib_in_pieces_tls12),
        cmocka_unit_test(test_plain_max_backpressure_keeps_order),
        cmocka_unit_test(test_write_before_handshake_is_refused),
        cmocka_unit_test(test_tiny_wire_max_handshake_and_close_come_out_in_pieces),
        cmocka_unit_test(test_client_cert_required_without_cert_fails),
        cmocka_unit_test(test_client_cert_required_rogue_cert_fails),
        cmocka_unit_test(test_client_cert_required_alice_established_with_cn),
        cmocka_unit_test(test_client_cert_required_alice_over_tls12),
        cmocka_unit_test(test_ticket_resumption_keeps_client_cn),
        cmocka_unit_test(test_client_cert_optional),
        cmocka_unit_test(test_plain_mqtt_connect_refused_at_once),
        cmocka_unit_test(test_plain_http_request_refused_at_once),
        cmocka_unit_test(test_random_garbage_refused),
        cmocka_unit_test(test_truncated_handshake_waits_without_error),
        cmocka_unit_test(test_reload_serves_new_cert_to_new_sessions_old_session_continues),
        cmocka_unit_test(test_reload_with_mismatched_key_fails_and_keeps_old_cert),
        cmocka_unit_test(test_server_new_reports_missing_file),
        cmocka_unit_test(test_server_free_while_session_open),
        cmocka_unit_test(test_close_notify_server_first),
        cmocka_unit_test(test_close_notify_client_first_gets_reply),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
