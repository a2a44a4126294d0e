/* Unit tests for src/crypto/passwd.c: scrypt hash text, verification, the password file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/lmq.h"
#include "crypto/passwd.h"

/* Cheap parameters: the tests check the format and the logic, not the cost. */
static const struct crypto_scrypt_params cheap = {.n = 16, .r = 1, .p = 1};

static const uint8_t *u8(const char *s)
{
    return (const uint8_t *)s;
}

static bool verify(const char *hash, const char *password)
{
    bool match = true;
    int rc = crypto_passwd_verify(hash, strlen(hash), u8(password), strlen(password), &match);
    assert_int_equal(rc, LMQ_OK);
    return match;
}

static void test_hash_then_verify_accepts_only_the_password(void **state)
{
    (void)state;
    char hash[CRYPTO_PASSWD_HASH_MAX_CHARS + 1];
    assert_int_equal(crypto_passwd_hash(u8("s3cret"), 6, &cheap, hash, sizeof(hash)), LMQ_OK);
    assert_true(strncmp(hash, "$scrypt$N=16,r=1,p=1$", 21) == 0);
    assert_int_equal(crypto_passwd_hash_valid(hash, strlen(hash)), LMQ_OK);
    assert_true(verify(hash, "s3cret"));
    assert_false(verify(hash, "s3creT"));
    assert_false(verify(hash, "s3cret "));
    assert_false(verify(hash, ""));
    /* A fresh salt each time: the same password hashes differently. */
    char again[CRYPTO_PASSWD_HASH_MAX_CHARS + 1];
    assert_int_equal(crypto_passwd_hash(u8("s3cret"), 6, &cheap, again, sizeof(again)), LMQ_OK);
    assert_string_not_equal(hash, again);
    assert_true(verify(again, "s3cret"));
}

static void test_empty_password_hashes_and_verifies(void **state)
{
    (void)state;
    char hash[CRYPTO_PASSWD_HASH_MAX_CHARS + 1];
    assert_int_equal(crypto_passwd_hash(NULL, 0, &cheap, hash, sizeof(hash)), LMQ_OK);
    assert_true(verify(hash, ""));
    assert_false(verify(hash, "x"));
}

/* A known answer: RFC 7914 §12's third vector ("pleaseletmein", "SodiumChloride", N=16384,
 * r=8, p=1, 64 bytes), written as hash text. */
static void test_known_answer_from_rfc_7914(void **state)
{
    (void)state;
    const char *hash =
        "$scrypt$N=16384,r=8,p=1$U29kaXVtQ2hsb3JpZGU=$"
        "cCO9yzr9c0hGHAbNgf046/2o+7qQT44+qbVD9lRdofLVQylVYT8Pz2LUlwUkKpr55h6F3A1lHkDfzwF7RVdYhw==";
    assert_int_equal(crypto_passwd_hash_valid(hash, strlen(hash)), LMQ_OK);
    assert_true(verify(hash, "pleaseletmein"));
    assert_false(verify(hash, "pleaseletmeio"));
}

static void test_malformed_hash_text_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "$scrypt$",
        "$bcrypt$N=16,r=1,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",
        "$scrypt$N=15,r=1,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",  /* N not 2^k */
        "$scrypt$N=016,r=1,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==", /* leading zero */
        "$scrypt$N=16,r=0,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",
        "$scrypt$N=16,r=1,p=99$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",
        "$scrypt$N=65536,r=1,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",    /* N >= 2^(16 r) */
        "$scrypt$N=1048576,r=32,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==", /* 4 GiB */
        "$scrypt$N=16,r=1,p=1$c2FsdA==$aGFzaGhhc2hoYXNoaGFzaA==",           /* salt < 8 bytes */
        "$scrypt$N=16,r=1,p=1$c2FsdHNhbHQ=$aGFzaA==",                       /* hash < 16 bytes */
        "$scrypt$N=16,r=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA==",        /* no padding */
        "$scrypt$N=16,r=1,p=1$c2FsdHNhbHQ=",
        "$scrypt$N=16,p=1,r=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",
        "$scrypt$N=16,r=1,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==$",
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad); i++) {
        if (crypto_passwd_hash_valid(bad[i], strlen(bad[i])) != LMQ_EINVAL)
            fail_msg("accepted bad hash %zu: %s", i, bad[i]);
        bool match = true;
        assert_int_equal(crypto_passwd_verify(bad[i], strlen(bad[i]), u8("x"), 1, &match),
                         LMQ_EINVAL);
        assert_false(match);
    }
    const char *good = "$scrypt$N=16,r=1,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==";
    assert_int_equal(crypto_passwd_hash_valid(good, strlen(good)), LMQ_OK);
}

