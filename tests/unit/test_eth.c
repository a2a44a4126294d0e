/*
 * src/eth through its headers: Keccak-256 known answers, the official RLP vectors
 * (tests/vectors/eth), keys and EIP-55, signatures, transactions (the EIP-155 example) and the
 * ABI (the Solidity documentation's examples). tests/integration/test_eth_ethers.py cross-checks
 * the same functions against ethers 6 on many more inputs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/buf.h"
#include "eth/eth_abi.h"
#include "eth/eth_hex.h"
#include "eth/eth_keccak.h"
#include "eth/eth_key.h"
#include "eth/eth_keyfile.h"
#include "eth/eth_rlp.h"
#include "eth/eth_tx.h"

#define TEST_MAX_BYTES (1u << 20)

static void hex_of(const uint8_t *data, size_t len, char *out, size_t cap)
{
    assert_int_equal(eth_hex_encode(data, len, out, cap), LMQ_OK);
}

static void assert_keccak(const char *text, size_t len, const char *expect)
{
    uint8_t digest[32];
    char hex[67];
    eth_keccak256((const uint8_t *)text, len, digest);
    hex_of(digest, 32, hex, sizeof(hex));
    assert_string_equal(hex, expect);
}

static void test_keccak_known_answers(void **state)
{
    (void)state;
    char a[200];
    memset(a, 'a', sizeof(a));
    assert_keccak("", 0, "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
    assert_keccak("abc", 3, "0x4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45");
    assert_keccak("The quick brown fox jumps over the lazy dog", 43,
                  "0x4d741b6f1eb29cb2a9b9911c82f56fa8d73b04959d3d9d222895df6c0b28aa15");
    /* Around the 136-byte rate, and two blocks (from ethers' keccak256). */
    assert_keccak(a, 135, "0x34367dc248bbd832f4e3e69dfaac2f92638bd0bbd18f2912ba4ef454919cf446");
    assert_keccak(a, 136, "0xa6c4d403279fe3e0af03729caada8374b5ca54d8065329a3ebcaeb4b60aa386e");
    assert_keccak(a, 137, "0xd869f639c7046b4929fc92a4d988a8b22c55fbadb802c0c66ebcd484f1915f39");
    assert_keccak(a, 200, "0x96ea54061def936c4be90b518992fdc6f12f535068a256229aca54267b4d084d");
}

static void test_keccak_incremental_equals_one_shot(void **state)
{
    (void)state;
    uint8_t data[500];
    uint8_t whole[32];
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(i * 7 + 3);
    }
    eth_keccak256(data, sizeof(data), whole);
    for (size_t chunk = 1; chunk < 300; chunk += 37) {
        struct eth_keccak k;
        uint8_t parts[32];
        eth_keccak_init(&k);
        for (size_t off = 0; off < sizeof(data); off += chunk) {
            eth_keccak_update(&k, data + off, LMQ_MIN(chunk, sizeof(data) - off));
        }
        eth_keccak_final(&k, parts);
        assert_memory_equal(parts, whole, 32);
    }
}

/* --- RLP ----------------------------------------------------------------------------------- */

/* "#<decimal>" as minimal big-endian bytes (up to 64 bytes: the vectors go past 2^256). */
static size_t bigint_bytes(const char *dec, uint8_t out[64])
{
    uint8_t n[64] = {0};
    for (const char *p = dec; *p != '\0'; p++) {
        unsigned carry = (unsigned)(*p - '0');
        for (int i = 63; i >= 0; i--) {
            unsigned x = n[i] * 10u + carry;
            n[i] = (uint8_t)x;
            carry = x >> 8;
        }
        assert_int_equal(carry, 0);
    }
    size_t skip = 0;
    while (skip < 64 && n[skip] == 0) {
        skip++;
    }
    memcpy(out, n + skip, 64 - skip);
    return 64 - skip;
}

