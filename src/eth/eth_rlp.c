/* RLP encoding and strict decoding (eth_rlp.h). */
#include "eth/eth_rlp.h"

#include <string.h>

#define ETH_RLP_SHORT_MAX 55 /* payloads up to this length have a one-byte header */
#define ETH_RLP_HEADER_MAX_BYTES 9

/* Writes the header for a payload of len bytes with base 0x80 (string) or 0xc0 (list). */
static size_t eth_rlp__header(uint8_t out[ETH_RLP_HEADER_MAX_BYTES], uint8_t base, size_t len)
{
    if (len <= ETH_RLP_SHORT_MAX) {
        out[0] = (uint8_t)(base + len);
        return 1;
    }
    size_t n = 0;
    for (size_t x = len; x != 0; x >>= 8) {
        n++;
    }
    LMQ_ASSERT(n >= 1 && n <= 8);
    out[0] = (uint8_t)(base + ETH_RLP_SHORT_MAX + n);
    for (size_t i = 0; i < n; i++) {
        out[n - i] = (uint8_t)(len >> (8 * i));
    }
    return n + 1;
}

int eth_rlp_put_bytes(struct lmq_buf *b, const uint8_t *data, size_t len, size_t max_bytes)
{
    LMQ_ASSERT(b != NULL && (data != NULL || len == 0));
    if (len == 1 && data[0] < 0x80) {
        return lmq_buf_append(b, data, 1, max_bytes);
    }
    uint8_t head[ETH_RLP_HEADER_MAX_BYTES];
    size_t head_len = eth_rlp__header(head, 0x80, len);
    int rc = lmq_buf_reserve(b, head_len + len, max_bytes);
    if (rc != LMQ_OK) {
        return rc;
    }
    memcpy(b->data + b->len, head, head_len);
    if (len > 0) {
        memcpy(b->data + b->len + head_len, data, len);
    }
    b->len += head_len + len;
    return LMQ_OK;
}

int eth_rlp_put_u64(struct lmq_buf *b, uint64_t n, size_t max_bytes)
{
    struct eth_u256 v;
    eth_u256_from_u64(&v, n);
    return eth_rlp_put_u256(b, &v, max_bytes);
}

int eth_rlp_put_u256(struct lmq_buf *b, const struct eth_u256 *v, size_t max_bytes)
{
    LMQ_ASSERT(b != NULL && v != NULL);
    size_t len = eth_u256_len(v);
    return eth_rlp_put_bytes(b, v->be + ETH_U256_BYTES - len, len, max_bytes);
}

size_t eth_rlp_list_begin(const struct lmq_buf *b)
{
    LMQ_ASSERT(b != NULL);
    return b->len;
}

int eth_rlp_list_end(struct lmq_buf *b, size_t mark, size_t max_bytes)
{
    LMQ_ASSERT(b != NULL && mark <= b->len);
    size_t payload = b->len - mark;
    uint8_t head[ETH_RLP_HEADER_MAX_BYTES];
    size_t head_len = eth_rlp__header(head, 0xc0, payload);
    int rc = lmq_buf_reserve(b, head_len, max_bytes);
    if (rc != LMQ_OK) {
        b->len = mark;
        return rc;
    }
    memmove(b->data + mark + head_len, b->data + mark, payload);
    memcpy(b->data + mark, head, head_len);
    b->len += head_len;
    return LMQ_OK;
}

