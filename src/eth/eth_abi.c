/* The contract ABI (eth_abi.h): signatures, selectors, encoding and strict decoding. */
#include "eth/eth_abi.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "eth/eth_hex.h"
#include "eth/eth_keccak.h"
#include "eth/eth_key.h"

#define ETH_ABI_WORD 32

/* --- parsing ------------------------------------------------------------------------------- */

struct eth_abi__parser {
    const char *p;
    struct eth_abi_sig *sig;
    char *err;
    size_t err_len;
};

static int eth_abi__fail(struct eth_abi__parser *ps, const char *why)
{
    lmq_errf(ps->err, ps->err_len, "ABI signature: %s at \"%.20s\"", why, ps->p);
    return LMQ_EINVAL;
}

static void eth_abi__skip_space(struct eth_abi__parser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n') {
        ps->p++;
    }
}

static bool eth_abi__ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '$';
}

/* Reads an identifier into out (ETH_ABI_NAME_MAX_BYTES); an empty one is allowed. */
static int eth_abi__ident(struct eth_abi__parser *ps, char *out)
{
    size_t n = 0;
    while (eth_abi__ident_char(ps->p[n])) {
        if (n + 1 >= ETH_ABI_NAME_MAX_BYTES) {
            return eth_abi__fail(ps, "name too long");
        }
        n++;
    }
    memcpy(out, ps->p, n);
    out[n] = '\0';
    ps->p += n;
    return LMQ_OK;
}

/* Reads decimal digits as a size (0 digits: *n = 0, *digits = 0). */
static int eth_abi__number(struct eth_abi__parser *ps, size_t max, size_t *n, size_t *digits)
{
    *n = 0;
    *digits = 0;
    while (isdigit((unsigned char)*ps->p)) {
        *n = *n * 10 + (size_t)(*ps->p - '0');
        (*digits)++;
        ps->p++;
        if (*n > max || *digits > 6) {
            return eth_abi__fail(ps, "number too large");
        }
    }
    return LMQ_OK;
}

static struct eth_abi_type *eth_abi__new_type(struct eth_abi__parser *ps)
{
    if (ps->sig->pool_used >= ETH_ABI_TYPES_MAX) {
        return NULL;
    }
    struct eth_abi_type *t = &ps->sig->pool[ps->sig->pool_used++];
    memset(t, 0, sizeof(*t));
    return t;
}

/* The elementary type at ps->p ("uint256", "address", ...). */
static int eth_abi__base(struct eth_abi__parser *ps, struct eth_abi_type *t)
{
    static const struct {
        const char *word;
        enum eth_abi_kind kind;
    } bases[] = {{"uint", ETH_ABI_UINT}, {"int", ETH_ABI_INT},     {"address", ETH_ABI_ADDRESS},
                 {"bool", ETH_ABI_BOOL}, {"bytes", ETH_ABI_BYTES}, {"string", ETH_ABI_STRING}};
    char word[ETH_ABI_NAME_MAX_BYTES];
    size_t n = 0;
    while (isalpha((unsigned char)ps->p[n]) && n + 1 < sizeof(word)) {
        word[n] = ps->p[n];
        n++;
    }
    word[n] = '\0';
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bases); i++) {
        if (strcmp(word, bases[i].word) != 0) {
            continue;
        }
        ps->p += n;
        size_t size = 0;
        size_t digits = 0;
        if (eth_abi__number(ps, 256, &size, &digits) != LMQ_OK) {
            return LMQ_EINVAL;
        }
        t->kind = bases[i].kind;
        if (t->kind == ETH_ABI_UINT || t->kind == ETH_ABI_INT) {
            t->size = digits == 0 ? 256 : size;
            if (t->size < 8 || t->size > 256 || t->size % 8 != 0) {
                return eth_abi__fail(ps, "uintN/intN needs N in 8..256, a multiple of 8");
            }
        } else if (t->kind == ETH_ABI_BYTES && digits > 0) {
            t->kind = ETH_ABI_FIXED_BYTES;
            t->size = size;
            if (size < 1 || size > 32) {
                return eth_abi__fail(ps, "bytesN needs N in 1..32");
            }
        } else if (digits > 0) {
            return eth_abi__fail(ps, "unexpected digits after the type");
        }
        return LMQ_OK;
    }
    return eth_abi__fail(ps, *ps->p == '(' ? "tuples are not supported" : "unknown type");
}