static void rlp_encode_json(struct lmq_buf *b, const json_t *in)
{
    uint8_t big[64];
    if (json_is_integer(in)) {
        assert_int_equal(eth_rlp_put_u64(b, (uint64_t)json_integer_value(in), TEST_MAX_BYTES), 0);
    } else if (json_is_string(in) && json_string_value(in)[0] == '#') {
        size_t n = bigint_bytes(json_string_value(in) + 1, big);
        assert_int_equal(eth_rlp_put_bytes(b, big, n, TEST_MAX_BYTES), 0);
    } else if (json_is_string(in)) {
        assert_int_equal(eth_rlp_put_bytes(b, (const uint8_t *)json_string_value(in),
                                           json_string_length(in), TEST_MAX_BYTES),
                         0);
    } else {
        assert_true(json_is_array(in));
        size_t mark = eth_rlp_list_begin(b);
        size_t i;
        json_t *v;
        json_array_foreach(in, i, v)
        {
            rlp_encode_json(b, v);
        }
        assert_int_equal(eth_rlp_list_end(b, mark, TEST_MAX_BYTES), 0);
    }
}

/* The decoded tree is the vector's input. */
static void rlp_assert_tree(const struct eth_rlp_item *item, const json_t *in)
{
    uint8_t big[64];
    uint64_t n = 0;
    if (json_is_integer(in)) {
        assert_int_equal(eth_rlp_get_u64(item, &n), 0);
        assert_int_equal(n, (uint64_t)json_integer_value(in));
    } else if (json_is_string(in)) {
        const char *s = json_string_value(in);
        size_t len = json_string_length(in);
        if (s[0] == '#') {
            len = bigint_bytes(s + 1, big);
            s = (const char *)big;
        }
        assert_false(item->is_list);
        assert_int_equal(item->len, len);
        assert_memory_equal(item->data, s, len);
    } else {
        struct eth_rlp_iter it;
        struct eth_rlp_item child;
        size_t i;
        json_t *v;
        assert_true(item->is_list);
        eth_rlp_iter_init(&it, item);
        json_array_foreach(in, i, v)
        {
            assert_int_equal(eth_rlp_iter_next(&it, &child), 0);
            rlp_assert_tree(&child, v);
        }
        assert_int_equal(eth_rlp_iter_next(&it, &child), LMQ_ENOTFOUND);
    }
}

static json_t *load_vectors(const char *name)
{
    char path[512];
    json_error_t jerr;
    snprintf(path, sizeof(path), "%s/%s", LMQ_ETH_VECTORS_DIR, name);
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        fail_msg("%s: %s (line %d)", path, jerr.text, jerr.line);
    }
    assert_non_null(root);
    return root;
}

static void test_rlp_official_vectors(void **state)
{
    (void)state;
    json_t *root = load_vectors("rlptest.json");
    const char *name;
    json_t *vec;
    size_t count = 0;
    json_object_foreach(root, name, vec)
    {
        const char *out = json_string_value(json_object_get(vec, "out"));
        uint8_t expect[2048];
        size_t expect_len = 0;
        struct lmq_buf b = {0};
        struct eth_rlp_item item;
        assert_int_equal(eth_hex_decode(out, strlen(out), expect, sizeof(expect), &expect_len), 0);
        rlp_encode_json(&b, json_object_get(vec, "in"));
        if (b.len != expect_len || memcmp(b.data, expect, expect_len) != 0) {
            fail_msg("RLP vector %s: encoding differs", name);
        }
        assert_int_equal(eth_rlp_decode(expect, expect_len, &item), 0);
        rlp_assert_tree(&item, json_object_get(vec, "in"));
        /* Trailing bytes and a truncation are refused. */
        assert_int_equal(eth_rlp_decode(b.data, b.len - 1, &item), LMQ_EPROTO);
        lmq_buf_release(&b);
        count++;
    }
    assert_true(count >= 25);
    json_decref(root);
}

static void test_rlp_invalid_vectors(void **state)
{
    (void)state;
    json_t *root = load_vectors("invalidRLPTest.json");
    const char *name;
    json_t *vec;
    size_t count = 0;
    json_object_foreach(root, name, vec)
    {
        const char *out = json_string_value(json_object_get(vec, "out"));
        uint8_t bytes[2048];
        size_t len = 0;
        struct eth_rlp_item item;
        assert_int_equal(eth_hex_decode(out, strlen(out), bytes, sizeof(bytes), &len), 0);
        if (eth_rlp_decode(bytes, len, &item) != LMQ_EPROTO) {
            fail_msg("invalid RLP vector %s was accepted", name);
        }
        count++;
    }
    assert_true(count >= 20);
    json_decref(root);
}

