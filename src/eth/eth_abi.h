/*
 * The Solidity contract ABI: function selectors, event topics, and encoding/decoding of the
 * elementary types (uintN, intN, address, bool, bytesN), `bytes`, `string`, and arrays T[] and
 * T[k] of any of them (nested up to ETH_ABI_NEST_MAX). Tuples (structs) are not supported.
 *
 * Values are JSON (jansson), the way ethers and JSON-RPC users write them:
 *   uintN, intN  in: a decimal string ("-" allowed for intN), a "0x" hex string (uintN) or a JSON
 *                integer; out: a decimal string
 *   address      in: "0x" + 40 hex digits (mixed case must be the EIP-55 checksum);
 *                out: the EIP-55 checksum form
 *   bool         true / false
 *   bytesN       "0x" + exactly 2N hex digits; bytes: "0x" + any even number of hex digits
 *                (out: lowercase)
 *   string       a JSON string (UTF-8); decoding refuses bytes that are not UTF-8
 *   T[], T[k]    a JSON array (exactly k items for T[k])
 * Decoding is strict: bits above N in uintN/intN/address words, bool words other than 0 or 1,
 * non-zero padding, offsets or lengths out of bounds are refused (LMQ_EPROTO), never masked.
 */
#ifndef ETH_ABI_H
#define ETH_ABI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/lmq.h"

#define ETH_ABI_PARAMS_MAX 32             /* parameters of one function or event */
#define ETH_ABI_TYPES_MAX 128             /* type nodes of one signature (each [] is one more) */
#define ETH_ABI_NEST_MAX 8                /* array suffixes on one type */
#define ETH_ABI_ARRAY_LEN_MAX 4096        /* k of T[k] */
#define ETH_ABI_NAME_MAX_BYTES 64         /* function, event and parameter names, with the NUL */
#define ETH_ABI_SIG_MAX_BYTES 1024        /* signature text, and its canonical form */
#define ETH_ABI_HEAD_MAX_BYTES (1u << 20) /* largest static (in-place) size of one type */
#define ETH_ABI_DECODE_VALUES_MAX 65536   /* values one decode may produce */
#define ETH_ABI_SELECTOR_BYTES 4

enum eth_abi_kind {
    ETH_ABI_UINT,
    ETH_ABI_INT,
    ETH_ABI_ADDRESS,
    ETH_ABI_BOOL,
    ETH_ABI_FIXED_BYTES, /* bytesN */
    ETH_ABI_BYTES,
    ETH_ABI_STRING,
    ETH_ABI_ARRAY,     /* T[k] */
    ETH_ABI_DYN_ARRAY, /* T[] */
};

struct eth_abi_type {
    enum eth_abi_kind kind;
    size_t size;                     /* bits of uintN/intN, N of bytesN, k of T[k] */
    const struct eth_abi_type *elem; /* T of T[k] and T[] */
};

struct eth_abi_param {
    const struct eth_abi_type *type;
    bool indexed;
    char name[ETH_ABI_NAME_MAX_BYTES]; /* "" when unnamed */
};

/* A parsed function or event signature. Fills itself; copy it as a whole (it points into
 * itself: never memcpy one into another). */
struct eth_abi_sig {
    char name[ETH_ABI_NAME_MAX_BYTES];
    size_t param_count;
    struct eth_abi_param params[ETH_ABI_PARAMS_MAX];
    char canonical[ETH_ABI_SIG_MAX_BYTES]; /* "Transfer(address,address,uint256)" */
    size_t pool_used;
    struct eth_abi_type pool[ETH_ABI_TYPES_MAX];
};

/* Parses "name(type [indexed] [pname], ...)" (the name may be absent: "(uint256,string)" is a
 * bare parameter list). `uint`/`int` mean uint256/int256. Returns 0 or LMQ_EINVAL (err says
 * where and why). */
int eth_abi_parse(const char *text, struct eth_abi_sig *sig, char *err, size_t err_len) LMQ_WUR;
/* The first 4 bytes of keccak256(canonical signature). */
void eth_abi_selector(const struct eth_abi_sig *sig, uint8_t out[ETH_ABI_SELECTOR_BYTES]);
/* An event's topic 0: keccak256(canonical signature). */
void eth_abi_topic0(const struct eth_abi_sig *sig, uint8_t out[32]);

/* Appends the encoding of values (a JSON array, one item per parameter) to out, bounded by
 * max_bytes. with_selector puts the 4-byte selector first (calldata). Returns 0 or LMQ_EINVAL (a
 * value does not fit its type, or the encoding would pass max_bytes or memory ran out: err says
 * which); out is unchanged on failure. */
int eth_abi_encode(const struct eth_abi_sig *sig, const json_t *values, bool with_selector,
                   struct lmq_buf *out, size_t max_bytes, char *err, size_t err_len) LMQ_WUR;
/* Decodes data[0..len) as the parameters of sig into a new JSON array (*values, the caller's).
 * Returns 0, LMQ_EPROTO (err says why) or LMQ_ENOMEM. Bytes after the encoding are allowed (the
 * ABI does not forbid them). */
int eth_abi_decode(const struct eth_abi_sig *sig, const uint8_t *data, size_t len, json_t **values,
                   char *err, size_t err_len) LMQ_WUR;
/* Decodes an event log: topics[0] must be the event's topic 0 and there must be one more topic
 * per indexed parameter; the others come from data. *args is a new JSON object, keyed by
 * parameter name (by its position, "0", "1", ..., when unnamed), in declaration order. An
 * indexed `bytes`, `string` or array is stored by the chain as its keccak256 only: its value
 * is that hash ("0x" + 64 hex digits). Anonymous events are not supported. */
int eth_abi_decode_log(const struct eth_abi_sig *sig, const uint8_t (*topics)[32],
                       size_t topic_count, const uint8_t *data, size_t len, json_t **args,
                       char *err, size_t err_len) LMQ_WUR;

#endif