/* Static (in-place) size of t in bytes, or 32 for a dynamic type (its offset). */
static size_t eth_abi__head_size(const struct eth_abi_type *t);

static bool eth_abi__dynamic(const struct eth_abi_type *t)
{
    switch (t->kind) {
    case ETH_ABI_BYTES:
    case ETH_ABI_STRING:
    case ETH_ABI_DYN_ARRAY:
        return true;
    case ETH_ABI_ARRAY:
        return eth_abi__dynamic(t->elem);
    default:
        return false;
    }
}

static size_t eth_abi__head_size(const struct eth_abi_type *t)
{
    if (t->kind == ETH_ABI_ARRAY && !eth_abi__dynamic(t)) {
        return t->size * eth_abi__head_size(t->elem); /* bounded at parse time */
    }
    return ETH_ABI_WORD;
}

/* A type: a base and up to ETH_ABI_NEST_MAX "[k]" or "[]" suffixes (the last is outermost). */
static int eth_abi__type(struct eth_abi__parser *ps, const struct eth_abi_type **out)
{
    struct eth_abi_type *t = eth_abi__new_type(ps);
    if (t == NULL) {
        return eth_abi__fail(ps, "too many types");
    }
    if (eth_abi__base(ps, t) != LMQ_OK) {
        return LMQ_EINVAL;
    }
    for (int nest = 0; *ps->p == '['; nest++) {
        size_t k = 0;
        size_t digits = 0;
        ps->p++;
        if (nest >= ETH_ABI_NEST_MAX ||
            eth_abi__number(ps, ETH_ABI_ARRAY_LEN_MAX, &k, &digits) != LMQ_OK) {
            return nest >= ETH_ABI_NEST_MAX ? eth_abi__fail(ps, "arrays nested too deep")
                                            : LMQ_EINVAL;
        }
        if (*ps->p != ']' || (digits > 0 && k == 0)) {
            return eth_abi__fail(ps, "bad array suffix");
        }
        ps->p++;
        struct eth_abi_type *arr = eth_abi__new_type(ps);
        if (arr == NULL) {
            return eth_abi__fail(ps, "too many types");
        }
        arr->kind = digits > 0 ? ETH_ABI_ARRAY : ETH_ABI_DYN_ARRAY;
        arr->size = k;
        arr->elem = t;
        if (!eth_abi__dynamic(t) && eth_abi__head_size(t) * k > ETH_ABI_HEAD_MAX_BYTES) {
            return eth_abi__fail(ps, "fixed-size array too large");
        }
        t = arr;
    }
    *out = t;
    return LMQ_OK;
}

/* Appends the canonical text of t to the canonical signature. */
static int eth_abi__canon(struct eth_abi_sig *sig, size_t *len, const struct eth_abi_type *t)
{
    static const char *const names[] = {"uint",  "int",   "address", "bool",
                                        "bytes", "bytes", "string"};
    size_t cap = sizeof(sig->canonical) - *len;
    int n = 0;
    if (t->kind == ETH_ABI_ARRAY || t->kind == ETH_ABI_DYN_ARRAY) {
        if (eth_abi__canon(sig, len, t->elem) != LMQ_OK) {
            return LMQ_EINVAL;
        }
        cap = sizeof(sig->canonical) - *len;
        n = t->kind == ETH_ABI_ARRAY ? snprintf(sig->canonical + *len, cap, "[%zu]", t->size)
                                     : snprintf(sig->canonical + *len, cap, "[]");
    } else if (t->kind == ETH_ABI_UINT || t->kind == ETH_ABI_INT ||
               t->kind == ETH_ABI_FIXED_BYTES) {
        n = snprintf(sig->canonical + *len, cap, "%s%zu", names[t->kind], t->size);
    } else {
        n = snprintf(sig->canonical + *len, cap, "%s", names[t->kind]);
    }
    if (n < 0 || (size_t)n >= cap) {
        return LMQ_EINVAL;
    }
    *len += (size_t)n;
    return LMQ_OK;
}