static void test_rlp_integers_are_canonical(void **state)
{
    (void)state;
    static const uint8_t leading_zero[] = {0x82, 0x00, 0x01};
    static const uint8_t nine_bytes[] = {0x89, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t deep[ETH_RLP_DEPTH_MAX + 1] = {0};
    uint8_t nest[ETH_RLP_DEPTH_MAX + 2];
    struct eth_rlp_item item;
    uint64_t n = 0;
    assert_int_equal(eth_rlp_decode(leading_zero, sizeof(leading_zero), &item), 0);
    assert_int_equal(eth_rlp_get_u64(&item, &n), LMQ_EPROTO);
    assert_int_equal(eth_rlp_decode(nine_bytes, sizeof(nine_bytes), &item), 0);
    assert_int_equal(eth_rlp_get_u64(&item, &n), LMQ_EPROTO);
    (void)deep;
    /* [[[...]]] nested past the bound: each level is 0xc0 + the rest's length. */
    for (size_t i = 0; i < sizeof(nest); i++) {
        nest[i] = (uint8_t)(0xc0 + sizeof(nest) - 1 - i);
    }
    assert_int_equal(eth_rlp_decode(nest, sizeof(nest), &item), LMQ_EPROTO);
    assert_int_equal(eth_rlp_decode(nest + 2, sizeof(nest) - 2, &item), 0);
}

/* --- keys and addresses -------------------------------------------------------------------- */

static void test_key_address_known_answers(void **state)
{
    (void)state;
    uint8_t priv[32] = {0};
    uint8_t addr[20];
    char text[ETH_ADDRESS_TEXT_BYTES];
    priv[31] = 1;
    assert_int_equal(eth_key_address(priv, addr), 0);
    eth_key_address_text(addr, text);
    assert_string_equal(text, "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");
    assert_int_equal(
        eth_hex_decode_exact("0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
                             priv, 32),
        0);
    assert_int_equal(eth_key_address(priv, addr), 0);
    eth_key_address_text(addr, text);
    assert_string_equal(text, "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23");
    memset(priv, 0, sizeof(priv));
    assert_false(eth_key_valid(priv));
    assert_int_equal(eth_key_address(priv, addr), LMQ_EINVAL);
}

static void test_key_eip55_vectors(void **state)
{
    (void)state;
    static const char *const vectors[] = {
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        "0x52908400098527886E0F7030069857D2E4169EE7", "0xde709f2102306220921060314715629080e2fb77",
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(vectors); i++) {
        uint8_t addr[20];
        char text[ETH_ADDRESS_TEXT_BYTES];
        char bad[ETH_ADDRESS_TEXT_BYTES];
        assert_int_equal(eth_key_address_parse(vectors[i], strlen(vectors[i]), addr), 0);
        eth_key_address_text(addr, text);
        assert_string_equal(text, vectors[i]);
        /* One letter's case flipped breaks the checksum. */
        memcpy(bad, vectors[i], sizeof(bad));
        for (size_t c = 2; c < 42; c++) {
            if (bad[c] >= 'a' && bad[c] <= 'f') {
                bad[c] = (char)(bad[c] - 'a' + 'A');
                break;
            }
        }
        if (i < 4) {
            assert_int_equal(eth_key_address_parse(bad, 42, addr), LMQ_EPROTO);
        }
    }
    uint8_t addr[20];
    assert_int_equal(eth_key_address_parse("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeA", 40, addr),
                     LMQ_EPROTO);
}

static void test_sign_recover_and_refuse_high_s(void **state)
{
    (void)state;
    uint8_t priv[32];
    uint8_t hash[32];
    uint8_t addr[20];
    uint8_t got[20];
    struct eth_sig sig;
    assert_int_equal(eth_key_generate(priv), 0);
    assert_int_equal(eth_key_address(priv, addr), 0);
    eth_keccak256((const uint8_t *)"message", 7, hash);
    assert_int_equal(eth_key_sign(priv, hash, &sig), 0);
    assert_true(sig.s[0] < 0x80); /* low s */
    assert_int_equal(eth_key_recover(hash, &sig, got), 0);
    assert_memory_equal(got, addr, 20);
    /* The other recovery id recovers another key (or none). */
    struct eth_sig other = sig;
    other.recid ^= 1;
    int rc = eth_key_recover(hash, &other, got);
    assert_true(rc != 0 || memcmp(got, addr, 20) != 0);
    /* s' = n - s is the same signature with high s: refused. */
    static const uint8_t n[32] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48,
                                  0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};
    struct eth_sig high = sig;
    int borrow = 0;
    for (int i = 31; i >= 0; i--) {
        int x = n[i] - sig.s[i] - borrow;
        borrow = x < 0;
        high.s[i] = (uint8_t)(x + (borrow ? 256 : 0));
    }
    high.recid ^= 1;
    assert_int_equal(eth_key_recover(hash, &high, got), LMQ_EPROTO);
    other = sig;
    other.recid = 2;
    assert_int_equal(eth_key_recover(hash, &other, got), LMQ_EPROTO);
}