/* Reads one item's header at data[0..len): the item and the bytes it spans (*used). */
static int eth_rlp__item(const uint8_t *data, size_t len, struct eth_rlp_item *item, size_t *used)
{
    LMQ_ASSERT(item != NULL && used != NULL);
    if (len == 0) {
        return LMQ_EPROTO;
    }
    uint8_t h = data[0];
    size_t head = 1;
    size_t payload = 0;
    item->is_list = h >= 0xc0;
    if (h < 0x80) {
        item->data = data;
        item->len = 1;
        *used = 1;
        return LMQ_OK;
    }
    uint8_t base = item->is_list ? 0xc0 : 0x80;
    if (h - base <= ETH_RLP_SHORT_MAX) {
        payload = (size_t)(h - base);
        /* A single byte below 0x80 has its own encoding: wrapping it is not canonical. */
        if (!item->is_list && payload == 1 && (len < 2 || data[1] < 0x80)) {
            return LMQ_EPROTO;
        }
    } else {
        size_t n = (size_t)(h - base - ETH_RLP_SHORT_MAX);
        if (n > sizeof(size_t) || len < 1 + n || data[1] == 0) {
            return LMQ_EPROTO; /* too long, truncated, or a length with leading zeros */
        }
        for (size_t i = 0; i < n; i++) {
            payload = payload << 8 | data[1 + i];
        }
        if (payload <= ETH_RLP_SHORT_MAX) {
            return LMQ_EPROTO; /* the long form for a length the short form covers */
        }
        head += n;
    }
    if (payload > len - head) {
        return LMQ_EPROTO;
    }
    item->data = data + head;
    item->len = payload;
    *used = head + payload;
    return LMQ_OK;
}

static int eth_rlp__check(const struct eth_rlp_item *item, unsigned depth)
{
    if (!item->is_list) {
        return LMQ_OK;
    }
    if (depth >= ETH_RLP_DEPTH_MAX) {
        return LMQ_EPROTO;
    }
    struct eth_rlp_iter it;
    eth_rlp_iter_init(&it, item);
    /* Each item spans at least one byte, so this loop ends within item->len rounds. */
    for (size_t round = 0; round <= item->len; round++) {
        struct eth_rlp_item child;
        int rc = eth_rlp_iter_next(&it, &child);
        if (rc == LMQ_ENOTFOUND) {
            return LMQ_OK;
        }
        if (rc != LMQ_OK || eth_rlp__check(&child, depth + 1) != LMQ_OK) {
            return LMQ_EPROTO;
        }
    }
    LMQ_UNREACHABLE("an RLP list yielded more items than it has bytes");
}

int eth_rlp_decode(const uint8_t *data, size_t len, struct eth_rlp_item *item)
{
    LMQ_ASSERT(item != NULL && (data != NULL || len == 0));
    size_t used = 0;
    memset(item, 0, sizeof(*item));
    int rc = eth_rlp__item(data, len, item, &used);
    if (rc != LMQ_OK || used != len || eth_rlp__check(item, 0) != LMQ_OK) {
        memset(item, 0, sizeof(*item));
        return LMQ_EPROTO;
    }
    return LMQ_OK;
}

void eth_rlp_iter_init(struct eth_rlp_iter *it, const struct eth_rlp_item *list)
{
    LMQ_ASSERT(it != NULL && list != NULL && list->is_list);
    it->p = list->data;
    it->left = list->len;
}

int eth_rlp_iter_next(struct eth_rlp_iter *it, struct eth_rlp_item *item)
{
    LMQ_ASSERT(it != NULL && item != NULL);
    if (it->left == 0) {
        return LMQ_ENOTFOUND;
    }
    size_t used = 0;
    int rc = eth_rlp__item(it->p, it->left, item, &used);
    if (rc != LMQ_OK) {
        return rc;
    }
    LMQ_ASSERT(used >= 1 && used <= it->left);
    it->p += used;
    it->left -= used;
    return LMQ_OK;
}

int eth_rlp_get_u256(const struct eth_rlp_item *item, struct eth_u256 *v)
{
    LMQ_ASSERT(item != NULL && v != NULL);
    memset(v, 0, sizeof(*v));
    if (item->is_list || item->len > ETH_U256_BYTES || (item->len > 0 && item->data[0] == 0)) {
        return LMQ_EPROTO;
    }
    if (item->len > 0) {
        memcpy(v->be + ETH_U256_BYTES - item->len, item->data, item->len);
    }
    return LMQ_OK;
}

int eth_rlp_get_u64(const struct eth_rlp_item *item, uint64_t *n)
{
    LMQ_ASSERT(item != NULL && n != NULL);
    struct eth_u256 v;
    *n = 0;
    if (item->len > 8 || eth_rlp_get_u256(item, &v) != LMQ_OK) {
        return LMQ_EPROTO;
    }
    bool fits = eth_u256_to_u64(&v, n);
    LMQ_ASSERT(fits);
    return LMQ_OK;
}
