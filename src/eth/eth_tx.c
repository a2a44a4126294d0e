/* EIP-1559 and EIP-155 transactions (eth_tx.h). */
#include "eth/eth_tx.h"

#include <string.h>

#include "eth/eth_keccak.h"
#include "eth/eth_rlp.h"

/* Field counts of the signed RLP lists. */
#define ETH_TX_1559_FIELDS 12
#define ETH_TX_LEGACY_FIELDS 9

static int eth_tx__check(const struct eth_tx *tx)
{
    LMQ_ASSERT(tx != NULL);
    if (tx->type != ETH_TX_LEGACY && tx->type != ETH_TX_EIP1559) {
        return LMQ_EINVAL;
    }
    if (tx->data_len > ETH_TX_DATA_MAX_BYTES || (tx->data == NULL && tx->data_len != 0)) {
        return LMQ_EINVAL;
    }
    /* EIP-1559: a node refuses a priority fee above the fee cap (big-endian: memcmp orders). */
    if (tx->type == ETH_TX_EIP1559 &&
        memcmp(tx->max_priority_fee_per_gas.be, tx->max_fee_per_gas.be, ETH_U256_BYTES) > 0) {
        return LMQ_EINVAL;
    }
    return LMQ_OK;
}

/* Appends the fields every form starts with, up to and including data (and the empty access
 * list for type 2). */
static int eth_tx__put_fields(struct lmq_buf *b, const struct eth_tx *tx)
{
    const size_t max = ETH_TX_RAW_MAX_BYTES;
    int rc = LMQ_OK;
    if (tx->type == ETH_TX_EIP1559) {
        rc = eth_rlp_put_u64(b, tx->chain_id, max);
        rc = rc != LMQ_OK ? rc : eth_rlp_put_u64(b, tx->nonce, max);
        rc = rc != LMQ_OK ? rc : eth_rlp_put_u256(b, &tx->max_priority_fee_per_gas, max);
        rc = rc != LMQ_OK ? rc : eth_rlp_put_u256(b, &tx->max_fee_per_gas, max);
    } else {
        rc = eth_rlp_put_u64(b, tx->nonce, max);
        rc = rc != LMQ_OK ? rc : eth_rlp_put_u256(b, &tx->gas_price, max);
    }
    rc = rc != LMQ_OK ? rc : eth_rlp_put_u64(b, tx->gas_limit, max);
    rc = rc != LMQ_OK ? rc : eth_rlp_put_bytes(b, tx->to, tx->has_to ? ETH_ADDRESS_BYTES : 0, max);
    rc = rc != LMQ_OK ? rc : eth_rlp_put_u256(b, &tx->value, max);
    rc = rc != LMQ_OK ? rc : eth_rlp_put_bytes(b, tx->data, tx->data_len, max);
    if (rc == LMQ_OK && tx->type == ETH_TX_EIP1559) {
        rc = eth_rlp_list_end(b, eth_rlp_list_begin(b), max); /* accessList: [] */
    }
    return rc;
}

/* Appends the whole transaction: unsigned (sig NULL: the signing payload, with EIP-155's
 * chainId, 0, 0 for legacy) or signed. */
static int eth_tx__encode(struct lmq_buf *b, const struct eth_tx *tx, const struct eth_tx_sig *sig)
{
    const size_t max = ETH_TX_RAW_MAX_BYTES;
    size_t start = b->len;
    int rc = LMQ_OK;
    if (tx->type == ETH_TX_EIP1559) {
        const uint8_t type = ETH_TX_EIP1559;
        rc = lmq_buf_append(b, &type, 1, max);
    }
    size_t mark = eth_rlp_list_begin(b);
    rc = rc != LMQ_OK ? rc : eth_tx__put_fields(b, tx);
    if (sig != NULL) {
        struct eth_u256 r;
        struct eth_u256 s;
        memcpy(r.be, sig->sig.r, 32);
        memcpy(s.be, sig->sig.s, 32);
        rc = rc != LMQ_OK ? rc : eth_rlp_put_u64(b, sig->v, max);
        rc = rc != LMQ_OK ? rc : eth_rlp_put_u256(b, &r, max);
        rc = rc != LMQ_OK ? rc : eth_rlp_put_u256(b, &s, max);
    } else if (tx->type == ETH_TX_LEGACY && tx->chain_id != 0) {
        rc = rc != LMQ_OK ? rc : eth_rlp_put_u64(b, tx->chain_id, max);
        rc = rc != LMQ_OK ? rc : eth_rlp_put_u64(b, 0, max);
        rc = rc != LMQ_OK ? rc : eth_rlp_put_u64(b, 0, max);
    }
    rc = rc != LMQ_OK ? rc : eth_rlp_list_end(b, mark, max);
    if (rc != LMQ_OK) {
        b->len = start;
    }
    return rc;
}

