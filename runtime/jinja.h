/* runtime/jinja.h — internals of the chat-template renderer (a Jinja subset):
 * arena, tokens, AST, values. Shared by jinja_lex.c, jinja_parse.c,
 * jinja_eval.c and chat_template.c; not part of the runtime's face. */
#ifndef SLM_JINJA_H
#define SLM_JINJA_H

#include <stddef.h>
#include <stdint.h>

#include "runtime.h"

/* ---- limits (every template and input is rendered or refused within them) */
#define JJ_MAX_TEMPLATE   (1u << 20)   /* template bytes */
#define JJ_MAX_DEPTH      128          /* AST nesting while parsing and evaluating */
#define JJ_MAX_STEPS      20000000L    /* evaluation steps per render */
#define JJ_MAX_ITER       1000000L     /* loop iterations per render */
#define JJ_MAX_OUTPUT     (64u << 20)  /* rendered bytes */
#define JJ_MAX_ARENA      (256u << 20) /* bytes allocated while parsing or rendering */

/* ---- arena: everything of one parse or one render, freed at once --------- */
typedef struct jj_chunk jj_chunk;
typedef struct jj_arena {
    jj_chunk *head;
    size_t used_total, cap;
    int failed; /* an allocation was refused (cap or out of memory) */
} jj_arena;
void jj_arena_init(jj_arena *a, size_t cap);
void jj_arena_free(jj_arena *a);
void *jj_alloc(jj_arena *a, size_t n); /* zeroed; NULL when refused */
char *jj_strdup(jj_arena *a, const char *s, size_t n); /* NUL-terminated copy */

/* ---- tokens ------------------------------------------------------------- */
enum jj_tok {
    JT_EOF, JT_TEXT, JT_COMMENT, JT_INT, JT_FLOAT, JT_STR, JT_NAME,
    JT_OPEN_STMT, JT_CLOSE_STMT, JT_OPEN_EXPR, JT_CLOSE_EXPR,
    JT_LPAREN, JT_RPAREN, JT_LBRACK, JT_RBRACK, JT_LBRACE, JT_RBRACE,
    JT_COMMA, JT_DOT, JT_COLON, JT_PIPE, JT_ASSIGN,
    JT_OP /* s: one of == != < > <= >= + - ~ * / // % ** */
};
typedef struct jj_token {
    int type;
    int line;
    const char *s; /* text / string value / name / operator (arena, NUL-terminated) */
    size_t n;
    int64_t i;
    double f;
} jj_token;
/* Tokenize with trim_blocks + lstrip_blocks (transformers' settings). */
int jj_lex(jj_arena *a, const char *src, size_t len, jj_token **toks, size_t *n_toks, slm_err *err);

/* ---- values ------------------------------------------------------------- */
enum jj_vt { JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_FUNC, JV_MACRO };
enum jj_fn { JF_RAISE, JF_NAMESPACE, JF_STRFTIME, JF_RANGE, JF_DICT };
typedef struct jj_list jj_list;
typedef struct jj_dict jj_dict;
typedef struct jj_val {
    uint8_t t;
    uint8_t tuple; /* JV_LIST: a tuple (repr only) */
    union {
        int b;
        int64_t i;
        double f;
        struct { const char *p; size_t n; } s;
        jj_list *l;
        jj_dict *d;
        int fn;
        const void *macro; /* JV_MACRO: the evaluator's macro record */
    } u;
} jj_val;
struct jj_list { jj_val *v; size_t n, cap; };
struct jj_dict { jj_val *k, *v; size_t n, cap; int ns; /* a namespace() */ };

/* ---- AST ---------------------------------------------------------------- */
enum jj_kind {
    /* statements */
    JN_TEXT, JN_OUT, JN_IF, JN_FOR, JN_SET, JN_SETBLOCK, JN_BREAK, JN_CONTINUE, JN_BODY, JN_MACRO,
    /* expressions */
    JN_CONST, JN_NAME, JN_ATTR, JN_INDEX, JN_SLICE, JN_CALL, JN_FILTER, JN_TEST, JN_KWARG,
    JN_NOT, JN_NEG, JN_POS, JN_BIN, JN_AND, JN_OR, JN_COND, JN_LIST, JN_TUPLE, JN_DICT
};
enum jj_binop { JB_EQ, JB_NE, JB_LT, JB_GT, JB_LE, JB_GE, JB_IN, JB_NOTIN, JB_ADD, JB_SUB, JB_CAT,
                JB_MUL, JB_DIV, JB_FDIV, JB_MOD, JB_POW };
typedef struct jj_node jj_node;
struct jj_node {
    int kind, op, line;
    int neg;              /* JN_TEST: "is not" */
    jj_node *a, *b, *c, *d; /* children; JN_IF: c cond, a then, b else; JN_FOR: a iter, c filter, d body, b else;
                             JN_MACRO: s name, kids parameters (JN_NAME, or JN_KWARG with a default), d body */
    jj_node **kids;       /* JN_BODY statements; call/filter/test arguments; list/tuple items; dict keys */
    size_t n;
    jj_node **kids2;      /* JN_DICT values */
    size_t n2;
    const char *s;        /* JN_TEXT text, JN_NAME / JN_ATTR / JN_FILTER / JN_TEST / JN_KWARG name */
    size_t slen;
    const char *s2;       /* JN_FOR second target, JN_SET attribute */
    jj_val v;             /* JN_CONST */
};
struct slm_chat_template {
    jj_arena arena;
    jj_node *root;
};
int jj_parse(jj_arena *a, const jj_token *toks, size_t n_toks, jj_node **root, slm_err *err);

/* ---- evaluation ----------------------------------------------------------- */
int jj_render(const jj_node *root, const slm_chat_params *p, char **out, size_t *out_len, slm_err *err);

/* UTF-8 / Python whitespace helpers shared by lexer and evaluator */
int jj_ws_len(const char *s, size_t n);       /* bytes of a whitespace char at s, 0 if none */
int jj_ws_len_back(const char *s, size_t n);  /* bytes of a whitespace char ending at s+n, 0 if none */

#endif