static int eth_abi__param(struct eth_abi__parser *ps, struct eth_abi_param *param)
{
    eth_abi__skip_space(ps);
    if (eth_abi__type(ps, &param->type) != LMQ_OK) {
        return LMQ_EINVAL;
    }
    eth_abi__skip_space(ps);
    if (strncmp(ps->p, "indexed", 7) == 0 && !eth_abi__ident_char(ps->p[7])) {
        param->indexed = true;
        ps->p += 7;
        eth_abi__skip_space(ps);
    }
    if (eth_abi__ident(ps, param->name) != LMQ_OK) {
        return LMQ_EINVAL;
    }
    eth_abi__skip_space(ps);
    for (size_t i = 0; param->name[0] != '\0' && &ps->sig->params[i] != param; i++) {
        if (strcmp(ps->sig->params[i].name, param->name) == 0) {
            return eth_abi__fail(ps, "duplicate parameter name");
        }
    }
    return LMQ_OK;
}

static int eth_abi__params(struct eth_abi__parser *ps)
{
    struct eth_abi_sig *sig = ps->sig;
    eth_abi__skip_space(ps);
    if (*ps->p == ')') {
        ps->p++;
        return LMQ_OK;
    }
    for (;;) {
        if (sig->param_count >= ETH_ABI_PARAMS_MAX) {
            return eth_abi__fail(ps, "too many parameters");
        }
        if (eth_abi__param(ps, &sig->params[sig->param_count++]) != LMQ_OK) {
            return LMQ_EINVAL;
        }
        if (*ps->p == ')') {
            ps->p++;
            return LMQ_OK;
        }
        if (*ps->p != ',') {
            return eth_abi__fail(ps, "expected ',' or ')'");
        }
        ps->p++;
    }
}

int eth_abi_parse(const char *text, struct eth_abi_sig *sig, char *err, size_t err_len)
{
    LMQ_ASSERT(text != NULL && sig != NULL);
    memset(sig, 0, sizeof(*sig));
    struct eth_abi__parser ps = {.p = text, .sig = sig, .err = err, .err_len = err_len};
    size_t len = 0;
    if (strlen(text) >= ETH_ABI_SIG_MAX_BYTES) {
        lmq_errf(err, err_len, "ABI signature: longer than %d bytes", ETH_ABI_SIG_MAX_BYTES - 1);
        return LMQ_EINVAL;
    }
    eth_abi__skip_space(&ps);
    if (eth_abi__ident(&ps, sig->name) != LMQ_OK) {
        goto fail;
    }
    if (*ps.p != '(') {
        eth_abi__fail(&ps, "expected '('");
        goto fail;
    }
    ps.p++;
    if (eth_abi__params(&ps) != LMQ_OK) {
        goto fail;
    }
    eth_abi__skip_space(&ps);
    if (*ps.p != '\0') {
        eth_abi__fail(&ps, "unexpected text after ')'");
        goto fail;
    }
    len = (size_t)snprintf(sig->canonical, sizeof(sig->canonical), "%s(", sig->name);
    for (size_t i = 0; i < sig->param_count; i++) {
        bool comma_fits = i == 0 || len + 1 < sizeof(sig->canonical);
        if (i > 0 && comma_fits) {
            sig->canonical[len++] = ',';
        }
        if (!comma_fits || eth_abi__canon(sig, &len, sig->params[i].type) != LMQ_OK) {
            eth_abi__fail(&ps, "canonical signature too long");
            goto fail;
        }
    }
    if (len + 2 > sizeof(sig->canonical)) {
        eth_abi__fail(&ps, "canonical signature too long");
        goto fail;
    }
    sig->canonical[len++] = ')';
    sig->canonical[len] = '\0';
    LMQ_ASSERT(sig->param_count <= ETH_ABI_PARAMS_MAX && sig->pool_used <= ETH_ABI_TYPES_MAX);
    return LMQ_OK;
fail:
    memset(sig, 0, sizeof(*sig));
    return LMQ_EINVAL;
}

void eth_abi_topic0(const struct eth_abi_sig *sig, uint8_t out[32])
{
    LMQ_ASSERT(sig != NULL && out != NULL && sig->canonical[0] != '\0');
    eth_keccak256((const uint8_t *)sig->canonical, strlen(sig->canonical), out);
}

void eth_abi_selector(const struct eth_abi_sig *sig, uint8_t out[ETH_ABI_SELECTOR_BYTES])
{
    uint8_t hash[32];
    eth_abi_topic0(sig, hash);
    memcpy(out, hash, ETH_ABI_SELECTOR_BYTES);
}

/* --- encoding ------------------------------------------------------------------------------ */

struct eth_abi__enc {
    struct lmq_buf *out;
    size_t max;
    char *err;
    size_t err_len;
};

