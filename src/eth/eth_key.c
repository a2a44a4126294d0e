/* secp256k1 keys, EIP-55 addresses and recoverable signatures (eth_key.h). */
#include "eth/eth_key.h"

#include <openssl/rand.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <string.h>

#include "eth/eth_hex.h"
#include "eth/eth_keccak.h"

/* Attempts at a random key before giving up: a 32-byte random string is a valid key except with
 * probability about 2^-128, so a second failure means the randomness is broken. */
#define ETH_KEY_GENERATE_TRIES 4

/* A signing context: libsecp256k1 0.2 creates one cheaply (its tables are static). A fresh
 * context per call keeps the module free of global state and thread questions. */
static secp256k1_context *eth_key__ctx(void)
{
    secp256k1_context *ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    LMQ_ASSERT(ctx != NULL);
    return ctx;
}

int eth_key_generate(uint8_t priv[ETH_PRIVKEY_BYTES])
{
    LMQ_ASSERT(priv != NULL);
    for (int i = 0; i < ETH_KEY_GENERATE_TRIES; i++) {
        if (RAND_bytes(priv, ETH_PRIVKEY_BYTES) != 1) {
            break;
        }
        if (eth_key_valid(priv)) {
            return LMQ_OK;
        }
    }
    memset(priv, 0, ETH_PRIVKEY_BYTES);
    return LMQ_EIO;
}

bool eth_key_valid(const uint8_t priv[ETH_PRIVKEY_BYTES])
{
    LMQ_ASSERT(priv != NULL);
    return secp256k1_ec_seckey_verify(secp256k1_context_static, priv) == 1;
}

int eth_key_public(const uint8_t priv[ETH_PRIVKEY_BYTES], uint8_t pub[ETH_PUBKEY_BYTES])
{
    LMQ_ASSERT(priv != NULL && pub != NULL);
    secp256k1_context *ctx = eth_key__ctx();
    secp256k1_pubkey pk;
    uint8_t ser[65];
    size_t ser_len = sizeof(ser);
    int rc = LMQ_EINVAL;
    if (secp256k1_ec_pubkey_create(ctx, &pk, priv) != 1) {
        goto out;
    }
    int ok = secp256k1_ec_pubkey_serialize(ctx, ser, &ser_len, &pk, SECP256K1_EC_UNCOMPRESSED);
    LMQ_ASSERT(ok == 1 && ser_len == 65 && ser[0] == 0x04);
    memcpy(pub, ser + 1, ETH_PUBKEY_BYTES);
    rc = LMQ_OK;
out:
    secp256k1_context_destroy(ctx);
    return rc;
}

void eth_key_pub_address(const uint8_t pub[ETH_PUBKEY_BYTES], uint8_t addr[ETH_ADDRESS_BYTES])
{
    LMQ_ASSERT(pub != NULL && addr != NULL);
    uint8_t hash[ETH_KECCAK256_BYTES];
    eth_keccak256(pub, ETH_PUBKEY_BYTES, hash);
    memcpy(addr, hash + ETH_KECCAK256_BYTES - ETH_ADDRESS_BYTES, ETH_ADDRESS_BYTES);
}

int eth_key_address(const uint8_t priv[ETH_PRIVKEY_BYTES], uint8_t addr[ETH_ADDRESS_BYTES])
{
    uint8_t pub[ETH_PUBKEY_BYTES];
    int rc = eth_key_public(priv, pub);
    if (rc == LMQ_OK) {
        eth_key_pub_address(pub, addr);
    }
    return rc;
}

void eth_key_address_text(const uint8_t addr[ETH_ADDRESS_BYTES], char out[ETH_ADDRESS_TEXT_BYTES])
{
    LMQ_ASSERT(addr != NULL && out != NULL);
    int rc = eth_hex_encode(addr, ETH_ADDRESS_BYTES, out, ETH_ADDRESS_TEXT_BYTES);
    LMQ_ASSERT(rc == LMQ_OK);
    /* EIP-55: a letter is upper case when the matching nibble of keccak256(lowercase hex
     * without 0x) is 8 or more. */
    uint8_t hash[ETH_KECCAK256_BYTES];
    eth_keccak256((const uint8_t *)out + 2, 2 * ETH_ADDRESS_BYTES, hash);
    for (size_t i = 0; i < 2 * ETH_ADDRESS_BYTES; i++) {
        unsigned nibble = (i % 2 == 0) ? hash[i / 2] >> 4 : hash[i / 2] & 0x0f;
        char *c = &out[2 + i];
        if (*c >= 'a' && *c <= 'f' && nibble >= 8) {
            *c = (char)(*c - 'a' + 'A');
        }
    }
}

