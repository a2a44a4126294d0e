/*
 * Unit tests for checkpoints as C2SP signed notes (src/ledger/checkpoint.h).
 *
 * Base64 and key ids are checked against independent computations: OpenSSL's EVP_EncodeBlock /
 * EVP_DecodeBlock and SHA-256 over a hand-built buffer. The reference key and signature come
 * from golang.org/x/mod/sumdb/note, file note_test.go (the "PeterNeumann" verifier key, signer
 * key and signed text); Ed25519 is deterministic, so the signature must match byte for byte.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/lmq.h"
#include "crypto/ed25519.h"
#include "crypto/hash.h"
#include "ledger/checkpoint.h"

#define NOTE_CAP 4096
#define B64_CAP 256
#define ORIGIN "example.com/ledgermq"
#define KEY_NAME "example.com/ledgermq"
#define TREE_SIZE UINT64_C(20852163)

static const char GO_VKEY[] = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
static const char GO_SKEY_DATA[] = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
static const char GO_TEXT[] = "If you think cryptography is the answer to your problem,\n"
                              "then you don't know what your problem is.\n";
static const char GO_SIG[] = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgK"
                             "vqfqdngotpRZb6KE6RyyBwJnAM=";

/* ---- helpers ---- */

/* OpenSSL's base64 (independent of checkpoint.c's). */
static size_t ossl_b64_encode(const uint8_t *in, size_t len, char *out)
{
    assert_true(len * 4 / 3 + 4 < B64_CAP);
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    assert_true(n > 0);
    return (size_t)n;
}

/* Decodes text (padded) and checks it has exactly len bytes. */
static void ossl_b64_decode(const char *text, uint8_t *out, size_t len)
{
    unsigned char tmp[B64_CAP];
    size_t tl = strlen(text);
    assert_true(tl < B64_CAP && tl % 4 == 0);
    int n = EVP_DecodeBlock(tmp, (const unsigned char *)text, (int)tl);
    assert_true(n >= 0);
    size_t pad = (tl > 0 && text[tl - 1] == '=') + (tl > 1 && text[tl - 2] == '=');
    assert_int_equal((size_t)n - pad, len);
    memcpy(out, tmp, len);
}

static void test_keys(uint8_t seed[32], uint8_t pub[32], uint8_t fill)
{
    memset(seed, fill, 32);
    assert_int_equal(crypto_ed25519_public(seed, pub), 0);
}

static void test_root(uint8_t root[32])
{
    for (size_t i = 0; i < 32; i++)
        root[i] = (uint8_t)(i * 7 + 3);
}

/* A fresh checkpoint note signed by seed under KEY_NAME. */
static size_t make_note(char *note, const uint8_t seed[32])
{
    uint8_t root[32];
    test_root(root);
    size_t len = 0;
    assert_int_equal(
        ledger_checkpoint_sign(ORIGIN, TREE_SIZE, root, KEY_NAME, seed, note, NOTE_CAP, &len), 0);
    assert_int_equal(strlen(note), len);
    return len;
}

static enum ledger_checkpoint_verdict verdict_of(const char *note, size_t len, const char *name,
                                                 const uint8_t pub[32])
{
    struct ledger_checkpoint cp;
    enum ledger_checkpoint_verdict v = LEDGER_CHECKPOINT_OK;
    int rc = ledger_checkpoint_verify(note, len, name, pub, &cp, &v);
    assert_int_equal(rc == 0, v == LEDGER_CHECKPOINT_OK);
    if (rc != 0)
        assert_int_equal(rc, LMQ_EPROTO);
    return v;
}

/* ---- key ids and the Go reference vector ---- */