static int eth_abi__enc_fail(struct eth_abi__enc *e, const char *why)
{
    lmq_errf(e->err, e->err_len, "ABI encode: %s", why);
    return LMQ_EINVAL;
}

/* Whether the word holds a value of t (uintN, intN, address: the bits above N are zero, or for
 * intN copies of the sign bit). */
static bool eth_abi__fits(const uint8_t w[ETH_ABI_WORD], const struct eth_abi_type *t)
{
    size_t bits = t->kind == ETH_ABI_ADDRESS ? 160 : t->size;
    size_t high = ETH_ABI_WORD - bits / 8;
    uint8_t fill = 0;
    if (t->kind == ETH_ABI_INT && high < ETH_ABI_WORD && (w[high] & 0x80) != 0) {
        fill = 0xff;
    }
    for (size_t i = 0; i < high; i++) {
        if (w[i] != fill) {
            return false;
        }
    }
    return true;
}

/* A JSON number or numeric string as a 256-bit two's complement word. */
static int eth_abi__number_word(const json_t *v, bool is_signed, struct eth_u256 *w)
{
    bool neg = false;
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        neg = x < 0;
        eth_u256_from_u64(w, neg ? (uint64_t)0 - (uint64_t)x : (uint64_t)x);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        neg = len > 0 && s[0] == '-';
        if (eth_u256_parse(s + neg, len - neg, w) != LMQ_OK) {
            return LMQ_EINVAL;
        }
    } else {
        return LMQ_EINVAL;
    }
    if (neg && !is_signed) {
        return LMQ_EINVAL;
    }
    if (neg && !eth_u256_is_zero(w)) {
        eth_u256_negate(w);
        if ((w->be[0] & 0x80) == 0) {
            return LMQ_EINVAL; /* the magnitude was over 2^255 */
        }
    } else if (is_signed && (w->be[0] & 0x80) != 0) {
        return LMQ_EINVAL;
    }
    return LMQ_OK;
}

/* Appends a length word and len bytes, zero-padded to a word; data may be hex text (hex). */
static int eth_abi__enc_blob(struct eth_abi__enc *e, const char *data, size_t len, bool hex)
{
    size_t n = hex ? (len >= 2 ? len - 2 : 0) / 2 : len;
    size_t padded = (n + ETH_ABI_WORD - 1) / ETH_ABI_WORD * ETH_ABI_WORD;
    struct eth_u256 w;
    if (hex && (len < 2 || data[0] != '0' || data[1] != 'x')) {
        return eth_abi__enc_fail(e, "bytes must be \"0x\" and hex digits");
    }
    if (n > e->max || lmq_buf_reserve(e->out, ETH_ABI_WORD + padded, e->max) != LMQ_OK) {
        return eth_abi__enc_fail(e, "encoding over its size bound");
    }
    uint8_t *dst = e->out->data + e->out->len;
    size_t got = n;
    if (hex && eth_hex_decode(data, len, dst + ETH_ABI_WORD, n, &got) != LMQ_OK) {
        return eth_abi__enc_fail(e, "bytes must be \"0x\" and an even number of hex digits");
    }
    if (!hex && n > 0) {
        memcpy(dst + ETH_ABI_WORD, data, n);
    }
    LMQ_ASSERT(got == n);
    eth_u256_from_u64(&w, n);
    memcpy(dst, w.be, ETH_ABI_WORD);
    memset(dst + ETH_ABI_WORD + n, 0, padded - n);
    e->out->len += ETH_ABI_WORD + padded;
    return LMQ_OK;
}

static int eth_abi__enc_seq(struct eth_abi__enc *e, const struct eth_abi_type *const *list,
                            const struct eth_abi_type *repeat, size_t count, const json_t *values);