static void test_hash_refuses_bad_parameters_and_small_buffers(void **state)
{
    (void)state;
    char hash[CRYPTO_PASSWD_HASH_MAX_CHARS + 1];
    struct crypto_scrypt_params bad = {.n = 24, .r = 1, .p = 1};
    assert_int_equal(crypto_passwd_hash(u8("x"), 1, &bad, hash, sizeof(hash)), LMQ_EINVAL);
    char tiny[20];
    assert_int_equal(crypto_passwd_hash(u8("x"), 1, &cheap, tiny, sizeof(tiny)), LMQ_ETOOBIG);
    assert_string_equal(tiny, "");
    static uint8_t long_pw[CRYPTO_PASSWD_PASSWORD_MAX_BYTES + 1];
    assert_int_equal(crypto_passwd_hash(long_pw, sizeof(long_pw), &cheap, hash, sizeof(hash)),
                     LMQ_EINVAL);
}

static void test_user_names(void **state)
{
    (void)state;
    assert_true(crypto_passwd_user_valid(u8("alice"), 5));
    assert_true(crypto_passwd_user_valid(u8("b\xc3\xa9o"), 4));
    assert_false(crypto_passwd_user_valid(u8(""), 0));
    assert_false(crypto_passwd_user_valid(u8("a:b"), 3));
    assert_false(crypto_passwd_user_valid(u8("a b"), 3));
    assert_false(crypto_passwd_user_valid(u8("#a"), 2));
    assert_false(crypto_passwd_user_valid(u8("a\tb"), 3));
    const char *id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_false(crypto_passwd_user_valid(u8(id), 64));
    char longest[CRYPTO_PASSWD_USER_MAX_BYTES + 1];
    memset(longest, 'u', sizeof(longest));
    assert_true(crypto_passwd_user_valid(u8(longest), CRYPTO_PASSWD_USER_MAX_BYTES));
    assert_false(crypto_passwd_user_valid(u8(longest), sizeof(longest)));
}

static void test_file_parses_users_comments_and_crlf(void **state)
{
    (void)state;
    char h1[CRYPTO_PASSWD_HASH_MAX_CHARS + 1], h2[CRYPTO_PASSWD_HASH_MAX_CHARS + 1];
    assert_int_equal(crypto_passwd_hash(u8("pw1"), 3, &cheap, h1, sizeof(h1)), LMQ_OK);
    assert_int_equal(crypto_passwd_hash(u8("pw2"), 3, &cheap, h2, sizeof(h2)), LMQ_OK);
    char text[1024];
    int n = snprintf(text, sizeof(text), "# users\n\nalice:%s\r\nbob:%s", h1, h2);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    struct crypto_passwd_file *f = NULL;
    char err[256] = "";
    assert_int_equal(crypto_passwd_file_parse(text, (size_t)n, &f, err, sizeof(err)), LMQ_OK);
    assert_int_equal(crypto_passwd_file_count(f), 2);
    assert_string_equal(crypto_passwd_file_lookup(f, u8("alice"), 5), h1);
    assert_string_equal(crypto_passwd_file_lookup(f, u8("bob"), 3), h2);
    assert_null(crypto_passwd_file_lookup(f, u8("carol"), 5));
    assert_null(crypto_passwd_file_lookup(f, u8("alic"), 4));
    assert_true(verify(crypto_passwd_file_lookup(f, u8("bob"), 3), "pw2"));
    assert_false(verify(crypto_passwd_file_lookup(f, u8("bob"), 3), "pw1"));
    crypto_passwd_file_free(f);
}

static void test_file_errors_name_the_line(void **state)
{
    (void)state;
    const char *good = "$scrypt$N=16,r=1,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==";
    char text[512];
    static const struct {
        const char *fmt;
        const char *needle;
    } cases[] = {
        {"a:%s\nnocolon\n", "line 2: expected user:hash"},
        {"a:%s\na:%s\n", "line 2: user a appears twice"},
        {"\n\nbad user:%s\n", "line 3: bad user name"},
        {"a:$scrypt$N=16%s\n", "line 1: expected $scrypt$"},
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(cases); i++) {
        int n = snprintf(text, sizeof(text), cases[i].fmt, good, good);
        assert_true(n > 0 && (size_t)n < sizeof(text));
        struct crypto_passwd_file *f = NULL;
        char err[256] = "";
        assert_int_equal(crypto_passwd_file_parse(text, (size_t)n, &f, err, sizeof(err)),
                         LMQ_EINVAL);
        assert_null(f);
        if (strstr(err, cases[i].needle) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].needle);
    }
    struct crypto_passwd_file *f = NULL;
    char err[256];
    assert_int_equal(crypto_passwd_file_load("/nonexistent/pw", &f, err, sizeof(err)), LMQ_EIO);
    assert_non_null(strstr(err, "/nonexistent/pw: cannot read"));
}

/* Written by Debian 12's mosquitto_passwd 2.0.11: `mosquitto_passwd -c -b f alice secret1`
 * ($7$, its default) and `mosquitto_passwd -H sha512 -b f bob secret2` ($6$). */
static const char mosq_pbkdf2[] = "$7$101$/KlNVUBq3YwIAs6g$BOTwhF4gx5EeBuqWOEjaarfzI40Pyld5HM1yWZE"
                                  "P4hbGwPkqG8ac/MXYqnc5kFSqb+CddEJjHT/x4auGAetBSg==";
