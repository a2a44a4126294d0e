/* Internal: the GraphQL lexer (spec section 2.1), shared by the parser and the SDL type
 * reference parser. */
#ifndef LMQ_GRAPHQL_LEX_H
#define LMQ_GRAPHQL_LEX_H

#include "graphql/graphql_internal.h"

enum gq_tok {
    GQ_T_EOF,
    GQ_T_BANG,
    GQ_T_DOLLAR,
    GQ_T_AMP,
    GQ_T_PAREN_L,
    GQ_T_PAREN_R,
    GQ_T_SPREAD,
    GQ_T_COLON,
    GQ_T_EQUALS,
    GQ_T_AT,
    GQ_T_BRACKET_L,
    GQ_T_BRACKET_R,
    GQ_T_BRACE_L,
    GQ_T_PIPE,
    GQ_T_BRACE_R,
    GQ_T_NAME,
    GQ_T_INT,
    GQ_T_FLOAT,
    GQ_T_STRING,
    GQ_T_BLOCK_STRING,
};

struct gq_lexer {
    const char *src;
    size_t len;
    size_t pos;         /* next byte to read */
    uint32_t line;      /* current line (1-based) */
    size_t line_start;  /* byte offset of the current line */
    size_t col_pos;     /* column cache: byte offset ... */
    uint32_t col_units; /* ... and its UTF-16 units since line_start */
    uint32_t tokens_count;
    struct gq_arena *arena;
    /* the current token */
    int kind;
    size_t start;
    uint32_t tline;
    uint32_t tcol;
    const char *value; /* names, numbers, decoded strings (arena, NUL-terminated) */
    size_t value_len;  /* its length (a decoded string may hold NUL) */
    /* a syntax error: message (no "Syntax Error: " prefix) and where */
    char err[512];
    uint32_t err_line;
    uint32_t err_col;
};

void gq_lex_init(struct gq_lexer *l, struct gq_arena *a, const char *src, size_t len);
/* Reads the next token into l; 0, or -1 with l->err set. */
int gq_lex_next(struct gq_lexer *l);
/* "Name \"x\"", "\"{\"", "<EOF>" for the current token, into buf. */
void gq_lex_desc(const struct gq_lexer *l, char *buf, size_t cap);
const char *gq_tok_kind_desc(int kind);

#endif