static void test_key_id_is_first_four_bytes_of_sha256_of_name_newline_type_key(void **state)
{
    (void)state;
    uint8_t seed[32], pub[32];
    test_keys(seed, pub, 0x42);
    uint8_t buf[64];
    size_t n = strlen(KEY_NAME);
    memcpy(buf, KEY_NAME, n);
    buf[n] = 0x0A;
    buf[n + 1] = 0x01;
    memcpy(buf + n + 2, pub, 32);
    uint8_t digest[32];
    assert_int_equal(crypto_sha256(buf, n + 34, digest), 0);
    uint32_t want = (uint32_t)digest[0] << 24 | (uint32_t)digest[1] << 16 |
                    (uint32_t)digest[2] << 8 | digest[3];
    uint32_t got = 0;
    assert_int_equal(ledger_checkpoint_key_id(KEY_NAME, pub, &got), 0);
    assert_int_equal(got, want);
    /* A different name or key gives a different id. */
    uint32_t other = 0;
    assert_int_equal(ledger_checkpoint_key_id("example.com/other", pub, &other), 0);
    assert_int_not_equal(other, got);
    assert_int_equal(ledger_checkpoint_key_id("bad name", pub, &other), LMQ_EINVAL);
    assert_int_equal(ledger_checkpoint_key_id("bad+name", pub, &other), LMQ_EINVAL);
    assert_int_equal(ledger_checkpoint_key_id("", pub, &other), LMQ_EINVAL);
}

static void test_go_reference_key_and_signature_reproduced(void **state)
{
    (void)state;
    char name[LEDGER_CHECKPOINT_KEY_NAME_MAX_BYTES + 1];
    uint8_t pub[32];
    assert_int_equal(ledger_checkpoint_vkey_parse(GO_VKEY, strlen(GO_VKEY), name, pub), 0);
    assert_string_equal(name, "PeterNeumann");
    uint32_t id = 0;
    assert_int_equal(ledger_checkpoint_key_id(name, pub, &id), 0);
    assert_int_equal(id, 0xc74f20a3u);
    char vkey[LEDGER_CHECKPOINT_VKEY_MAX_BYTES + 1];
    size_t vlen = 0;
    assert_int_equal(ledger_checkpoint_vkey_format(name, pub, vkey, sizeof(vkey), &vlen), 0);
    assert_string_equal(vkey, GO_VKEY);
    assert_int_equal(vlen, strlen(GO_VKEY));
    /* The signer key is 0x01 || seed; its public key and its signature match Go's. */
    uint8_t skey[33], seed[32], derived[32];
    ossl_b64_decode(GO_SKEY_DATA, skey, sizeof(skey));
    assert_int_equal(skey[0], 0x01);
    memcpy(seed, skey + 1, 32);
    assert_int_equal(crypto_ed25519_public(seed, derived), 0);
    assert_memory_equal(derived, pub, 32);
    uint8_t blob[68];
    for (int i = 0; i < 4; i++)
        blob[i] = (uint8_t)(id >> (24 - 8 * i));
    assert_int_equal(crypto_ed25519_sign(seed, (const uint8_t *)GO_TEXT, strlen(GO_TEXT), blob + 4),
                     0);
    char b64[B64_CAP];
    size_t b64_len = ossl_b64_encode(blob, sizeof(blob), b64);
    assert_int_equal(b64_len, strlen(GO_SIG));
    assert_memory_equal(b64, GO_SIG, b64_len);
}

/* ---- round trip ---- */