static int eth_abi__enc_word(struct eth_abi__enc *e, const struct eth_abi_type *t, const json_t *v)
{
    struct eth_u256 w = {0};
    if (t->kind == ETH_ABI_UINT || t->kind == ETH_ABI_INT) {
        if (eth_abi__number_word(v, t->kind == ETH_ABI_INT, &w) != LMQ_OK ||
            !eth_abi__fits(w.be, t)) {
            return eth_abi__enc_fail(e, "a number out of its type's range, or not a number");
        }
    } else if (t->kind == ETH_ABI_ADDRESS) {
        if (!json_is_string(v) ||
            eth_key_address_parse(json_string_value(v), json_string_length(v),
                                  w.be + ETH_ABI_WORD - ETH_ADDRESS_BYTES) != LMQ_OK) {
            return eth_abi__enc_fail(e, "an address must be \"0x\" and 40 hex digits (EIP-55)");
        }
    } else if (t->kind == ETH_ABI_BOOL) {
        if (!json_is_boolean(v)) {
            return eth_abi__enc_fail(e, "a bool must be true or false");
        }
        w.be[ETH_ABI_WORD - 1] = json_is_true(v) ? 1 : 0;
    } else {
        LMQ_ASSERT(t->kind == ETH_ABI_FIXED_BYTES);
        size_t got = 0;
        if (!json_is_string(v) || strncmp(json_string_value(v), "0x", 2) != 0 ||
            eth_hex_decode(json_string_value(v), json_string_length(v), w.be, t->size, &got) !=
                LMQ_OK ||
            got != t->size) {
            return eth_abi__enc_fail(e, "bytesN must be \"0x\" and exactly 2N hex digits");
        }
    }
    return lmq_buf_append(e->out, w.be, ETH_ABI_WORD, e->max) == LMQ_OK
               ? LMQ_OK
               : eth_abi__enc_fail(e, "encoding over its size bound");
}

static int eth_abi__enc_value(struct eth_abi__enc *e, const struct eth_abi_type *t, const json_t *v)
{
    struct eth_u256 w;
    switch (t->kind) {
    case ETH_ABI_BYTES:
    case ETH_ABI_STRING:
        if (!json_is_string(v)) {
            return eth_abi__enc_fail(e, "bytes and string values must be JSON strings");
        }
        return eth_abi__enc_blob(e, json_string_value(v), json_string_length(v),
                                 t->kind == ETH_ABI_BYTES);
    case ETH_ABI_ARRAY:
        if (!json_is_array(v) || json_array_size(v) != t->size) {
            return eth_abi__enc_fail(e, "T[k] needs a JSON array of exactly k items");
        }
        return eth_abi__enc_seq(e, NULL, t->elem, t->size, v);
    case ETH_ABI_DYN_ARRAY:
        if (!json_is_array(v)) {
            return eth_abi__enc_fail(e, "T[] needs a JSON array");
        }
        eth_u256_from_u64(&w, json_array_size(v));
        if (lmq_buf_append(e->out, w.be, ETH_ABI_WORD, e->max) != LMQ_OK) {
            return eth_abi__enc_fail(e, "encoding over its size bound");
        }
        return eth_abi__enc_seq(e, NULL, t->elem, json_array_size(v), v);
    default:
        return eth_abi__enc_word(e, t, v);
    }
}

/* A tuple of count values: heads in order (static values in place, offsets for dynamic ones),
 * then the dynamic values' tails, offsets counted from the tuple's start. */
static int eth_abi__enc_seq(struct eth_abi__enc *e, const struct eth_abi_type *const *list,
                            const struct eth_abi_type *repeat, size_t count, const json_t *values)
{
    size_t start = e->out->len;
    static const uint8_t zero[ETH_ABI_WORD];
    LMQ_ASSERT(json_array_size(values) == count);
    for (size_t i = 0; i < count; i++) {
        const struct eth_abi_type *t = list != NULL ? list[i] : repeat;
        int rc = eth_abi__dynamic(t) ? lmq_buf_append(e->out, zero, ETH_ABI_WORD, e->max)
                                     : eth_abi__enc_value(e, t, json_array_get(values, i));
        if (rc != LMQ_OK) {
            return rc == LMQ_EINVAL ? rc : eth_abi__enc_fail(e, "encoding over its size bound");
        }
    }
    size_t head_off = 0;
    for (size_t i = 0; i < count; i++) {
        const struct eth_abi_type *t = list != NULL ? list[i] : repeat;
        if (eth_abi__dynamic(t)) {
            struct eth_u256 w;
            eth_u256_from_u64(&w, e->out->len - start);
            memcpy(e->out->data + start + head_off, w.be, ETH_ABI_WORD);
            int rc = eth_abi__enc_value(e, t, json_array_get(values, i));
            if (rc != LMQ_OK) {
                return rc;
            }
        }
        head_off += eth_abi__head_size(t);
    }
    return LMQ_OK;
}

static void eth_abi__param_types(const struct eth_abi_sig *sig,
                                 const struct eth_abi_type *types[ETH_ABI_PARAMS_MAX])
{
    for (size_t i = 0; i < sig->param_count; i++) {
        types[i] = sig->params[i].type;
    }
}