int eth_key_address_parse(const char *text, size_t text_len, uint8_t addr[ETH_ADDRESS_BYTES])
{
    LMQ_ASSERT(addr != NULL && (text != NULL || text_len == 0));
    size_t got = 0;
    if (text_len != ETH_ADDRESS_TEXT_BYTES - 1 || text[0] != '0' || text[1] != 'x' ||
        eth_hex_decode(text, text_len, addr, ETH_ADDRESS_BYTES, &got) != LMQ_OK ||
        got != ETH_ADDRESS_BYTES) {
        return LMQ_EPROTO;
    }
    bool lower = false;
    bool upper = false;
    for (size_t i = 2; i < text_len; i++) {
        lower = lower || (text[i] >= 'a' && text[i] <= 'f');
        upper = upper || (text[i] >= 'A' && text[i] <= 'F');
    }
    if (lower && upper) {
        char expect[ETH_ADDRESS_TEXT_BYTES];
        eth_key_address_text(addr, expect);
        if (memcmp(expect, text, text_len) != 0) {
            memset(addr, 0, ETH_ADDRESS_BYTES);
            return LMQ_EPROTO;
        }
    }
    return LMQ_OK;
}

int eth_key_sign(const uint8_t priv[ETH_PRIVKEY_BYTES], const uint8_t hash[32], struct eth_sig *sig)
{
    LMQ_ASSERT(priv != NULL && hash != NULL && sig != NULL);
    secp256k1_context *ctx = eth_key__ctx();
    secp256k1_ecdsa_recoverable_signature rs;
    uint8_t compact[64];
    int recid = -1;
    int rc = LMQ_EINVAL;
    memset(sig, 0, sizeof(*sig));
    /* NULL nonce function: RFC 6979, which is also what ethers uses, so both sign alike. */
    if (secp256k1_ecdsa_sign_recoverable(ctx, &rs, hash, priv, NULL, NULL) != 1) {
        goto out;
    }
    int ok = secp256k1_ecdsa_recoverable_signature_serialize_compact(ctx, compact, &recid, &rs);
    LMQ_ASSERT(ok == 1 && (recid == 0 || recid == 1));
    memcpy(sig->r, compact, 32);
    memcpy(sig->s, compact + 32, 32);
    sig->recid = (uint8_t)recid;
    rc = LMQ_OK;
out:
    secp256k1_context_destroy(ctx);
    return rc;
}

int eth_key_recover(const uint8_t hash[32], const struct eth_sig *sig,
                    uint8_t addr[ETH_ADDRESS_BYTES])
{
    LMQ_ASSERT(hash != NULL && sig != NULL && addr != NULL);
    const secp256k1_context *ctx = secp256k1_context_static;
    secp256k1_ecdsa_recoverable_signature rs;
    secp256k1_ecdsa_signature plain;
    secp256k1_pubkey pk;
    uint8_t compact[64];
    uint8_t ser[65];
    size_t ser_len = sizeof(ser);
    memset(addr, 0, ETH_ADDRESS_BYTES);
    memcpy(compact, sig->r, 32);
    memcpy(compact + 32, sig->s, 32);
    if (sig->recid > 1 ||
        secp256k1_ecdsa_recoverable_signature_parse_compact(ctx, &rs, compact, sig->recid) != 1) {
        return LMQ_EPROTO;
    }
    /* normalize returns 1 when s was high: such a signature is refused, not fixed. */
    int ok = secp256k1_ecdsa_recoverable_signature_convert(ctx, &plain, &rs);
    LMQ_ASSERT(ok == 1);
    if (secp256k1_ecdsa_signature_normalize(ctx, NULL, &plain) != 0 ||
        secp256k1_ecdsa_recover(ctx, &pk, &rs, hash) != 1) {
        return LMQ_EPROTO;
    }
    ok = secp256k1_ec_pubkey_serialize(ctx, ser, &ser_len, &pk, SECP256K1_EC_UNCOMPRESSED);
    LMQ_ASSERT(ok == 1 && ser_len == 65);
    eth_key_pub_address(ser + 1, addr);
    return LMQ_OK;
}