static void test_sign_formats_exact_note_and_parse_round_trips(void **state)
{
    (void)state;
    uint8_t seed[32], pub[32], root[32];
    test_keys(seed, pub, 0x42);
    test_root(root);
    char note[NOTE_CAP];
    size_t len = make_note(note, seed);
    /* Build the expected text independently. */
    char root_b64[B64_CAP], want_body[NOTE_CAP];
    root_b64[ossl_b64_encode(root, 32, root_b64)] = '\0';
    int bn = snprintf(want_body, sizeof(want_body), "%s\n%llu\n%s\n", ORIGIN,
                      (unsigned long long)TREE_SIZE, root_b64);
    assert_true(bn > 0);
    assert_memory_equal(note, want_body, (size_t)bn);
    uint32_t id = 0;
    assert_int_equal(ledger_checkpoint_key_id(KEY_NAME, pub, &id), 0);
    uint8_t blob[68];
    for (int i = 0; i < 4; i++)
        blob[i] = (uint8_t)(id >> (24 - 8 * i));
    assert_int_equal(crypto_ed25519_sign(seed, (const uint8_t *)note, (size_t)bn, blob + 4), 0);
    char sig_b64[B64_CAP], want[NOTE_CAP];
    sig_b64[ossl_b64_encode(blob, sizeof(blob), sig_b64)] = '\0';
    int wn = snprintf(want, sizeof(want), "%s\n\xE2\x80\x94 %s %s\n", want_body, KEY_NAME, sig_b64);
    assert_int_equal((size_t)wn, len);
    assert_string_equal(note, want);

    struct ledger_checkpoint cp;
    assert_int_equal(ledger_checkpoint_parse(note, len, &cp), 0);
    assert_string_equal(cp.origin, ORIGIN);
    assert_int_equal(cp.size, TREE_SIZE);
    assert_memory_equal(cp.root, root, 32);
    assert_int_equal(cp.body_len, (size_t)bn);
    assert_int_equal(cp.extension_count, 0);
    assert_int_equal(cp.sig_count, 1);
    assert_string_equal(cp.sigs[0].key_name, KEY_NAME);
    assert_int_equal(cp.sigs[0].key_id, id);
    assert_int_equal(cp.sigs[0].sig_len, 64);
    assert_memory_equal(cp.sigs[0].sig, blob + 4, 64);
    assert_int_equal(verdict_of(note, len, KEY_NAME, pub), LEDGER_CHECKPOINT_OK);
}

static void test_extreme_sizes_round_trip(void **state)
{
    (void)state;
    uint8_t seed[32], pub[32], root[32];
    test_keys(seed, pub, 0x07);
    test_root(root);
    const uint64_t sizes[] = {0, 1, 9, 10, UINT64_MAX};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(sizes); i++) {
        char note[NOTE_CAP];
        size_t len = 0;
        assert_int_equal(
            ledger_checkpoint_sign("o", sizes[i], root, "k", seed, note, sizeof(note), &len), 0);
        struct ledger_checkpoint cp;
        enum ledger_checkpoint_verdict v;
        assert_int_equal(ledger_checkpoint_verify(note, len, "k", pub, &cp, &v), 0);
        assert_int_equal(cp.size, sizes[i]);
    }
    char note[NOTE_CAP];
    size_t len = 0;
    assert_int_equal(
        ledger_checkpoint_sign("o", UINT64_MAX, root, "k", seed, note, sizeof(note), &len), 0);
    assert_non_null(strstr(note, "\n18446744073709551615\n"));
}

/* ---- verification outcomes ---- */

/* Inserts a line just before the final signature block position `at`. */
static size_t insert_at(char *note, size_t len, size_t at, const char *text)
{
    size_t tl = strlen(text);
    assert_true(len + tl < NOTE_CAP);
    memmove(note + at + tl, note + at, len - at + 1);
    memcpy(note + at, text, tl);
    return len + tl;
}