int eth_abi_encode(const struct eth_abi_sig *sig, const json_t *values, bool with_selector,
                   struct lmq_buf *out, size_t max_bytes, char *err, size_t err_len)
{
    LMQ_ASSERT(sig != NULL && out != NULL);
    struct eth_abi__enc e = {.out = out, .max = max_bytes, .err = err, .err_len = err_len};
    const struct eth_abi_type *types[ETH_ABI_PARAMS_MAX];
    size_t start = out->len;
    int rc = LMQ_OK;
    if (!json_is_array(values) || json_array_size(values) != sig->param_count) {
        lmq_errf(err, err_len, "ABI encode: %s needs a JSON array of %zu values", sig->canonical,
                 sig->param_count);
        return LMQ_EINVAL;
    }
    eth_abi__param_types(sig, types);
    if (with_selector) {
        uint8_t selector[ETH_ABI_SELECTOR_BYTES];
        eth_abi_selector(sig, selector);
        rc = lmq_buf_append(out, selector, sizeof(selector), max_bytes);
    }
    rc = rc != LMQ_OK ? rc : eth_abi__enc_seq(&e, types, NULL, sig->param_count, values);
    if (rc != LMQ_OK) {
        out->len = start;
        return rc == LMQ_EINVAL ? rc : eth_abi__enc_fail(&e, "encoding over its size bound");
    }
    return LMQ_OK;
}

/* --- decoding ------------------------------------------------------------------------------ */

struct eth_abi__dec {
    const uint8_t *data;
    size_t len;
    size_t values_left;
    char *err;
    size_t err_len;
};

static int eth_abi__dec_fail(struct eth_abi__dec *d, const char *why, size_t pos)
{
    lmq_errf(d->err, d->err_len, "ABI decode: %s at byte %zu", why, pos);
    return LMQ_EPROTO;
}

static int eth_abi__dec_word(struct eth_abi__dec *d, size_t pos, const uint8_t **w)
{
    if (pos > d->len || d->len - pos < ETH_ABI_WORD) {
        return eth_abi__dec_fail(d, "data too short", pos);
    }
    *w = d->data + pos;
    return LMQ_OK;
}

/* A word holding an offset or a length: it can never exceed the data's length. */
static int eth_abi__dec_size(struct eth_abi__dec *d, size_t pos, size_t *n)
{
    const uint8_t *w = NULL;
    struct eth_u256 v;
    uint64_t x = 0;
    if (eth_abi__dec_word(d, pos, &w) != LMQ_OK) {
        return LMQ_EPROTO;
    }
    memcpy(v.be, w, ETH_ABI_WORD);
    if (!eth_u256_to_u64(&v, &x) || x > d->len) {
        return eth_abi__dec_fail(d, "offset or length past the data", pos);
    }
    *n = (size_t)x;
    return LMQ_OK;
}

static int eth_abi__dec_json(struct eth_abi__dec *d, json_t *v, json_t **out, size_t pos)
{
    if (v == NULL) {
        return eth_abi__dec_fail(d, "out of memory, or a string that is not UTF-8", pos);
    }
    *out = v;
    return LMQ_OK;
}

static int eth_abi__dec_word_value(struct eth_abi__dec *d, const struct eth_abi_type *t, size_t pos,
                                   json_t **out)
{
    const uint8_t *w = NULL;
    char text[ETH_U256_DEC_MAX_BYTES + 2];
    if (eth_abi__dec_word(d, pos, &w) != LMQ_OK) {
        return LMQ_EPROTO;
    }
    if (t->kind == ETH_ABI_BOOL) {
        for (size_t i = 0; i < ETH_ABI_WORD; i++) {
            if (w[i] > (i == ETH_ABI_WORD - 1 ? 1 : 0)) {
                return eth_abi__dec_fail(d, "bool word other than 0 or 1", pos);
            }
        }
        return eth_abi__dec_json(d, json_boolean(w[ETH_ABI_WORD - 1] == 1), out, pos);
    }
    if (t->kind == ETH_ABI_FIXED_BYTES) {
        for (size_t i = t->size; i < ETH_ABI_WORD; i++) {
            if (w[i] != 0) {
                return eth_abi__dec_fail(d, "bytesN padding is not zero", pos);
            }
        }
        int rc = eth_hex_encode(w, t->size, text, sizeof(text));
        LMQ_ASSERT(rc == LMQ_OK);
        return eth_abi__dec_json(d, json_string(text), out, pos);
    }
    if (!eth_abi__fits(w, t)) {
        return eth_abi__dec_fail(d, "value has bits above its type's size", pos);
    }
    if (t->kind == ETH_ABI_ADDRESS) {
        eth_key_address_text(w + ETH_ABI_WORD - ETH_ADDRESS_BYTES, text);
        return eth_abi__dec_json(d, json_string(text), out, pos);
    }
    struct eth_u256 v;
    memcpy(v.be, w, ETH_ABI_WORD);
    bool neg = t->kind == ETH_ABI_INT && (v.be[0] & 0x80) != 0;
    if (neg) {
        eth_u256_negate(&v);
        text[0] = '-';
    }
    eth_u256_to_dec(&v, text + (neg ? 1 : 0));
    return eth_abi__dec_json(d, json_string(text), out, pos);
}

