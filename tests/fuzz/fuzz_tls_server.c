/*
 * libFuzzer target for the TLS engine (net/tls.c): the input is what a client sends to a fresh
 * server session. Byte 0 picks plain_max, byte 1 the wire output bound, byte 2 the read size;
 * the rest is fed in reads of that size, plain output taken after every feed. The server's
 * certificate (ECDSA P-256, self-signed) is generated once at start-up. Oracles:
 *   - plain and wire output never pass their bounds;
 *   - a failed feed says why (tls_session_error), and every later feed fails without output;
 *   - the version string is "" exactly while the session is not established;
 *   - each session adds at most one to the handshake counters.
 * Server randoms differ per run, so inputs cannot get past the client's Finished: the target
 * covers record parsing and the ClientHello/first flight, the early-failure paths and the
 * buffering. Seeds: tests/fuzz/make_tls_corpus.py.
 *
 * fuzz-sources: src/net/tls.c src/core/buf.c
 * fuzz-libs: -lssl -lcrypto -lpthread
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/buf.h"
#include "core/lmq.h"
#include "net/tls.h"

#include "fuzz_check.h"

#define PATH_MAX_BYTES 256
#define PARAM_BYTES 3
#define PLAIN_STEP_BYTES 64u
#define WIRE_STEP_BYTES 512u
#define FEEDS_MAX 4096

static struct tls_server *g_server;

static void write_pem(const char *path, X509 *cert, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    CHECK(cert != NULL ? PEM_write_X509(f, cert) == 1
                       : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1);
    CHECK(fclose(f) == 0);
}

/* A self-signed P-256 server certificate in a temporary directory, loaded, then deleted. */
static void make_server(void)
{
    char dir[PATH_MAX_BYTES] = "/tmp/lmq-fuzz-tls-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char cert_path[PATH_MAX_BYTES + 16], key_path[PATH_MAX_BYTES + 16];
    snprintf(cert_path, sizeof(cert_path), "%s/server.pem", dir);
    snprintf(key_path, sizeof(key_path), "%s/server.key", dir);
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *cert = X509_new();
    CHECK(key != NULL && cert != NULL);
    CHECK(ASN1_INTEGER_set(X509_get_serialNumber(cert), 1) == 1);
    CHECK(X509_gmtime_adj(X509_getm_notBefore(cert), -60) != NULL);
    CHECK(X509_gmtime_adj(X509_getm_notAfter(cert), 3600) != NULL);
    X509_NAME *name = X509_get_subject_name(cert);
    CHECK(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1,
                                     -1, 0) == 1);
    CHECK(X509_set_issuer_name(cert, name) == 1);
    CHECK(X509_set_pubkey(cert, key) == 1);
    CHECK(X509_sign(cert, key, EVP_sha256()) > 0);
    write_pem(cert_path, cert, NULL);
    write_pem(key_path, NULL, key);
    struct tls_config cfg = {.cert_file = cert_path, .key_file = key_path};
    char err[PATH_MAX_BYTES];
    CHECK(tls_server_new(&cfg, &g_server, err, sizeof(err)) == LMQ_OK);
    unlink(cert_path);
    unlink(key_path);
    rmdir(dir);
    X509_free(cert);
    EVP_PKEY_free(key);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    LMQ_UNUSED(argc);
    LMQ_UNUSED(argv);
    make_server();
    return 0;
}

static void check_state(struct tls_session *t)
{
    bool up = tls_session_established(t);
    CHECK(up == (tls_session_version(t)[0] != '\0'));
    CHECK(tls_session_peer_cn(t) == NULL); /* no client CA: never a CN */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < PARAM_BYTES)
        return 0;
    size_t plain_max = 1 + (size_t)(data[0] & 0x3f) * PLAIN_STEP_BYTES;
    size_t wire_max = 1 + (size_t)(data[1] & 0x1f) * WIRE_STEP_BYTES;
    size_t read_bytes = 1 + (size_t)data[2] * 4;
    data += PARAM_BYTES;
    size -= PARAM_BYTES;

    struct tls_server_stats before, after;
    tls_server_get_stats(g_server, &before);
    struct tls_session *t = NULL;
    CHECK(tls_session_new(g_server, &t) == LMQ_OK);
    struct lmq_buf plain = {0}, wire = {0};
    bool failed = false;
    size_t off = 0;
    for (int i = 0; i < FEEDS_MAX && (off < size || i == 0); i++) {
        size_t n = LMQ_MIN(read_bytes, size - off);
        size_t wire_before = wire.len;
        int rc = tls_session_feed(t, data + off, n, &plain, plain_max, &wire, wire_max);
        off += n;
        CHECK(plain.len <= plain_max && wire.len <= wire_max);
        if (failed) {
            CHECK(rc == LMQ_EPROTO && plain.len == 0 && wire.len == wire_before);
        } else if (rc != LMQ_OK) {
            CHECK(rc == LMQ_EPROTO || rc == LMQ_ELIMIT);
            CHECK(tls_session_error(t)[0] != '\0');
            failed = true;
        }
        check_state(t);
        lmq_buf_consume(&plain, plain.len);
        lmq_buf_consume(&wire, wire.len); /* "sent" */
    }
    tls_server_get_stats(g_server, &after);
    uint64_t added = (after.handshakes_completed - before.handshakes_completed) +
                     (after.handshakes_failed - before.handshakes_failed);
    CHECK(added <= 1);
    CHECK(!failed || tls_session_established(t) || added == 1);
    tls_session_free(t);
    lmq_buf_release(&plain);
    lmq_buf_release(&wire);
    return 0;
}