int eth_tx_signing_hash(const struct eth_tx *tx, uint8_t hash[32])
{
    LMQ_ASSERT(hash != NULL);
    int rc = eth_tx__check(tx);
    if (rc != LMQ_OK) {
        return rc;
    }
    if (tx->type == ETH_TX_EIP1559 && tx->chain_id == 0) {
        return LMQ_EINVAL;
    }
    struct lmq_buf b = {0};
    rc = eth_tx__encode(&b, tx, NULL);
    if (rc == LMQ_OK) {
        eth_keccak256(b.data, b.len, hash);
    }
    lmq_buf_release(&b);
    return rc == LMQ_ELIMIT ? LMQ_EINVAL : rc;
}

int eth_tx_sign(const struct eth_tx *tx, const uint8_t priv[ETH_PRIVKEY_BYTES], struct lmq_buf *raw,
                uint8_t hash[32])
{
    LMQ_ASSERT(tx != NULL && priv != NULL && raw != NULL && hash != NULL);
    uint8_t digest[32];
    struct eth_tx_sig sig;
    if (tx->chain_id == 0 || tx->chain_id > (UINT64_MAX - 36) / 2) {
        return LMQ_EINVAL; /* EIP-155 needs a chain id, and v must fit in 64 bits */
    }
    int rc = eth_tx_signing_hash(tx, digest);
    if (rc != LMQ_OK) {
        return rc;
    }
    rc = eth_key_sign(priv, digest, &sig.sig);
    if (rc != LMQ_OK) {
        return rc;
    }
    sig.v = tx->type == ETH_TX_EIP1559 ? sig.sig.recid : tx->chain_id * 2 + 35 + sig.sig.recid;
    size_t start = raw->len;
    rc = eth_tx__encode(raw, tx, &sig);
    if (rc != LMQ_OK) {
        return rc == LMQ_ELIMIT ? LMQ_EINVAL : rc;
    }
    eth_keccak256(raw->data + start, raw->len - start, hash);
    return LMQ_OK;
}

/* Reads the next list item as an unsigned integer (64 or 256 bits). */
static int eth_tx__next_u64(struct eth_rlp_iter *it, uint64_t *n)
{
    struct eth_rlp_item item;
    return eth_rlp_iter_next(it, &item) == LMQ_OK ? eth_rlp_get_u64(&item, n) : LMQ_EPROTO;
}

static int eth_tx__next_u256(struct eth_rlp_iter *it, struct eth_u256 *v)
{
    struct eth_rlp_item item;
    return eth_rlp_iter_next(it, &item) == LMQ_OK ? eth_rlp_get_u256(&item, v) : LMQ_EPROTO;
}

/* Reads the fields after the type-specific prefix: gas, to, value, data. */
static int eth_tx__next_body(struct eth_rlp_iter *it, struct eth_tx *tx)
{
    struct eth_rlp_item item;
    if (eth_tx__next_u64(it, &tx->gas_limit) != LMQ_OK || eth_rlp_iter_next(it, &item) != LMQ_OK ||
        item.is_list || (item.len != 0 && item.len != ETH_ADDRESS_BYTES)) {
        return LMQ_EPROTO;
    }
    tx->has_to = item.len == ETH_ADDRESS_BYTES;
    if (tx->has_to) {
        memcpy(tx->to, item.data, ETH_ADDRESS_BYTES);
    }
    if (eth_tx__next_u256(it, &tx->value) != LMQ_OK || eth_rlp_iter_next(it, &item) != LMQ_OK ||
        item.is_list || item.len > ETH_TX_DATA_MAX_BYTES) {
        return LMQ_EPROTO;
    }
    tx->data = item.len > 0 ? item.data : NULL;
    tx->data_len = item.len;
    return LMQ_OK;
}

/* Reads v, r, s; the item after them must be the end of the list. */
static int eth_tx__next_sig(struct eth_rlp_iter *it, struct eth_tx_sig *sig)
{
    struct eth_u256 r;
    struct eth_u256 s;
    struct eth_rlp_item extra;
    if (eth_tx__next_u64(it, &sig->v) != LMQ_OK || eth_tx__next_u256(it, &r) != LMQ_OK ||
        eth_tx__next_u256(it, &s) != LMQ_OK || eth_rlp_iter_next(it, &extra) != LMQ_ENOTFOUND) {
        return LMQ_EPROTO;
    }
    memcpy(sig->sig.r, r.be, 32);
    memcpy(sig->sig.s, s.be, 32);
    return LMQ_OK;
}

