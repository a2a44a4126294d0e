/*
 * The ethers cross-check's C side (test_eth_ethers.py, tests/js/eth_ethers.js does the same with
 * ethers 6): one JSON object per input line, one JSON object per output line.
 *   {"op":"address","key":K}            -> {"address": EIP-55 address of private key K}
 *   {"op":"keccak","data":HEX}          -> {"hash": keccak256}
 *   {"op":"tx","key":K,"type":0|2,"chainId":..,"nonce":..,"gasPrice"|"maxPriorityFeePerGas"+
 *    "maxFeePerGas":..,"gasLimit":..,"to":ADDR|null,"value":..,"data":HEX}
 *                                       -> {"raw":HEX,"hash":HEX}
 *   {"op":"parse","raw":HEX}            -> the transaction's fields, "from" and "hash"
 *   {"op":"abi","sig":S,"values":[..]}  -> {"selector","canonical","calldata","decoded"}
 *   {"op":"log","sig":S,"topics":[..],"data":HEX} -> {"args":{..}}
 * Numbers are decimal strings. A refused input prints {"error": reason}.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "eth/eth_abi.h"
#include "eth/eth_hex.h"
#include "eth/eth_keccak.h"
#include "eth/eth_key.h"
#include "eth/eth_tx.h"

#define TOOL_LINE_MAX_BYTES (1u << 20)
#define TOOL_HEX_MAX_BYTES (2u * ETH_TX_RAW_MAX_BYTES + 3u)
#define TOOL_TOPICS_MAX 4

static char tool_hex[TOOL_HEX_MAX_BYTES];
static uint8_t tool_bytes[ETH_TX_RAW_MAX_BYTES];

static const char *hex(const uint8_t *data, size_t len)
{
    if (eth_hex_encode(data, len, tool_hex, sizeof(tool_hex)) != LMQ_OK) {
        abort();
    }
    return tool_hex;
}

static json_t *dec(const struct eth_u256 *v)
{
    char text[ETH_U256_DEC_MAX_BYTES];
    eth_u256_to_dec(v, text);
    return json_string(text);
}

static json_t *dec64(uint64_t n)
{
    struct eth_u256 v;
    eth_u256_from_u64(&v, n);
    return dec(&v);
}

static int get_u256(const json_t *in, const char *key, struct eth_u256 *v)
{
    const char *s = json_string_value(json_object_get(in, key));
    return s != NULL ? eth_u256_parse(s, strlen(s), v) : LMQ_EINVAL;
}

static int get_u64(const json_t *in, const char *key, uint64_t *n)
{
    struct eth_u256 v;
    return get_u256(in, key, &v) == LMQ_OK && eth_u256_to_u64(&v, n) ? LMQ_OK : LMQ_EINVAL;
}

static int get_key(const json_t *in, uint8_t priv[32])
{
    const char *k = json_string_value(json_object_get(in, "key"));
    return k != NULL ? eth_hex_decode_exact(k, priv, 32) : LMQ_EINVAL;
}

static json_t *op_tx(const json_t *in)
{
    struct eth_tx tx = {0};
    uint8_t priv[32];
    uint8_t hash[32];
    size_t data_len = 0;
    struct lmq_buf raw = {0};
    const char *data = json_string_value(json_object_get(in, "data"));
    const json_t *to = json_object_get(in, "to");
    int rc = get_key(in, priv);
    tx.type = json_integer_value(json_object_get(in, "type")) == 2 ? ETH_TX_EIP1559 : ETH_TX_LEGACY;
    rc = rc != LMQ_OK ? rc : get_u64(in, "chainId", &tx.chain_id);
    rc = rc != LMQ_OK ? rc : get_u64(in, "nonce", &tx.nonce);
    rc = rc != LMQ_OK ? rc : get_u64(in, "gasLimit", &tx.gas_limit);
    rc = rc != LMQ_OK ? rc : get_u256(in, "value", &tx.value);
    if (tx.type == ETH_TX_EIP1559) {
        rc = rc != LMQ_OK ? rc : get_u256(in, "maxPriorityFeePerGas", &tx.max_priority_fee_per_gas);
        rc = rc != LMQ_OK ? rc : get_u256(in, "maxFeePerGas", &tx.max_fee_per_gas);
    } else {
        rc = rc != LMQ_OK ? rc : get_u256(in, "gasPrice", &tx.gas_price);
    }
    tx.has_to = json_is_string(to);
    if (tx.has_to) {
        rc = rc != LMQ_OK
                 ? rc
                 : eth_key_address_parse(json_string_value(to), json_string_length(to), tx.to);
    }
    if (rc == LMQ_OK && data != NULL) {
        rc = eth_hex_decode(data, strlen(data), tool_bytes, sizeof(tool_bytes), &data_len);
        tx.data = tool_bytes;
        tx.data_len = data_len;
    }
    rc = rc != LMQ_OK ? rc : eth_tx_sign(&tx, priv, &raw, hash);
    if (rc != LMQ_OK) {
        lmq_buf_release(&raw);
        return json_pack("{s:s}", "error", lmq_strerror(rc));
    }
    json_t *out = json_pack("{s:s}", "raw", hex(raw.data, raw.len));
    json_object_set_new(out, "hash", json_string(hex(hash, 32)));
    lmq_buf_release(&raw);
    return out;
}

static json_t *op_parse(const json_t *in)
{
    const char *text = json_string_value(json_object_get(in, "raw"));
    size_t len = 0;
    struct eth_tx tx;
    struct eth_tx_sig sig;
    uint8_t from[20];
    uint8_t hash[32];
    char err[256];
    char addr[ETH_ADDRESS_TEXT_BYTES];
    if (text == NULL ||
        eth_hex_decode(text, strlen(text), tool_bytes, sizeof(tool_bytes), &len) != 0 ||
        eth_tx_decode(tool_bytes, len, &tx, &sig, from, hash, err, sizeof(err)) != LMQ_OK) {
        return json_pack("{s:s}", "error", text == NULL ? "no raw" : err);
    }
    bool t2 = tx.type == ETH_TX_EIP1559;
    json_t *out = json_pack("{s:i,s:o,s:o,s:o,s:o}", "type", (int)tx.type, "chainId",
                            dec64(tx.chain_id), "nonce", dec64(tx.nonce), "gasLimit",
                            dec64(tx.gas_limit), "value", dec(&tx.value));
    json_object_set_new(out, "gasPrice", t2 ? json_null() : dec(&tx.gas_price));
    json_object_set_new(out, "maxPriorityFeePerGas",
                        t2 ? dec(&tx.max_priority_fee_per_gas) : json_null());
    json_object_set_new(out, "maxFeePerGas", t2 ? dec(&tx.max_fee_per_gas) : json_null());
    eth_key_address_text(tx.to, addr);
    json_object_set_new(out, "to", tx.has_to ? json_string(addr) : json_null());
    json_object_set_new(out, "data", json_string(hex(tx.data, tx.data_len)));
    json_object_set_new(out, "yParity", json_integer(sig.sig.recid));
    json_object_set_new(out, "r", json_string(hex(sig.sig.r, 32)));
    json_object_set_new(out, "s", json_string(hex(sig.sig.s, 32)));
    eth_key_address_text(from, addr);
    json_object_set_new(out, "from", json_string(addr));
    json_object_set_new(out, "hash", json_string(hex(hash, 32)));
    return out;
}

static json_t *op_abi(const json_t *in)
{
    static struct eth_abi_sig sig;
    char err[256];
    struct lmq_buf out = {0};
    json_t *decoded = NULL;
    uint8_t selector[4];
    const char *text = json_string_value(json_object_get(in, "sig"));
    if (text == NULL || eth_abi_parse(text, &sig, err, sizeof(err)) != LMQ_OK ||
        eth_abi_encode(&sig, json_object_get(in, "values"), true, &out, TOOL_LINE_MAX_BYTES, err,
                       sizeof(err)) != LMQ_OK ||
        eth_abi_decode(&sig, out.data + 4, out.len - 4, &decoded, err, sizeof(err)) != LMQ_OK) {
        lmq_buf_release(&out);
        return json_pack("{s:s}", "error", text == NULL ? "no sig" : err);
    }
    eth_abi_selector(&sig, selector);
    json_t *res = json_pack("{s:s,s:s,s:o}", "canonical", sig.canonical, "selector",
                            hex(selector, 4), "decoded", decoded);
    char *calldata = malloc(2 * out.len + 3);
    if (calldata == NULL || eth_hex_encode(out.data, out.len, calldata, 2 * out.len + 3) != 0) {
        abort();
    }
    json_object_set_new(res, "calldata", json_string(calldata));
    free(calldata);
    lmq_buf_release(&out);
    return res;
}

static json_t *op_log(const json_t *in)
{
    static struct eth_abi_sig sig;
    uint8_t topics[TOOL_TOPICS_MAX][32];
    char err[256];
    size_t len = 0;
    json_t *args = NULL;
    const json_t *list = json_object_get(in, "topics");
    const char *text = json_string_value(json_object_get(in, "sig"));
    const char *data = json_string_value(json_object_get(in, "data"));
    size_t n = json_array_size(list);
    if (text == NULL || data == NULL || n > TOOL_TOPICS_MAX ||
        eth_abi_parse(text, &sig, err, sizeof(err)) != LMQ_OK) {
        return json_pack("{s:s}", "error", "bad log input");
    }
    for (size_t i = 0; i < n; i++) {
        const char *t = json_string_value(json_array_get(list, i));
        if (t == NULL || eth_hex_decode_exact(t, topics[i], 32) != LMQ_OK) {
            return json_pack("{s:s}", "error", "bad topic");
        }
    }
    if (eth_hex_decode(data, strlen(data), tool_bytes, sizeof(tool_bytes), &len) != LMQ_OK ||
        eth_abi_decode_log(&sig, (const uint8_t(*)[32])topics, n, tool_bytes, len, &args, err,
                           sizeof(err)) != LMQ_OK) {
        return json_pack("{s:s}", "error", err);
    }
    return json_pack("{s:o}", "args", args);
}

static json_t *op_simple(const char *op, const json_t *in)
{
    uint8_t priv[32];
    uint8_t addr[20];
    uint8_t hash[32];
    char text[ETH_ADDRESS_TEXT_BYTES];
    size_t len = 0;
    if (strcmp(op, "address") == 0) {
        if (get_key(in, priv) != LMQ_OK || eth_key_address(priv, addr) != LMQ_OK) {
            return json_pack("{s:s}", "error", "bad key");
        }
        eth_key_address_text(addr, text);
        return json_pack("{s:s}", "address", text);
    }
    const char *data = json_string_value(json_object_get(in, "data"));
    if (data == NULL ||
        eth_hex_decode(data, strlen(data), tool_bytes, sizeof(tool_bytes), &len) != LMQ_OK) {
        return json_pack("{s:s}", "error", "bad data");
    }
    eth_keccak256(tool_bytes, len, hash);
    return json_pack("{s:s}", "hash", hex(hash, 32));
}

int main(void)
{
    char *line = malloc(TOOL_LINE_MAX_BYTES);
    if (line == NULL) {
        return 1;
    }
    while (fgets(line, TOOL_LINE_MAX_BYTES, stdin) != NULL) {
        json_error_t jerr;
        json_t *in = json_loads(line, 0, &jerr);
        const char *op = json_string_value(json_object_get(in, "op"));
        json_t *out = NULL;
        if (op == NULL) {
            out = json_pack("{s:s}", "error", "not a JSON object with \"op\"");
        } else if (strcmp(op, "tx") == 0) {
            out = op_tx(in);
        } else if (strcmp(op, "parse") == 0) {
            out = op_parse(in);
        } else if (strcmp(op, "abi") == 0) {
            out = op_abi(in);
        } else if (strcmp(op, "log") == 0) {
            out = op_log(in);
        } else {
            out = op_simple(op, in);
        }
        char *text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
        printf("%s\n", text != NULL ? text : "{\"error\":\"out of memory\"}");
        free(text);
        json_decref(out);
        json_decref(in);
    }
    free(line);
    return fflush(stdout) == 0 ? 0 : 1;
}