static void test_verify_reports_precise_reasons(void **state)
{
    (void)state;
    uint8_t seed[32], pub[32], other_seed[32], other_pub[32];
    test_keys(seed, pub, 0x42);
    test_keys(other_seed, other_pub, 0x43);
    char note[NOTE_CAP];
    size_t len = make_note(note, seed);
    assert_int_equal(verdict_of(note, len, KEY_NAME, pub), LEDGER_CHECKPOINT_OK);
    /* Another key under the same name, or the same key under another name: not its note. */
    assert_int_equal(verdict_of(note, len, KEY_NAME, other_pub),
                     LEDGER_CHECKPOINT_NO_SIGNATURE_BY_KEY);
    assert_int_equal(verdict_of(note, len, "example.com/other", pub),
                     LEDGER_CHECKPOINT_NO_SIGNATURE_BY_KEY);
    assert_int_equal(verdict_of("garbage", 7, KEY_NAME, pub), LEDGER_CHECKPOINT_MALFORMED);
    /* A foreign signature line (a witness) is ignored; the note still verifies. */
    struct ledger_checkpoint cp;
    assert_int_equal(ledger_checkpoint_parse(note, len, &cp), 0);
    char witness[NOTE_CAP];
    size_t wlen = 0;
    uint8_t root[32];
    test_root(root);
    assert_int_equal(ledger_checkpoint_sign(ORIGIN, TREE_SIZE, root, "witness.example/w1",
                                            other_seed, witness, sizeof(witness), &wlen),
                     0);
    char both[NOTE_CAP];
    memcpy(both, note, len + 1);
    size_t blen = insert_at(both, len, len, witness + cp.body_len + 1);
    assert_int_equal(verdict_of(both, blen, KEY_NAME, pub), LEDGER_CHECKPOINT_OK);
    assert_int_equal(verdict_of(both, blen, "witness.example/w1", other_pub), LEDGER_CHECKPOINT_OK);
    assert_int_equal(ledger_checkpoint_parse(both, blen, &cp), 0);
    assert_int_equal(cp.sig_count, 2);
    /* A line with this key's name and id whose signature fails: bad signature, even next to a
     * good one. The bad one is the good one's signature over another body (the witness's). */
    memcpy(both, note, len + 1);
    char forged[NOTE_CAP];
    size_t flen = 0;
    assert_int_equal(ledger_checkpoint_sign(ORIGIN, TREE_SIZE + 1, root, KEY_NAME, seed, forged,
                                            sizeof(forged), &flen),
                     0);
    blen = insert_at(both, len, cp.body_len + 1, forged + cp.body_len + 1);
    assert_int_equal(verdict_of(both, blen, KEY_NAME, pub), LEDGER_CHECKPOINT_BAD_SIGNATURE);
    assert_string_equal(ledger_checkpoint_verdict_str(LEDGER_CHECKPOINT_BAD_SIGNATURE),
                        "bad signature");
    assert_string_equal(ledger_checkpoint_verdict_str(LEDGER_CHECKPOINT_NO_SIGNATURE_BY_KEY),
                        "no signature by this key");
    assert_string_equal(ledger_checkpoint_verdict_str(LEDGER_CHECKPOINT_MALFORMED), "malformed");
}

/* Every single-bit flip and every +1 of any one byte of the note stops it verifying. */
static void test_every_bit_and_byte_tampering_fails(void **state)
{
    (void)state;
    uint8_t seed[32], pub[32];
    test_keys(seed, pub, 0x42);
    char note[NOTE_CAP];
    size_t len = make_note(note, seed);
    for (size_t i = 0; i < len; i++) {
        unsigned char *u = (unsigned char *)note + i;
        const unsigned char orig = *u;
        for (unsigned b = 0; b < 9; b++) {
            *u = orig;
            if (b < 8)
                *u ^= (unsigned char)(1u << b);
            else
                (*u)++;
            assert_int_not_equal(verdict_of(note, len, KEY_NAME, pub), LEDGER_CHECKPOINT_OK);
        }
        *u = orig;
    }
    assert_int_equal(verdict_of(note, len, KEY_NAME, pub), LEDGER_CHECKPOINT_OK);
}