/* --- transactions -------------------------------------------------------------------------- */

/* EIP-155's example: nonce 9, 20 gwei, 21000 gas, to 0x3535..., 1 ether, key 0x4646... */
static void eip155_example(struct eth_tx *tx, uint8_t priv[32])
{
    memset(tx, 0, sizeof(*tx));
    tx->type = ETH_TX_LEGACY;
    tx->chain_id = 1;
    tx->nonce = 9;
    eth_u256_from_u64(&tx->gas_price, 20000000000ULL);
    tx->gas_limit = 21000;
    tx->has_to = true;
    memset(tx->to, 0x35, 20);
    eth_u256_from_u64(&tx->value, 1000000000000000000ULL);
    memset(priv, 0x46, 32);
}

static void test_tx_eip155_example(void **state)
{
    (void)state;
    static const char expect[] =
        "0xf86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a7640000"
        "8025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f76"
        "1aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83";
    struct eth_tx tx;
    struct eth_tx back;
    struct eth_tx_sig sig;
    uint8_t priv[32];
    uint8_t hash[32];
    uint8_t hash2[32];
    uint8_t signing[32];
    uint8_t sender[20];
    uint8_t addr[20];
    char hex[512];
    struct lmq_buf raw = {0};
    eip155_example(&tx, priv);
    assert_int_equal(eth_tx_signing_hash(&tx, signing), 0);
    hex_of(signing, 32, hex, sizeof(hex));
    assert_string_equal(hex, "0xdaf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53");
    assert_int_equal(eth_tx_sign(&tx, priv, &raw, hash), 0);
    hex_of(raw.data, raw.len, hex, sizeof(hex));
    assert_string_equal(hex, expect);
    assert_int_equal(eth_tx_decode(raw.data, raw.len, &back, &sig, sender, hash2, NULL, 0), 0);
    assert_memory_equal(hash2, hash, 32);
    assert_int_equal(eth_key_address(priv, addr), 0);
    assert_memory_equal(sender, addr, 20);
    assert_int_equal(back.nonce, 9);
    assert_int_equal(back.chain_id, 1);
    assert_int_equal(sig.v, 37);
    assert_memory_equal(back.value.be, tx.value.be, 32);
    /* A changed byte in the signed part is another sender, or refused. */
    raw.data[3] ^= 1;
    int rc = eth_tx_decode(raw.data, raw.len, &back, NULL, sender, NULL, NULL, 0);
    assert_true(rc != 0 || memcmp(sender, addr, 20) != 0);
    lmq_buf_release(&raw);
}

static void test_tx_1559_roundtrip_and_refusals(void **state)
{
    (void)state;
    static const uint8_t calldata[] = {0xa9, 0x05, 0x9c, 0xbb, 0, 1, 2};
    struct eth_tx tx = {0};
    struct eth_tx back;
    uint8_t priv[32];
    uint8_t hash[32];
    uint8_t sender[20];
    uint8_t addr[20];
    char err[128];
    struct lmq_buf raw = {0};
    memset(priv, 0x11, 32);
    tx.type = ETH_TX_EIP1559;
    tx.chain_id = 1337;
    tx.nonce = 0;
    assert_int_equal(
        eth_u256_parse(
            "115792089237316195423570985008687907853269984665640564039457584007913129639935", 78,
            &tx.value),
        0);
    eth_u256_from_u64(&tx.max_priority_fee_per_gas, 1000000000);
    eth_u256_from_u64(&tx.max_fee_per_gas, 30000000000ULL);
    tx.gas_limit = 100000;
    tx.data = calldata;
    tx.data_len = sizeof(calldata);
    assert_int_equal(eth_tx_sign(&tx, priv, &raw, hash), 0);
    assert_int_equal(raw.data[0], 2);
    assert_int_equal(eth_tx_decode(raw.data, raw.len, &back, NULL, sender, NULL, err, sizeof(err)),
                     0);
    assert_int_equal(eth_key_address(priv, addr), 0);
    assert_memory_equal(sender, addr, 20);
    assert_false(back.has_to);
    assert_int_equal(back.data_len, sizeof(calldata));
    assert_memory_equal(back.value.be, tx.value.be, 32);
    /* Truncated, an unknown type, trailing bytes: refused with a reason. */
    assert_int_equal(
        eth_tx_decode(raw.data, raw.len - 1, &back, NULL, NULL, NULL, err, sizeof(err)),
        LMQ_EPROTO);
    raw.data[0] = 1;
    assert_int_equal(eth_tx_decode(raw.data, raw.len, &back, NULL, NULL, NULL, err, sizeof(err)),
                     LMQ_EPROTO);
    assert_non_null(strstr(err, "type"));
    lmq_buf_release(&raw);
    /* Signing needs a chain id (EIP-155). */
    tx.chain_id = 0;
    assert_int_equal(eth_tx_sign(&tx, priv, &raw, hash), LMQ_EINVAL);
    assert_int_equal(raw.len, 0);
}