static int eth_abi__dec_seq(struct eth_abi__dec *d, const struct eth_abi_type *const *list,
                            const struct eth_abi_type *repeat, size_t count, size_t base,
                            json_t **out);

static int eth_abi__dec_blob(struct eth_abi__dec *d, const struct eth_abi_type *t, size_t pos,
                             json_t **out)
{
    size_t n = 0;
    if (eth_abi__dec_size(d, pos, &n) != LMQ_OK) {
        return LMQ_EPROTO;
    }
    size_t padded = (n + ETH_ABI_WORD - 1) / ETH_ABI_WORD * ETH_ABI_WORD;
    size_t at = pos + ETH_ABI_WORD;
    if (padded > d->len - at) {
        return eth_abi__dec_fail(d, "bytes or string past the data", pos);
    }
    for (size_t i = n; i < padded; i++) {
        if (d->data[at + i] != 0) {
            return eth_abi__dec_fail(d, "bytes or string padding is not zero", at + i);
        }
    }
    if (t->kind == ETH_ABI_STRING) {
        return eth_abi__dec_json(d, json_stringn((const char *)d->data + at, n), out, pos);
    }
    char *text = malloc(2 * n + 3);
    if (text == NULL || eth_hex_encode(d->data + at, n, text, 2 * n + 3) != LMQ_OK) {
        free(text);
        return eth_abi__dec_fail(d, "out of memory", pos);
    }
    int rc = eth_abi__dec_json(d, json_string(text), out, pos);
    free(text);
    return rc;
}

static int eth_abi__dec_value(struct eth_abi__dec *d, const struct eth_abi_type *t, size_t pos,
                              json_t **out)
{
    size_t n = 0;
    if (d->values_left == 0) {
        return eth_abi__dec_fail(d, "more values than ETH_ABI_DECODE_VALUES_MAX", pos);
    }
    d->values_left--;
    switch (t->kind) {
    case ETH_ABI_BYTES:
    case ETH_ABI_STRING:
        return eth_abi__dec_blob(d, t, pos, out);
    case ETH_ABI_ARRAY:
        return eth_abi__dec_seq(d, NULL, t->elem, t->size, pos, out);
    case ETH_ABI_DYN_ARRAY:
        if (eth_abi__dec_size(d, pos, &n) != LMQ_OK) {
            return LMQ_EPROTO;
        }
        /* Every item's head takes at least a word: a count the data cannot hold is refused
         * before anything is allocated for it. */
        if (n > (d->len - pos - ETH_ABI_WORD) / eth_abi__head_size(t->elem)) {
            return eth_abi__dec_fail(d, "array length past the data", pos);
        }
        return eth_abi__dec_seq(d, NULL, t->elem, n, pos + ETH_ABI_WORD, out);
    default:
        return eth_abi__dec_word_value(d, t, pos, out);
    }
}

static int eth_abi__dec_seq(struct eth_abi__dec *d, const struct eth_abi_type *const *list,
                            const struct eth_abi_type *repeat, size_t count, size_t base,
                            json_t **out)
{
    json_t *arr = json_array();
    size_t head_off = 0;
    if (arr == NULL) {
        return eth_abi__dec_fail(d, "out of memory", base);
    }
    for (size_t i = 0; i < count; i++) {
        const struct eth_abi_type *t = list != NULL ? list[i] : repeat;
        size_t pos = base + head_off;
        json_t *v = NULL;
        if (eth_abi__dynamic(t)) {
            size_t off = 0;
            if (eth_abi__dec_size(d, pos, &off) != LMQ_OK) {
                goto fail;
            }
            pos = base + off;
        }
        if (eth_abi__dec_value(d, t, pos, &v) != LMQ_OK) {
            goto fail;
        }
        if (json_array_append_new(arr, v) != 0) {
            eth_abi__dec_fail(d, "out of memory", pos);
            goto fail;
        }
        head_off += eth_abi__head_size(t);
    }
    *out = arr;
    return LMQ_OK;
fail:
    json_decref(arr);
    return LMQ_EPROTO;
}