/* Targeted edits that keep the note well-formed fail for the right reason. */
static void test_field_tampering_gives_the_right_reason(void **state)
{
    (void)state;
    uint8_t seed[32], pub[32];
    test_keys(seed, pub, 0x42);
    char note[NOTE_CAP];
    size_t len = make_note(note, seed);
    struct ledger_checkpoint cp;
    assert_int_equal(ledger_checkpoint_parse(note, len, &cp), 0);
    const size_t origin_at = 0, size_at = strlen(ORIGIN) + 1, root_at = size_at + 9;
    const size_t name_at = cp.body_len + 1 + 4, sig_at = name_at + strlen(KEY_NAME) + 1;
    struct {
        size_t at;
        char with;
        enum ledger_checkpoint_verdict want;
    } cases[] = {
        {origin_at, 'E', LEDGER_CHECKPOINT_BAD_SIGNATURE},
        {size_at, '3', LEDGER_CHECKPOINT_BAD_SIGNATURE}, /* 20852163 -> 30852163 */
        {root_at, (char)(note[root_at] == 'A' ? 'B' : 'A'), LEDGER_CHECKPOINT_BAD_SIGNATURE},
        {name_at, 'E', LEDGER_CHECKPOINT_NO_SIGNATURE_BY_KEY},
        {sig_at, (char)(note[sig_at] == 'A' ? 'B' : 'A'), LEDGER_CHECKPOINT_NO_SIGNATURE_BY_KEY},
        {sig_at + 20, (char)(note[sig_at + 20] == 'A' ? 'B' : 'A'),
         LEDGER_CHECKPOINT_BAD_SIGNATURE},
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(cases); i++) {
        const char orig = note[cases[i].at];
        note[cases[i].at] = cases[i].with;
        assert_int_equal(verdict_of(note, len, KEY_NAME, pub), cases[i].want);
        note[cases[i].at] = orig;
    }
}

/* ---- malformed notes ---- */

#define ROOT_B64 "AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dw="

/* The note `body` followed by a blank line and the signature line of `seed` over that body. */
static size_t note_with_body(char *out, const char *body, const uint8_t seed[32])
{
    uint8_t pub[32], blob[68];
    assert_int_equal(crypto_ed25519_public(seed, pub), 0);
    uint32_t id = 0;
    assert_int_equal(ledger_checkpoint_key_id(KEY_NAME, pub, &id), 0);
    for (int i = 0; i < 4; i++)
        blob[i] = (uint8_t)(id >> (24 - 8 * i));
    assert_int_equal(crypto_ed25519_sign(seed, (const uint8_t *)body, strlen(body), blob + 4), 0);
    char b64[B64_CAP];
    b64[ossl_b64_encode(blob, sizeof(blob), b64)] = '\0';
    int n = snprintf(out, NOTE_CAP, "%s\n\xE2\x80\x94 %s %s\n", body, KEY_NAME, b64);
    assert_true(n > 0 && n < NOTE_CAP);
    return (size_t)n;
}

static void test_well_formed_bodies_with_extensions_verify(void **state)
{
    (void)state;
    uint8_t seed[32], pub[32];
    test_keys(seed, pub, 0x42);
    char note[NOTE_CAP];
    size_t len = note_with_body(note, ORIGIN "\n0\n" ROOT_B64 "\next one\next two\n", seed);
    struct ledger_checkpoint cp;
    enum ledger_checkpoint_verdict v;
    assert_int_equal(ledger_checkpoint_verify(note, len, KEY_NAME, pub, &cp, &v), 0);
    assert_int_equal(cp.size, 0);
    assert_int_equal(cp.extension_count, 2);
    uint8_t root[32];
    test_root(root);
    assert_memory_equal(cp.root, root, 32); /* ROOT_B64 is test_root() in base64 */
    /* Non-ASCII UTF-8 in the origin is fine. */
    len = note_with_body(note, "caf\xC3\xA9.example/log\n1\n" ROOT_B64 "\n", seed);
    assert_int_equal(ledger_checkpoint_verify(note, len, KEY_NAME, pub, &cp, &v), 0);
    assert_string_equal(cp.origin, "caf\xC3\xA9.example/log");
}