/* --- ABI ----------------------------------------------------------------------------------- */

static void assert_abi(const char *sig_text, const char *values_json, const char *expect_hex)
{
    struct eth_abi_sig sig;
    struct lmq_buf out = {0};
    char err[256];
    char *hex = malloc(2 * TEST_MAX_BYTES);
    json_t *values = json_loads(values_json, 0, NULL);
    json_t *back = NULL;
    assert_non_null(values);
    assert_non_null(hex);
    assert_int_equal(eth_abi_parse(sig_text, &sig, err, sizeof(err)), 0);
    if (eth_abi_encode(&sig, values, true, &out, TEST_MAX_BYTES, err, sizeof(err)) != 0) {
        fail_msg("%s: %s", sig_text, err);
    }
    hex_of(out.data, out.len, hex, 2 * TEST_MAX_BYTES);
    assert_string_equal(hex, expect_hex);
    assert_int_equal(eth_abi_decode(&sig, out.data + 4, out.len - 4, &back, err, sizeof(err)), 0);
    char *a = json_dumps(back, JSON_COMPACT);
    char *b = json_dumps(values, JSON_COMPACT);
    assert_string_equal(a, b);
    free(a);
    free(b);
    free(hex);
    json_decref(back);
    json_decref(values);
    lmq_buf_release(&out);
}

static void test_abi_solidity_doc_examples(void **state)
{
    (void)state;
    assert_abi("baz(uint32 x, bool y)", "[\"69\", true]",
               "0xcdcd77c0"
               "0000000000000000000000000000000000000000000000000000000000000045"
               "0000000000000000000000000000000000000000000000000000000000000001");
    assert_abi("sam(bytes,bool,uint[])", "[\"0x64617665\", true, [\"1\", \"2\", \"3\"]]",
               "0xa5643bf2"
               "0000000000000000000000000000000000000000000000000000000000000060"
               "0000000000000000000000000000000000000000000000000000000000000001"
               "00000000000000000000000000000000000000000000000000000000000000a0"
               "0000000000000000000000000000000000000000000000000000000000000004"
               "6461766500000000000000000000000000000000000000000000000000000000"
               "0000000000000000000000000000000000000000000000000000000000000003"
               "0000000000000000000000000000000000000000000000000000000000000001"
               "0000000000000000000000000000000000000000000000000000000000000002"
               "0000000000000000000000000000000000000000000000000000000000000003");
    assert_abi("f(uint,uint32[],bytes10,bytes)",
               "[\"291\", [\"1110\", \"1929\"], \"0x31323334353637383930\", "
               "\"0x48656c6c6f2c20776f726c6421\"]",
               "0x8be65246"
               "0000000000000000000000000000000000000000000000000000000000000123"
               "0000000000000000000000000000000000000000000000000000000000000080"
               "3132333435363738393000000000000000000000000000000000000000000000"
               "00000000000000000000000000000000000000000000000000000000000000e0"
               "0000000000000000000000000000000000000000000000000000000000000002"
               "0000000000000000000000000000000000000000000000000000000000000456"
               "0000000000000000000000000000000000000000000000000000000000000789"
               "000000000000000000000000000000000000000000000000000000000000000d"
               "48656c6c6f2c20776f726c642100000000000000000000000000000000000000");
    assert_abi("g(int8,string,bool[2])", "[\"-1\", \"h\u00e9\", [false, true]]",
               "0xa39a94d2"
               "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
               "0000000000000000000000000000000000000000000000000000000000000080"
               "0000000000000000000000000000000000000000000000000000000000000000"
               "0000000000000000000000000000000000000000000000000000000000000001"
               "0000000000000000000000000000000000000000000000000000000000000003"
               "68c3a90000000000000000000000000000000000000000000000000000000000");
}