int eth_abi_decode(const struct eth_abi_sig *sig, const uint8_t *data, size_t len, json_t **values,
                   char *err, size_t err_len)
{
    LMQ_ASSERT(sig != NULL && values != NULL && (data != NULL || len == 0));
    struct eth_abi__dec d = {.data = data,
                             .len = len,
                             .values_left = ETH_ABI_DECODE_VALUES_MAX,
                             .err = err,
                             .err_len = err_len};
    const struct eth_abi_type *types[ETH_ABI_PARAMS_MAX];
    *values = NULL;
    eth_abi__param_types(sig, types);
    return eth_abi__dec_seq(&d, types, NULL, sig->param_count, 0, values);
}

/* An indexed parameter's value from its topic: elementary types in place, the rest hashed. */
static int eth_abi__dec_topic(const struct eth_abi_type *t, const uint8_t topic[32], json_t **out,
                              char *err, size_t err_len)
{
    if (eth_abi__dynamic(t) || t->kind == ETH_ABI_ARRAY) {
        char text[2 * 32 + 3];
        int rc = eth_hex_encode(topic, 32, text, sizeof(text));
        LMQ_ASSERT(rc == LMQ_OK);
        *out = json_string(text);
        return *out != NULL ? LMQ_OK : LMQ_EPROTO;
    }
    struct eth_abi__dec d = {
        .data = topic, .len = 32, .values_left = 1, .err = err, .err_len = err_len};
    return eth_abi__dec_value(&d, t, 0, out);
}

int eth_abi_decode_log(const struct eth_abi_sig *sig, const uint8_t (*topics)[32],
                       size_t topic_count, const uint8_t *data, size_t len, json_t **args,
                       char *err, size_t err_len)
{
    LMQ_ASSERT(sig != NULL && args != NULL && (topics != NULL || topic_count == 0));
    const struct eth_abi_type *types[ETH_ABI_PARAMS_MAX];
    size_t plain = 0;
    size_t indexed = 0;
    uint8_t topic0[32];
    json_t *values = NULL;
    json_t *obj = NULL;
    *args = NULL;
    for (size_t i = 0; i < sig->param_count; i++) {
        if (sig->params[i].indexed) {
            indexed++;
        } else {
            types[plain++] = sig->params[i].type;
        }
    }
    eth_abi_topic0(sig, topic0);
    if (topic_count != indexed + 1 || memcmp(topics[0], topic0, 32) != 0) {
        lmq_errf(err, err_len, "log: not a %s event (topic 0 or topic count differs)",
                 sig->canonical);
        return LMQ_EPROTO;
    }
    struct eth_abi__dec d = {.data = data,
                             .len = len,
                             .values_left = ETH_ABI_DECODE_VALUES_MAX,
                             .err = err,
                             .err_len = err_len};
    if (eth_abi__dec_seq(&d, types, NULL, plain, 0, &values) != LMQ_OK ||
        (obj = json_object()) == NULL) {
        goto fail;
    }
    for (size_t i = 0, next_topic = 1, next_plain = 0; i < sig->param_count; i++) {
        const struct eth_abi_param *p = &sig->params[i];
        json_t *v = NULL;
        char key[ETH_ABI_NAME_MAX_BYTES];
        if (p->indexed
                ? eth_abi__dec_topic(p->type, topics[next_topic++], &v, err, err_len)
                : eth_abi__dec_json(&d, json_incref(json_array_get(values, next_plain++)), &v, 0)) {
            goto fail;
        }
        snprintf(key, sizeof(key), "%s", p->name);
        if (p->name[0] == '\0') {
            snprintf(key, sizeof(key), "%zu", i);
        }
        if (json_object_set_new(obj, key, v) != 0) {
            goto fail;
        }
    }
    json_decref(values);
    *args = obj;
    return LMQ_OK;
fail:
    json_decref(values);
    json_decref(obj);
    return LMQ_EPROTO;
}