static void test_malformed_bodies_rejected_even_when_signed(void **state)
{
    (void)state;
    uint8_t seed[32], pub[32];
    test_keys(seed, pub, 0x42);
    static const char *const bad_bodies[] = {
        ORIGIN "\n020852163\n" ROOT_B64 "\n",                         /* leading zero */
        ORIGIN "\n00\n" ROOT_B64 "\n",                                /* leading zero */
        ORIGIN "\n-1\n" ROOT_B64 "\n",                                /* not decimal */
        ORIGIN "\n+1\n" ROOT_B64 "\n",                                /* not decimal */
        ORIGIN "\n18446744073709551616\n" ROOT_B64 "\n",              /* 2^64 */
        ORIGIN "\n1 \n" ROOT_B64 "\n",                                /* trailing space */
        ORIGIN "\n\n" ROOT_B64 "\n",                                  /* empty size */
        "\n1\n" ROOT_B64 "\n",                                        /* empty origin */
        " " ORIGIN "\n1\n" ROOT_B64 "\n",                             /* space before origin */
        ORIGIN " \n1\n" ROOT_B64 "\n",                                /* space after origin */
        ORIGIN "\n1\n",                                               /* no root */
        ORIGIN "\n1\nAwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dw\n",  /* no padding */
        ORIGIN "\n1\nAwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dx=\n", /* non-canonical */
        ORIGIN "\n1\nAwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1d*=\n", /* bad character */
        ORIGIN "\n1\nAwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO\n",     /* 30 bytes */
        ORIGIN "\n1\nAwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj\n", /* 33 bytes */
        ORIGIN "\n1\n" ROOT_B64 "\n\next\n", /* empty line before an extension */
        ORIGIN "\n1\n" ROOT_B64 "\nbad\x01"
               "ext\n",                           /* control character */
        ORIGIN "\xC3\n1\n" ROOT_B64 "\n",         /* truncated UTF-8 */
        ORIGIN "\xC0\xAF\n1\n" ROOT_B64 "\n",     /* overlong UTF-8 */
        ORIGIN "\xED\xA0\x80\n1\n" ROOT_B64 "\n", /* surrogate */
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad_bodies); i++) {
        char note[NOTE_CAP];
        size_t len = note_with_body(note, bad_bodies[i], seed);
        struct ledger_checkpoint cp;
        int rc = ledger_checkpoint_parse(note, len, &cp);
        if (rc != LMQ_EPROTO)
            fail_msg("body %zu accepted or wrong error %d", i, rc);
        assert_int_equal(verdict_of(note, len, KEY_NAME, pub), LEDGER_CHECKPOINT_MALFORMED);
    }
}

/* Replaces the first occurrence of `from` in note with `to`. */
static size_t replace(char *note, size_t len, const char *from, const char *to)
{
    char *at = strstr(note, from);
    assert_non_null(at);
    size_t fl = strlen(from), tl = strlen(to);
    assert_true(len - fl + tl < NOTE_CAP);
    memmove(at + tl, at + fl, len - (size_t)(at - note) - fl + 1);
    memcpy(at, to, tl);
    return len - fl + tl;
}