static void test_abi_selectors_and_refusals(void **state)
{
    (void)state;
    struct eth_abi_sig sig;
    uint8_t sel[4];
    uint8_t topic[32];
    char err[256];
    char hex[80];
    json_t *v = NULL;
    assert_int_equal(eth_abi_parse("transfer(address to, uint256 amount)", &sig, err, sizeof(err)),
                     0);
    assert_string_equal(sig.canonical, "transfer(address,uint256)");
    eth_abi_selector(&sig, sel);
    hex_of(sel, 4, hex, sizeof(hex));
    assert_string_equal(hex, "0xa9059cbb");
    assert_int_equal(eth_abi_parse("Transfer(address indexed from, address indexed to, uint value)",
                                   &sig, err, sizeof(err)),
                     0);
    eth_abi_topic0(&sig, topic);
    hex_of(topic, 32, hex, sizeof(hex));
    assert_string_equal(hex, "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");
    static const char *const bad_sigs[] = {
        "f(uint7)",  "f(bytes33)", "f(uint256[0])",     "f((uint256,bool))",
        "f(uint256", "f(foo)",     "f(uint a, uint a)", "f(uint[1][1][1][1][1][1][1][1][1])"};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad_sigs); i++) {
        assert_int_equal(eth_abi_parse(bad_sigs[i], &sig, err, sizeof(err)), LMQ_EINVAL);
        assert_true(strlen(err) > 0);
    }
    /* Strict decoding: dirty bits above uint8, bool 2, offset past the data, huge arrays. */
    uint8_t word[96] = {0};
    assert_int_equal(eth_abi_parse("(uint8)", &sig, err, sizeof(err)), 0);
    word[30] = 1;
    assert_int_equal(eth_abi_decode(&sig, word, 32, &v, err, sizeof(err)), LMQ_EPROTO);
    assert_int_equal(eth_abi_parse("(bool)", &sig, err, sizeof(err)), 0);
    word[30] = 0;
    word[31] = 2;
    assert_int_equal(eth_abi_decode(&sig, word, 32, &v, err, sizeof(err)), LMQ_EPROTO);
    assert_int_equal(eth_abi_parse("(uint256[])", &sig, err, sizeof(err)), 0);
    word[31] = 0x40;
    assert_int_equal(eth_abi_decode(&sig, word, 32, &v, err, sizeof(err)), LMQ_EPROTO);
    word[31] = 0x20;
    memset(word + 32, 0xff, 32); /* length 2^256 - 1 */
    assert_int_equal(eth_abi_decode(&sig, word, 64, &v, err, sizeof(err)), LMQ_EPROTO);
    memset(word + 32, 0, 32);
    word[63] = 2; /* two items announced, room for one */
    assert_int_equal(eth_abi_decode(&sig, word, 96, &v, err, sizeof(err)), LMQ_EPROTO);
    assert_null(v);
    /* Values out of range are refused when encoding. */
    struct lmq_buf out = {0};
    assert_int_equal(eth_abi_parse("(uint8,int8)", &sig, err, sizeof(err)), 0);
    json_t *vals = json_loads("[\"256\", \"0\"]", 0, NULL);
    assert_int_equal(eth_abi_encode(&sig, vals, false, &out, 1024, err, sizeof(err)), LMQ_EINVAL);
    json_decref(vals);
    vals = json_loads("[\"255\", \"-129\"]", 0, NULL);
    assert_int_equal(eth_abi_encode(&sig, vals, false, &out, 1024, err, sizeof(err)), LMQ_EINVAL);
    json_decref(vals);
    vals = json_loads("[\"255\", \"-128\"]", 0, NULL);
    assert_int_equal(eth_abi_encode(&sig, vals, false, &out, 1024, err, sizeof(err)), 0);
    assert_int_equal(out.len, 64);
    json_decref(vals);
    lmq_buf_release(&out);
}