static int eth_tx__decode_fields(const uint8_t *raw, size_t raw_len, struct eth_tx *tx,
                                 struct eth_tx_sig *sig, const char **why)
{
    struct eth_rlp_item list;
    struct eth_rlp_iter it;
    size_t typed = raw_len > 0 && raw[0] < 0x80 ? 1 : 0;
    if (typed == 1 && raw[0] != ETH_TX_EIP1559) {
        *why = "unsupported transaction type (only 2 and legacy)";
        return LMQ_EPROTO;
    }
    tx->type = typed == 1 ? ETH_TX_EIP1559 : ETH_TX_LEGACY;
    if (eth_rlp_decode(raw + typed, raw_len - typed, &list) != LMQ_OK || !list.is_list) {
        *why = "not one canonical RLP list";
        return LMQ_EPROTO;
    }
    eth_rlp_iter_init(&it, &list);
    *why = "bad field";
    if (typed == 1) {
        struct eth_rlp_item access;
        if (eth_tx__next_u64(&it, &tx->chain_id) != LMQ_OK ||
            eth_tx__next_u64(&it, &tx->nonce) != LMQ_OK ||
            eth_tx__next_u256(&it, &tx->max_priority_fee_per_gas) != LMQ_OK ||
            eth_tx__next_u256(&it, &tx->max_fee_per_gas) != LMQ_OK ||
            eth_tx__next_body(&it, tx) != LMQ_OK || eth_rlp_iter_next(&it, &access) != LMQ_OK ||
            !access.is_list || eth_tx__next_sig(&it, sig) != LMQ_OK) {
            return LMQ_EPROTO;
        }
        if (access.len != 0) {
            *why = "non-empty access lists are not supported";
            return LMQ_EPROTO;
        }
        if (sig->v > 1) {
            *why = "yParity is not 0 or 1";
            return LMQ_EPROTO;
        }
        sig->sig.recid = (uint8_t)sig->v;
        return LMQ_OK;
    }
    if (eth_tx__next_u64(&it, &tx->nonce) != LMQ_OK ||
        eth_tx__next_u256(&it, &tx->gas_price) != LMQ_OK || eth_tx__next_body(&it, tx) != LMQ_OK ||
        eth_tx__next_sig(&it, sig) != LMQ_OK) {
        return LMQ_EPROTO;
    }
    if (sig->v == 27 || sig->v == 28) {
        tx->chain_id = 0;
    } else if (sig->v >= 37) {
        tx->chain_id = (sig->v - 35) / 2;
    } else {
        *why = "legacy v is neither 27/28 nor EIP-155's chainId * 2 + 35/36";
        return LMQ_EPROTO;
    }
    sig->sig.recid = (uint8_t)(tx->chain_id == 0 ? sig->v - 27 : (sig->v - 35) % 2);
    return LMQ_OK;
}

int eth_tx_decode(const uint8_t *raw, size_t raw_len, struct eth_tx *tx, struct eth_tx_sig *sig,
                  uint8_t sender[ETH_ADDRESS_BYTES], uint8_t hash[32], char *err, size_t err_len)
{
    LMQ_ASSERT(tx != NULL && (raw != NULL || raw_len == 0));
    struct eth_tx_sig sig_local;
    uint8_t digest[32];
    uint8_t from[ETH_ADDRESS_BYTES];
    const char *why = "bad field";
    memset(tx, 0, sizeof(*tx));
    memset(&sig_local, 0, sizeof(sig_local));
    if (raw_len > ETH_TX_RAW_MAX_BYTES) {
        why = "longer than ETH_TX_RAW_MAX_BYTES";
        goto fail;
    }
    if (eth_tx__decode_fields(raw, raw_len, tx, &sig_local, &why) != LMQ_OK) {
        goto fail;
    }
    if (eth_tx_signing_hash(tx, digest) != LMQ_OK) {
        why = "fields out of range";
        goto fail;
    }
    if (eth_key_recover(digest, &sig_local.sig, from) != LMQ_OK) {
        why = "bad signature (r, s out of range, high s, or not recoverable)";
        goto fail;
    }
    if (sig != NULL) {
        *sig = sig_local;
    }
    if (sender != NULL) {
        memcpy(sender, from, ETH_ADDRESS_BYTES);
    }
    if (hash != NULL) {
        eth_keccak256(raw, raw_len, hash);
    }
    return LMQ_OK;
fail:
    memset(tx, 0, sizeof(*tx));
    lmq_errf(err, err_len, "raw transaction: %s", why);
    return LMQ_EPROTO;
}