static void test_malformed_note_framing_rejected(void **state)
{
    (void)state;
    uint8_t seed[32], pub[32];
    test_keys(seed, pub, 0x42);
    char good[NOTE_CAP];
    size_t good_len = make_note(good, seed);
    struct {
        const char *from, *to;
    } edits[] = {
        {"\n\n", "\n"},                      /* missing blank line */
        {"\xE2\x80\x94", "-"},               /* em dash replaced by '-' */
        {"\xE2\x80\x94", "\xE2\x80\x93"},    /* en dash */
        {"\xE2\x80\x94 ", "\xE2\x80\x94"},   /* no space after the dash */
        {"\xE2\x80\x94 ", "\xE2\x80\x94  "}, /* empty key name */
        {KEY_NAME " ", KEY_NAME "+x "},      /* '+' in key name */
        {"\n\n", "\n\n\n"},                  /* signature block starts with a blank line */
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(edits); i++) {
        char note[NOTE_CAP];
        memcpy(note, good, good_len + 1);
        size_t len = replace(note, good_len, edits[i].from, edits[i].to);
        if (verdict_of(note, len, KEY_NAME, pub) != LEDGER_CHECKPOINT_MALFORMED)
            fail_msg("edit %zu not reported malformed", i);
    }
    /* No final newline; trailing garbage; no signature lines; a signature too short. */
    assert_int_equal(verdict_of(good, good_len - 1, KEY_NAME, pub), LEDGER_CHECKPOINT_MALFORMED);
    char note[NOTE_CAP];
    memcpy(note, good, good_len + 1);
    size_t len = insert_at(note, good_len, good_len, "x");
    assert_int_equal(verdict_of(note, len, KEY_NAME, pub), LEDGER_CHECKPOINT_MALFORMED);
    struct ledger_checkpoint cp;
    assert_int_equal(ledger_checkpoint_parse(good, good_len, &cp), 0);
    assert_int_equal(verdict_of(good, cp.body_len + 1, KEY_NAME, pub), LEDGER_CHECKPOINT_MALFORMED);
    assert_int_equal(verdict_of(good, cp.body_len, KEY_NAME, pub), LEDGER_CHECKPOINT_MALFORMED);
    memcpy(note, good, cp.body_len + 1);
    len = cp.body_len + 1;
    len = insert_at(note, len, len, "\xE2\x80\x94 k AAAAAA==\n"); /* 4 bytes: id, no signature */
    assert_int_equal(verdict_of(note, len, KEY_NAME, pub), LEDGER_CHECKPOINT_MALFORMED);
    assert_int_equal(verdict_of("", 0, KEY_NAME, pub), LEDGER_CHECKPOINT_MALFORMED);
}

static void test_signature_count_is_bounded(void **state)
{
    (void)state;
    uint8_t seed[32], pub[32];
    test_keys(seed, pub, 0x42);
    char note[NOTE_CAP];
    size_t len = make_note(note, seed);
    struct ledger_checkpoint cp;
    assert_int_equal(ledger_checkpoint_parse(note, len, &cp), 0);
    char line[B64_CAP];
    size_t line_len = len - cp.body_len - 1;
    memcpy(line, note + cp.body_len + 1, line_len);
    line[line_len] = '\0';
    for (size_t n = 1; n < LEDGER_CHECKPOINT_SIGS_MAX; n++)
        len = insert_at(note, len, len, line);
    assert_int_equal(ledger_checkpoint_parse(note, len, &cp), 0);
    assert_int_equal(cp.sig_count, LEDGER_CHECKPOINT_SIGS_MAX);
    assert_int_equal(verdict_of(note, len, KEY_NAME, pub), LEDGER_CHECKPOINT_OK);
    len = insert_at(note, len, len, line);
    assert_int_equal(ledger_checkpoint_parse(note, len, &cp), LMQ_ELIMIT);
    assert_int_equal(verdict_of(note, len, KEY_NAME, pub), LEDGER_CHECKPOINT_MALFORMED);
}

static void test_sign_refuses_bad_arguments(void **state)
{
    (void)state;
    uint8_t seed[32], pub[32], root[32];
    test_keys(seed, pub, 0x42);
    test_root(root);
    char note[NOTE_CAP];
    size_t len = 0;
    static const char *const bad_origins[] = {"", " a", "a ", "a\nb", "a\x01"};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad_origins); i++)
        assert_int_equal(
            ledger_checkpoint_sign(bad_origins[i], 1, root, "k", seed, note, NOTE_CAP, &len),
            LMQ_EINVAL);
    static const char *const bad_names[] = {"", "a b", "a+b", "a\nb", "caf\xC3\xA9"};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad_names); i++)
        assert_int_equal(
            ledger_checkpoint_sign("o", 1, root, bad_names[i], seed, note, NOTE_CAP, &len),
            LMQ_EINVAL);
    /* Every capacity short of the note (plus its NUL) is refused. */
    size_t full = make_note(note, seed);
    for (size_t cap = 0; cap <= full; cap++)
        assert_int_equal(
            ledger_checkpoint_sign(ORIGIN, TREE_SIZE, root, KEY_NAME, seed, note, cap, &len),
            LMQ_ETOOBIG);
    assert_int_equal(
        ledger_checkpoint_sign(ORIGIN, TREE_SIZE, root, KEY_NAME, seed, note, full + 1, &len), 0);
    assert_int_equal(len, full);
}