static void test_abi_decode_transfer_log(void **state)
{
    (void)state;
    struct eth_abi_sig sig;
    char err[256];
    uint8_t topics[3][32] = {{0}};
    uint8_t data[32] = {0};
    json_t *args = NULL;
    assert_int_equal(eth_abi_parse("Transfer(address indexed from, address indexed to, "
                                   "uint256 value)",
                                   &sig, err, sizeof(err)),
                     0);
    eth_abi_topic0(&sig, topics[0]);
    assert_int_equal(
        eth_key_address_parse("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", 42, topics[1] + 12), 0);
    assert_int_equal(
        eth_key_address_parse("0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", 42, topics[2] + 12), 0);
    data[31] = 100;
    assert_int_equal(eth_abi_decode_log(&sig, (const uint8_t(*)[32])topics, 3, data, 32, &args, err,
                                        sizeof(err)),
                     0);
    char *text = json_dumps(args, JSON_COMPACT);
    assert_string_equal(text, "{\"from\":\"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\","
                              "\"to\":\"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359\","
                              "\"value\":\"100\"}");
    free(text);
    json_decref(args);
    /* Another event's topic 0, or a topic missing: refused. */
    assert_int_equal(eth_abi_decode_log(&sig, (const uint8_t(*)[32])topics, 2, data, 32, &args, err,
                                        sizeof(err)),
                     LMQ_EPROTO);
    topics[0][0] ^= 1;
    assert_int_equal(eth_abi_decode_log(&sig, (const uint8_t(*)[32])topics, 3, data, 32, &args, err,
                                        sizeof(err)),
                     LMQ_EPROTO);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_keyfile_save_load_and_refusals(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_eth_keyfile.XXXXXX";
    char path[256];
    char other[256];
    char err[512];
    uint8_t priv[32];
    uint8_t back[32];
    uint8_t addr[20];
    uint8_t expect[20];
    struct stat st;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/seal.json", dir);
    snprintf(other, sizeof(other), "%s/other.json", dir);
    assert_int_equal(eth_key_generate(priv), 0);
    assert_int_equal(eth_keyfile_save(path, priv, err, sizeof(err)), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(eth_keyfile_save(path, priv, err, sizeof(err)), LMQ_EEXIST);
    assert_int_equal(eth_keyfile_load(path, back, addr, err, sizeof(err)), 0);
    assert_memory_equal(back, priv, 32);
    assert_int_equal(eth_key_address(priv, expect), 0);
    assert_memory_equal(addr, expect, 20);
    /* Readable by others: refused. */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(eth_keyfile_load(path, back, addr, err, sizeof(err)), LMQ_EIO);
    /* An identity key (JWK) is never a sealing key. */
    write_file(other, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"AA\",\"x\":\"AA\"}", 0600);
    assert_int_equal(eth_keyfile_load(other, back, addr, err, sizeof(err)), LMQ_EPROTO);
    assert_non_null(strstr(err, "identity key"));
    /* The address beside the key must be the key's. */
    write_file(
        other,
        "{\"type\":\"ledgermq-eth-key\",\"version\":1,"
        "\"address\":\"0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf\","
        "\"private_key\":\"0x0000000000000000000000000000000000000000000000000000000000000002\"}",
        0600);
    assert_int_equal(eth_keyfile_load(other, back, addr, err, sizeof(err)), LMQ_EPROTO);
    unlink(path);
    unlink(other);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keccak_known_answers),
        cmocka_unit_test(test_keccak_incremental_equals_one_shot),
        cmocka_unit_test(test_rlp_official_vectors),
        cmocka_unit_test(test_rlp_invalid_vectors),
        cmocka_unit_test(test_rlp_integers_are_canonical),
        cmocka_unit_test(test_key_address_known_answers),
        cmocka_unit_test(test_key_eip55_vectors),
        cmocka_unit_test(test_sign_recover_and_refuse_high_s),
        cmocka_unit_test(test_tx_eip155_example),
        cmocka_unit_test(test_tx_1559_roundtrip_and_refusals),
        cmocka_unit_test(test_abi_solidity_doc_examples),
        cmocka_unit_test(test_abi_selectors_and_refusals),
        cmocka_unit_test(test_abi_decode_transfer_log),
        cmocka_unit_test(test_keyfile_save_load_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