static const char mosq_sha512[] = "$6$t/pEQAvq1NJsn2bu$AbOX8gwpL4wPOHhcxgpsBUCSrzY9Vs0+pyIL/kgfLnO"
                                  "BoqYF7hXOcN6aV1OYr/LN+5EZSSNIwHrwPkYieG9hpg==";

static void test_mosquitto_hashes_verify(void **state)
{
    (void)state;
    assert_int_equal(crypto_passwd_hash_valid(mosq_pbkdf2, strlen(mosq_pbkdf2)), LMQ_OK);
    assert_int_equal(crypto_passwd_hash_valid(mosq_sha512, strlen(mosq_sha512)), LMQ_OK);
    assert_true(verify(mosq_pbkdf2, "secret1"));
    assert_false(verify(mosq_pbkdf2, "secret2"));
    assert_false(verify(mosq_pbkdf2, ""));
    assert_true(verify(mosq_sha512, "secret2"));
    assert_false(verify(mosq_sha512, "secret1"));
    assert_false(verify(mosq_sha512, "secret2 "));
}

static void test_malformed_mosquitto_hashes_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "$7$",
        "$7$101$",
        "$7$0$/KlNVUBq3YwIAs6g$BOTwhF4gx5EeBuqWOEjaarfzI40Pyld5HM1yWZEP4hbGwPkqG8ac/MXYqnc5kFSqb+"
        "CddEJjHT/x4auGAetBSg==", /* zero iterations */
        "$7$0101$/KlNVUBq3YwIAs6g$BOTwhF4gx5EeBuqWOEjaarfzI40Pyld5HM1yWZEP4hbGwPkqG8ac/"
        "MXYqnc5kFSqb+CddEJjHT/x4auGAetBSg==", /* leading zero */
        "$7$1000001$/KlNVUBq3YwIAs6g$BOTwhF4gx5EeBuqWOEjaarfzI40Pyld5HM1yWZEP4hbGwPkqG8ac/"
        "MXYqnc5kFSqb+CddEJjHT/x4auGAetBSg==", /* over the iteration cap */
        "$7$101$/KlNVUBq3YwIAs6g$BOTwhF4gx5EeBuqWOEjaarfzI40Pyld5HM1yWZE=", /* short hash */
        "$7$101$/KlNVUBq3YwIAs6g",                                          /* no hash */
        "$6$t/pEQAvq1NJsn2bu$AbOX8gwpL4wPOHhcxgpsBUCSrzY9Vs0+pyIL/kg=",     /* short hash */
        "$6$$AbOX8gwpL4wPOHhcxgpsBUCSrzY9Vs0+pyIL/kgfLnOBoqYF7hXOcN6aV1OYr/LN+5EZSSNIwHrwPkYieG9hpg"
        "==", /* no salt */
        "$6$t/pEQAvq1NJsn2bu$!bOX8gwpL4wPOHhcxgpsBUCSrzY9Vs0+pyIL/kgfLnOBoqYF7hXOcN6aV1OYr/"
        "LN+5EZSSNIwHrwPkYieG9hpg==", /* not base64 */
        "$5$t/pEQAvq1NJsn2bu$AbOX8gwpL4wPOHhcxgpsBUCSrzY9Vs0+pyIL/kgfLnOBoqYF7hXOcN6aV1OYr/"
        "LN+5EZSSNIwHrwPkYieG9hpg==", /* a crypt(3) kind nobody writes here */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(crypto_passwd_hash_valid(bad[i], strlen(bad[i])), LMQ_EINVAL);
        bool match = true;
        assert_int_equal(crypto_passwd_verify(bad[i], strlen(bad[i]), u8("x"), 1, &match),
                         LMQ_EINVAL);
        assert_false(match);
    }
}

static void test_file_reads_a_mosquitto_password_file(void **state)
{
    (void)state;
    char text[512];
    snprintf(text, sizeof(text), "alice:%s\nbob:%s\n", mosq_pbkdf2, mosq_sha512);
    struct crypto_passwd_file *f = NULL;
    char err[256] = "";
    assert_int_equal(crypto_passwd_file_parse(text, strlen(text), &f, err, sizeof(err)), LMQ_OK);
    assert_int_equal(crypto_passwd_file_count(f), 2);
    assert_string_equal(crypto_passwd_file_lookup(f, u8("alice"), 5), mosq_pbkdf2);
    assert_true(verify(crypto_passwd_file_lookup(f, u8("bob"), 3), "secret2"));
    crypto_passwd_file_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_then_verify_accepts_only_the_password),
        cmocka_unit_test(test_empty_password_hashes_and_verifies),
        cmocka_unit_test(test_known_answer_from_rfc_7914),
        cmocka_unit_test(test_malformed_hash_text_is_refused),
        cmocka_unit_test(test_hash_refuses_bad_parameters_and_small_buffers),
        cmocka_unit_test(test_user_names),
        cmocka_unit_test(test_file_parses_users_comments_and_crlf),
        cmocka_unit_test(test_file_errors_name_the_line),
        cmocka_unit_test(test_mosquitto_hashes_verify),
        cmocka_unit_test(test_malformed_mosquitto_hashes_are_refused),
        cmocka_unit_test(test_file_reads_a_mosquitto_password_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