/* ---- verifier keys ---- */

static void test_vkey_round_trips_and_every_mangling_fails(void **state)
{
    (void)state;
    uint8_t seed[32], pub[32];
    test_keys(seed, pub, 0x42);
    char vkey[LEDGER_CHECKPOINT_VKEY_MAX_BYTES + 1];
    size_t vlen = 0;
    assert_int_equal(ledger_checkpoint_vkey_format(KEY_NAME, pub, vkey, sizeof(vkey), &vlen), 0);
    char name[LEDGER_CHECKPOINT_KEY_NAME_MAX_BYTES + 1];
    uint8_t got[32];
    assert_int_equal(ledger_checkpoint_vkey_parse(vkey, vlen, name, got), 0);
    assert_string_equal(name, KEY_NAME);
    assert_memory_equal(got, pub, 32);
    /* As in Go's TestNewVerifier: every proper substring and every byte + 1 is refused. */
    for (size_t i = 0; i <= vlen; i++) {
        for (size_t j = i; j <= vlen; j++) {
            if (i == 0 && j == vlen)
                continue;
            assert_int_equal(ledger_checkpoint_vkey_parse(vkey + i, j - i, name, got), LMQ_EPROTO);
        }
    }
    for (size_t i = 0; i < vlen; i++) {
        vkey[i]++;
        assert_int_equal(ledger_checkpoint_vkey_parse(vkey, vlen, name, got), LMQ_EPROTO);
        vkey[i]--;
    }
    /* Uppercase hex and a wrong type byte are refused too. */
    const char *go_upper = "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    assert_int_equal(ledger_checkpoint_vkey_parse(go_upper, strlen(go_upper), name, got),
                     LMQ_EPROTO);
    const char *go_type2 = "PeterNeumann+c74f20a3+AhpC2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    assert_int_equal(ledger_checkpoint_vkey_parse(go_type2, strlen(go_type2), name, got),
                     LMQ_EPROTO);
    assert_int_equal(ledger_checkpoint_vkey_format("bad name", pub, vkey, sizeof(vkey), &vlen),
                     LMQ_EINVAL);
    assert_int_equal(ledger_checkpoint_vkey_format(KEY_NAME, pub, vkey, 10, &vlen), LMQ_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_id_is_first_four_bytes_of_sha256_of_name_newline_type_key),
        cmocka_unit_test(test_go_reference_key_and_signature_reproduced),
        cmocka_unit_test(test_sign_formats_exact_note_and_parse_round_trips),
        cmocka_unit_test(test_extreme_sizes_round_trip),
        cmocka_unit_test(test_verify_reports_precise_reasons),
        cmocka_unit_test(test_every_bit_and_byte_tampering_fails),
        cmocka_unit_test(test_field_tampering_gives_the_right_reason),
        cmocka_unit_test(test_well_formed_bodies_with_extensions_verify),
        cmocka_unit_test(test_malformed_bodies_rejected_even_when_signed),
        cmocka_unit_test(test_malformed_note_framing_rejected),
        cmocka_unit_test(test_signature_count_is_bounded),
        cmocka_unit_test(test_sign_refuses_bad_arguments),
        cmocka_unit_test(test_vkey_round_trips_and_every_mangling_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
