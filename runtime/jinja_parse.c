/* runtime/jinja_parse.c — the chat-template parser: tokens -> AST, following
 * Jinja2's grammar and operator precedence (parse_condexpr ... parse_unary,
 * filters and tests bind tighter than arithmetic). Statements: if/elif/else,
 * for (with "if" filter and else), set (also ns.attr and block form), break,
 * continue; generation/endgeneration are accepted as no-ops. Anything else
 * (macro, call, include, ...) is refused by name. */
#include <stdlib.h>
#include <string.h>

#include "jinja.h"

typedef struct parser {
    jj_arena *a;
    const jj_token *t;
    size_t n, pos;
    int depth;
    slm_err *err;
    int failed;
} parser;

static int pfail(parser *P, int line, const char *fmt, const char *arg)
{
    if (!P->failed) {
        char what[256];
        snprintf(what, sizeof what, fmt, arg ? arg : "");
        slm_err_set(P->err, SLM_EINPUT, "chat template: line %d: %s", line, what);
        P->failed = 1;
    }
    return SLM_EINPUT;
}

static const jj_token *cur(parser *P) { return &P->t[P->pos < P->n ? P->pos : P->n - 1]; }
static const jj_token *peek(parser *P, size_t k)
{
    return &P->t[P->pos + k < P->n ? P->pos + k : P->n - 1];
}
static int is_name(const jj_token *k, const char *name) { return k->type == JT_NAME && !strcmp(k->s, name); }
static int is_op(const jj_token *k, const char *op) { return k->type == JT_OP && !strcmp(k->s, op); }

static const char *tok_desc(const jj_token *k)
{
    switch (k->type) {
    case JT_EOF: return "end of template";
    case JT_TEXT: return "text";
    case JT_CLOSE_STMT: return "'%}'";
    case JT_CLOSE_EXPR: return "'}}'";
    case JT_OPEN_STMT: return "'{%'";
    case JT_OPEN_EXPR: return "'{{'";
    case JT_STR: return "a string";
    case JT_INT: case JT_FLOAT: return "a number";
    default: return k->s && *k->s ? k->s : "a token";
    }
}

static jj_node *mk(parser *P, int kind, int line)
{
    jj_node *x = jj_alloc(P->a, sizeof *x);
    if (!x) {
        if (!P->failed)
            slm_err_set(P->err, SLM_EINPUT, "chat template: too large to parse (memory limit)");
        P->failed = 1;
        return NULL;
    }
    x->kind = kind;
    x->line = line;
    return x;
}

/* append to a growing arena array (doubling) */
static int append(parser *P, jj_node ***arr, size_t *n, size_t *cap, jj_node *x)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        jj_node **na = jj_alloc(P->a, nc * sizeof *na);
        if (!na) {
            if (!P->failed)
                slm_err_set(P->err, SLM_EINPUT, "chat template: too large to parse (memory limit)");
            P->failed = 1;
            return -1;
        }
        if (*n)
            memcpy(na, *arr, *n * sizeof *na);
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = x;
    return 0;
}

static int expect(parser *P, int type, const char *what)
{
    if (cur(P)->type != type) {
        char m[160];
        snprintf(m, sizeof m, "expected %s, found %s", what, tok_desc(cur(P)));
        return pfail(P, cur(P)->line, "%s", m);
    }
    P->pos++;
    return 0;
}

/* the NAME token at the cursor, consumed; NULL (and the error "expected WHAT, found ...",
 * reported at `line`) when the cursor holds something else */
static const char *take_name(parser *P, int line, const char *what)
{
    const jj_token *k = cur(P);
    if (k->type != JT_NAME) {
        char m[160];
        snprintf(m, sizeof m, "expected %s, found %s", what, tok_desc(k));
        pfail(P, line, "%s", m);
        return NULL;
    }
    P->pos++;
    return k->s;
}

static jj_node *parse_cond(parser *P);
static jj_node *parse_or(parser *P);
static jj_node *parse_unary(parser *P, int with_filter);
static jj_node *parse_primary(parser *P);

static int enter(parser *P)
{
    if (++P->depth > JJ_MAX_DEPTH) {
        pfail(P, cur(P)->line, "nested more than %s levels deep", "128");
        return -1;
    }
    return 0;
}

/* "(" args ")" into x->kids (positional and JN_KWARG nodes); cur is "(" */
static int parse_args(parser *P, jj_node *x)
{
    size_t cap = 0;
    P->pos++;
    while (cur(P)->type != JT_RPAREN) {
        jj_node *arg;
        if (cur(P)->type == JT_NAME && peek(P, 1)->type == JT_ASSIGN) {
            arg = mk(P, JN_KWARG, cur(P)->line);
            if (!arg)
                return -1;
            arg->s = cur(P)->s;
            arg->slen = cur(P)->n;
            P->pos += 2;
            if (!(arg->a = parse_cond(P)))
                return -1;
        } else if (is_op(cur(P), "*") || is_op(cur(P), "**")) {
            return pfail(P, cur(P)->line, "unsupported: %s-arguments in a call", cur(P)->s);
        } else if (!(arg = parse_cond(P)))
            return -1;
        if (append(P, &x->kids, &x->n, &cap, arg))
            return -1;
        if (cur(P)->type == JT_COMMA)
            P->pos++;
        else if (cur(P)->type != JT_RPAREN)
            return expect(P, JT_RPAREN, "',' or ')' in an argument list");
    }
    P->pos++;
    return 0;
}

static jj_node *parse_subscript(parser *P, jj_node *obj)
{
    int line = cur(P)->line;
    P->pos++; /* [ */
    jj_node *a = NULL, *b = NULL, *c = NULL;
    if (cur(P)->type != JT_COLON) {
        if (!(a = parse_cond(P)))
            return NULL;
        if (cur(P)->type == JT_RBRACK) {
            P->pos++;
            jj_node *x = mk(P, JN_INDEX, line);
            if (x) {
                x->a = obj;
                x->b = a;
            }
            return x;
        }
    }
    if (expect(P, JT_COLON, "':' or ']' in a subscript"))
        return NULL;
    if (cur(P)->type != JT_RBRACK && cur(P)->type != JT_COLON && !(b = parse_cond(P)))
        return NULL;
    if (cur(P)->type == JT_COLON) {
        P->pos++;
        if (cur(P)->type != JT_RBRACK && !(c = parse_cond(P)))
            return NULL;
    }
    if (expect(P, JT_RBRACK, "']' closing a slice"))
        return NULL;
    jj_node *x = mk(P, JN_SLICE, line);
    if (x) {
        x->a = obj;
        x->kids = jj_alloc(P->a, 3 * sizeof *x->kids);
        if (!x->kids)
            return mk(P, -1, line), NULL;
        x->kids[0] = a;
        x->kids[1] = b;
        x->kids[2] = c;
        x->n = 3;
    }
    return x;
}

static jj_node *parse_postfix(parser *P, jj_node *x)
{
    while (x) {
        const jj_token *k = cur(P);
        if (k->type == JT_DOT) {
            P->pos++;
            const jj_token *m = cur(P);
            if (m->type == JT_NAME) {
                jj_node *y = mk(P, JN_ATTR, m->line);
                if (!y)
                    return NULL;
                y->a = x;
                y->s = m->s;
                y->slen = m->n;
                x = y;
                P->pos++;
            } else if (m->type == JT_INT) {
                jj_node *y = mk(P, JN_INDEX, m->line), *i = mk(P, JN_CONST, m->line);
                if (!y || !i)
                    return NULL;
                i->v.t = JV_INT;
                i->v.u.i = m->i;
                y->a = x;
                y->b = i;
                x = y;
                P->pos++;
            } else {
                pfail(P, m->line, "expected an attribute name after '.', found %s", tok_desc(m));
                return NULL;
            }
        } else if (k->type == JT_LBRACK) {
            x = parse_subscript(P, x);
        } else if (k->type == JT_LPAREN) {
            jj_node *y = mk(P, JN_CALL, k->line);
            if (!y)
                return NULL;
            y->a = x;
            if (parse_args(P, y))
                return NULL;
            x = y;
        } else
            break;
    }
    return x;
}

/* tests that take one argument without parentheses ("is equalto 3") */
static int test_takes_arg(const char *name)
{
    static const char *const T[] = {"equalto", "eq", "==", "ne", "!=", "lt", "<", "gt", ">", "le", "<=",
                                    "ge", ">=", "sameas", "divisibleby", "in"};
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (!strcmp(T[i], name))
            return 1;
    return 0;
}

static jj_node *parse_filter_expr(parser *P, jj_node *x)
{
    while (x) {
        const jj_token *k = cur(P);
        if (k->type == JT_PIPE) {
            P->pos++;
            const jj_token *m = cur(P);
            if (m->type != JT_NAME) {
                pfail(P, m->line, "expected a filter name after '|', found %s", tok_desc(m));
                return NULL;
            }
            jj_node *y = mk(P, JN_FILTER, m->line);
            if (!y)
                return NULL;
            y->a = x;
            y->s = m->s;
            y->slen = m->n;
            P->pos++;
            if (cur(P)->type == JT_LPAREN && parse_args(P, y))
                return NULL;
            x = y;
        } else if (is_name(k, "is")) {
            P->pos++;
            jj_node *y = mk(P, JN_TEST, k->line);
            if (!y)
                return NULL;
            if (is_name(cur(P), "not")) {
                y->neg = 1;
                P->pos++;
            }
            const jj_token *m = cur(P);
            if (m->type != JT_NAME && !(m->type == JT_OP && test_takes_arg(m->s))) {
                pfail(P, m->line, "expected a test name after 'is', found %s", tok_desc(m));
                return NULL;
            }
            y->a = x;
            y->s = m->s;
            y->slen = m->n;
            P->pos++;
            const jj_token *q = cur(P);
            if (q->type == JT_LPAREN) {
                if (parse_args(P, y))
                    return NULL;
            } else if (test_takes_arg(y->s) &&
                       (q->type == JT_NAME || q->type == JT_STR || q->type == JT_INT || q->type == JT_FLOAT ||
                        q->type == JT_LBRACK || q->type == JT_LBRACE) &&
                       !is_name(q, "else") && !is_name(q, "or") && !is_name(q, "and")) {
                jj_node *arg = parse_postfix(P, parse_primary(P));
                size_t cap = 0;
                if (!arg || append(P, &y->kids, &y->n, &cap, arg))
                    return NULL;
            }
            x = y;
        } else if (k->type == JT_LPAREN) {
            jj_node *y = mk(P, JN_CALL, k->line);
            if (!y)
                return NULL;
            y->a = x;
            if (parse_args(P, y))
                return NULL;
            x = y;
        } else
            break;
    }
    return x;
}

static jj_node *parse_primary(parser *P)
{
    const jj_token *k = cur(P);
    jj_node *x;
    switch (k->type) {
    case JT_NAME:
        if (!(x = mk(P, JN_CONST, k->line)))
            return NULL;
        if (!strcmp(k->s, "true") || !strcmp(k->s, "True") || !strcmp(k->s, "false") || !strcmp(k->s, "False")) {
            x->v.t = JV_BOOL;
            x->v.u.b = k->s[0] == 't' || k->s[0] == 'T';
        } else if (!strcmp(k->s, "none") || !strcmp(k->s, "None")) {
            x->v.t = JV_NONE;
        } else {
            x->kind = JN_NAME;
            x->s = k->s;
            x->slen = k->n;
        }
        P->pos++;
        return x;
    case JT_STR: {
        /* adjacent string literals concatenate */
        size_t total = 0, j = P->pos;
        while (j < P->n && P->t[j].type == JT_STR)
            total += P->t[j++].n;
        char *s = jj_alloc(P->a, total + 1);
        if (!(x = mk(P, JN_CONST, k->line)) || !s)
            return mk(P, -1, 0), NULL;
        size_t o = 0;
        for (; P->pos < j; P->pos++) {
            memcpy(s + o, P->t[P->pos].s, P->t[P->pos].n);
            o += P->t[P->pos].n;
        }
        x->v.t = JV_STR;
        x->v.u.s.p = s;
        x->v.u.s.n = total;
        return x;
    }
    case JT_INT:
    case JT_FLOAT:
        if (!(x = mk(P, JN_CONST, k->line)))
            return NULL;
        if (k->type == JT_INT) {
            x->v.t = JV_INT;
            x->v.u.i = k->i;
        } else {
            x->v.t = JV_FLOAT;
            x->v.u.f = k->f;
        }
        P->pos++;
        return x;
    case JT_LPAREN: {
        P->pos++;
        if (cur(P)->type == JT_RPAREN) {
            P->pos++;
            if ((x = mk(P, JN_TUPLE, k->line)))
                return x;
            return NULL;
        }
        jj_node *e = parse_cond(P);
        if (!e)
            return NULL;
        if (cur(P)->type == JT_COMMA) {
            if (!(x = mk(P, JN_TUPLE, k->line)))
                return NULL;
            size_t cap = 0;
            if (append(P, &x->kids, &x->n, &cap, e))
                return NULL;
            while (cur(P)->type == JT_COMMA) {
                P->pos++;
                if (cur(P)->type == JT_RPAREN)
                    break;
                if (!(e = parse_cond(P)) || append(P, &x->kids, &x->n, &cap, e))
                    return NULL;
            }
            e = x;
        }
        if (expect(P, JT_RPAREN, "')'"))
            return NULL;
        return e;
    }
    case JT_LBRACK: {
        P->pos++;
        if (!(x = mk(P, JN_LIST, k->line)))
            return NULL;
        size_t cap = 0;
        while (cur(P)->type != JT_RBRACK) {
            jj_node *e = parse_cond(P);
            if (!e || append(P, &x->kids, &x->n, &cap, e))
                return NULL;
            if (cur(P)->type == JT_COMMA)
                P->pos++;
            else if (cur(P)->type != JT_RBRACK) {
                expect(P, JT_RBRACK, "',' or ']' in a list");
                return NULL;
            }
        }
        P->pos++;
        return x;
    }
    case JT_LBRACE: {
        P->pos++;
        if (!(x = mk(P, JN_DICT, k->line)))
            return NULL;
        size_t cap = 0, cap2 = 0;
        while (cur(P)->type != JT_RBRACE) {
            jj_node *key = parse_cond(P);
            if (!key || expect(P, JT_COLON, "':' in a dict literal"))
                return NULL;
            jj_node *val = parse_cond(P);
            if (!val || append(P, &x->kids, &x->n, &cap, key) || append(P, &x->kids2, &x->n2, &cap2, val))
                return NULL;
            if (cur(P)->type == JT_COMMA)
                P->pos++;
            else if (cur(P)->type != JT_RBRACE) {
                expect(P, JT_RBRACE, "',' or '}' in a dict literal");
                return NULL;
            }
        }
        P->pos++;
        return x;
    }
    default:
        pfail(P, k->line, "expected an expression, found %s", tok_desc(k));
        return NULL;
    }
}

static jj_node *parse_unary(parser *P, int with_filter)
{
    if (enter(P))
        return NULL;
    const jj_token *k = cur(P);
    jj_node *x;
    if (is_op(k, "-") || is_op(k, "+")) {
        P->pos++;
        if (!(x = mk(P, k->s[0] == '-' ? JN_NEG : JN_POS, k->line)) || !(x->a = parse_unary(P, 0)))
            return NULL;
    } else
        x = parse_primary(P);
    x = parse_postfix(P, x);
    if (with_filter)
        x = parse_filter_expr(P, x);
    P->depth--;
    return x;
}

static jj_node *binary(parser *P, int op, int line, jj_node *l, jj_node *r)
{
    if (!l || !r)
        return NULL;
    jj_node *x = mk(P, JN_BIN, line);
    if (x) {
        x->op = op;
        x->a = l;
        x->b = r;
    }
    return x;
}

static jj_node *parse_pow(parser *P)
{
    jj_node *x = parse_unary(P, 1);
    while (x && is_op(cur(P), "**")) {
        int line = cur(P)->line;
        P->pos++;
        x = binary(P, JB_POW, line, x, parse_unary(P, 1));
    }
    return x;
}

static jj_node *parse_math2(parser *P)
{
    jj_node *x = parse_pow(P);
    for (;;) {
        const jj_token *k = cur(P);
        int op = is_op(k, "*") ? JB_MUL : is_op(k, "/") ? JB_DIV : is_op(k, "//") ? JB_FDIV : is_op(k, "%") ? JB_MOD : -1;
        if (!x || op < 0)
            return x;
        P->pos++;
        x = binary(P, op, k->line, x, parse_pow(P));
    }
}

static jj_node *parse_concat(parser *P)
{
    jj_node *x = parse_math2(P);
    while (x && is_op(cur(P), "~")) {
        int line = cur(P)->line;
        P->pos++;
        x = binary(P, JB_CAT, line, x, parse_math2(P));
    }
    return x;
}

static jj_node *parse_math1(parser *P)
{
    jj_node *x = parse_concat(P);
    for (;;) {
        const jj_token *k = cur(P);
        int op = is_op(k, "+") ? JB_ADD : is_op(k, "-") ? JB_SUB : -1;
        if (!x || op < 0)
            return x;
        P->pos++;
        x = binary(P, op, k->line, x, parse_concat(P));
    }
}

static jj_node *parse_compare(parser *P)
{
    jj_node *x = parse_math1(P);
    for (;;) {
        const jj_token *k = cur(P);
        int op = is_op(k, "==") ? JB_EQ : is_op(k, "!=") ? JB_NE : is_op(k, "<") ? JB_LT : is_op(k, ">") ? JB_GT
               : is_op(k, "<=") ? JB_LE : is_op(k, ">=") ? JB_GE : is_name(k, "in") ? JB_IN : -1;
        if (op < 0 && is_name(k, "not") && is_name(peek(P, 1), "in")) {
            op = JB_NOTIN;
            P->pos++;
        }
        if (!x || op < 0)
            return x;
        P->pos++;
        x = binary(P, op, k->line, x, parse_math1(P));
    }
}

static jj_node *parse_not(parser *P)
{
    if (is_name(cur(P), "not")) {
        if (enter(P))
            return NULL;
        jj_node *x = mk(P, JN_NOT, cur(P)->line);
        P->pos++;
        if (!x || !(x->a = parse_not(P)))
            return NULL;
        P->depth--;
        return x;
    }
    return parse_compare(P);
}

static jj_node *parse_and(parser *P)
{
    jj_node *x = parse_not(P);
    while (x && is_name(cur(P), "and")) {
        jj_node *y = mk(P, JN_AND, cur(P)->line);
        P->pos++;
        if (!y || !(y->b = parse_not(P)))
            return NULL;
        y->a = x;
        x = y;
    }
    return x;
}

static jj_node *parse_or(parser *P)
{
    jj_node *x = parse_and(P);
    while (x && is_name(cur(P), "or")) {
        jj_node *y = mk(P, JN_OR, cur(P)->line);
        P->pos++;
        if (!y || !(y->b = parse_and(P)))
            return NULL;
        y->a = x;
        x = y;
    }
    return x;
}

static jj_node *parse_cond(parser *P)
{
    if (enter(P))
        return NULL;
    jj_node *x = parse_or(P);
    while (x && is_name(cur(P), "if")) {
        jj_node *y = mk(P, JN_COND, cur(P)->line);
        P->pos++;
        if (!y || !(y->c = parse_or(P)))
            return NULL;
        y->a = x;
        if (is_name(cur(P), "else")) {
            P->pos++;
            if (!(y->b = parse_cond(P)))
                return NULL;
        }
        x = y;
    }
    P->depth--;
    return x;
}

/* ---- statements ------------------------------------------------------------- */
static jj_node *parse_body(parser *P, const char *const *ends, size_t n_ends);

static int end_tag(parser *P, const char *name)
{
    /* cur is the tag name after "{%" */
    if (!is_name(cur(P), name))
        return pfail(P, cur(P)->line, "expected '%s'", name);
    P->pos++;
    return expect(P, JT_CLOSE_STMT, "'%}'");
}

static jj_node *parse_if(parser *P, int line)
{
    static const char *const ENDS[] = {"elif", "else", "endif"};
    jj_node *x = mk(P, JN_IF, line);
    if (!x || !(x->c = parse_cond(P)) || expect(P, JT_CLOSE_STMT, "'%}' after the if condition"))
        return NULL;
    if (!(x->a = parse_body(P, ENDS, 3)))
        return NULL;
    const jj_token *k = cur(P); /* elif / else / endif */
    if (is_name(k, "elif")) {
        P->pos++;
        jj_node *body = mk(P, JN_BODY, k->line);
        size_t cap = 0;
        jj_node *inner = parse_if(P, k->line);
        if (!body || !inner || append(P, &body->kids, &body->n, &cap, inner))
            return NULL;
        x->b = body;
        return x;
    }
    if (is_name(k, "else")) {
        static const char *const ENDS2[] = {"endif"};
        P->pos++;
        if (expect(P, JT_CLOSE_STMT, "'%}' after else") || !(x->b = parse_body(P, ENDS2, 1)))
            return NULL;
    }
    if (end_tag(P, "endif"))
        return NULL;
    return x;
}

static jj_node *parse_for(parser *P, int line)
{
    static const char *const ENDS[] = {"else", "endfor"};
    jj_node *x = mk(P, JN_FOR, line);
    if (!x)
        return NULL;
    if (!(x->s = take_name(P, line, "a loop variable after 'for'")))
        return NULL;
    if (cur(P)->type == JT_COMMA) {
        P->pos++;
        if (!(x->s2 = take_name(P, line, "a second loop variable")))
            return NULL;
        if (cur(P)->type == JT_COMMA) {
            pfail(P, line, "unsupported: more than two loop variables%s", NULL);
            return NULL;
        }
    }
    if (!is_name(cur(P), "in")) {
        pfail(P, line, "expected 'in' in a for loop, found %s", tok_desc(cur(P)));
        return NULL;
    }
    P->pos++;
    if (!(x->a = parse_or(P)))
        return NULL;
    if (is_name(cur(P), "if")) {
        P->pos++;
        if (!(x->c = parse_cond(P)))
            return NULL;
    }
    if (is_name(cur(P), "recursive")) {
        pfail(P, line, "unsupported: recursive for loops%s", NULL);
        return NULL;
    }
    if (expect(P, JT_CLOSE_STMT, "'%}' after the for header") || !(x->d = parse_body(P, ENDS, 2)))
        return NULL;
    if (is_name(cur(P), "else")) {
        static const char *const ENDS2[] = {"endfor"};
        P->pos++;
        if (expect(P, JT_CLOSE_STMT, "'%}' after else") || !(x->b = parse_body(P, ENDS2, 1)))
            return NULL;
    }
    if (end_tag(P, "endfor"))
        return NULL;
    return x;
}

static jj_node *parse_set(parser *P, int line)
{
    jj_node *x = mk(P, JN_SET, line);
    if (!x)
        return NULL;
    if (!(x->s = take_name(P, line, "a variable name after 'set'")))
        return NULL;
    if (cur(P)->type == JT_DOT) {
        P->pos++;
        if (!(x->s2 = take_name(P, line, "an attribute name in 'set'")))
            return NULL;
    }
    if (cur(P)->type == JT_COMMA) {
        pfail(P, line, "unsupported: 'set' of several variables at once%s", NULL);
        return NULL;
    }
    if (cur(P)->type == JT_CLOSE_STMT && !x->s2) {
        static const char *const ENDS[] = {"endset"};
        P->pos++;
        x->kind = JN_SETBLOCK;
        if (!(x->a = parse_body(P, ENDS, 1)) || end_tag(P, "endset"))
            return NULL;
        return x;
    }
    if (expect(P, JT_ASSIGN, "'=' in 'set'") || !(x->a = parse_cond(P)))
        return NULL;
    if (cur(P)->type == JT_COMMA) {
        jj_node *t = mk(P, JN_TUPLE, line);
        size_t cap = 0;
        if (!t || append(P, &t->kids, &t->n, &cap, x->a))
            return NULL;
        while (cur(P)->type == JT_COMMA) {
            P->pos++;
            if (cur(P)->type == JT_CLOSE_STMT)
                break;
            jj_node *e = parse_cond(P);
            if (!e || append(P, &t->kids, &t->n, &cap, e))
                return NULL;
        }
        x->a = t;
    }
    if (expect(P, JT_CLOSE_STMT, "'%}' after 'set'"))
        return NULL;
    return x;
}

static jj_node *parse_macro(parser *P, int line)
{
    static const char *const ENDS[] = {"endmacro"};
    jj_node *x = mk(P, JN_MACRO, line);
    if (!x)
        return NULL;
    if (!(x->s = take_name(P, line, "a macro name")))
        return NULL;
    if (expect(P, JT_LPAREN, "'(' after the macro name"))
        return NULL;
    size_t cap = 0;
    while (cur(P)->type != JT_RPAREN) {
        const jj_token *k = cur(P);
        if (k->type != JT_NAME) {
            pfail(P, k->line, "expected a macro parameter name, found %s", tok_desc(k));
            return NULL;
        }
        jj_node *prm = mk(P, JN_NAME, k->line);
        if (!prm)
            return NULL;
        prm->s = k->s;
        prm->slen = k->n;
        P->pos++;
        if (cur(P)->type == JT_ASSIGN) {
            P->pos++;
            prm->kind = JN_KWARG;
            if (!(prm->a = parse_cond(P)))
                return NULL;
        }
        if (append(P, &x->kids, &x->n, &cap, prm))
            return NULL;
        if (cur(P)->type == JT_COMMA)
            P->pos++;
        else if (cur(P)->type != JT_RPAREN) {
            expect(P, JT_RPAREN, "',' or ')' in the macro's parameters");
            return NULL;
        }
    }
    P->pos++;
    if (expect(P, JT_CLOSE_STMT, "'%}' after the macro's parameters") || !(x->d = parse_body(P, ENDS, 1)))
        return NULL;
    P->pos++; /* endmacro [name] */
    if (cur(P)->type == JT_NAME)
        P->pos++;
    if (expect(P, JT_CLOSE_STMT, "'%}' after endmacro"))
        return NULL;
    return x;
}

/* one {% ... %} statement; cur is the tag name. NULL with P->failed on error;
 * *skip set for statements that produce no node. */
static jj_node *parse_stmt(parser *P, int *skip)
{
    const jj_token *k = cur(P);
    int line = k->line;
    *skip = 0;
    if (k->type != JT_NAME) {
        pfail(P, line, "expected a tag name after '{%%', found %s", tok_desc(k));
        return NULL;
    }
    P->pos++;
    if (!strcmp(k->s, "if"))
        return parse_if(P, line);
    if (!strcmp(k->s, "for"))
        return parse_for(P, line);
    if (!strcmp(k->s, "set"))
        return parse_set(P, line);
    if (!strcmp(k->s, "macro"))
        return parse_macro(P, line);
    if (!strcmp(k->s, "break") || !strcmp(k->s, "continue")) {
        jj_node *x = mk(P, k->s[0] == 'b' ? JN_BREAK : JN_CONTINUE, line);
        if (!x || expect(P, JT_CLOSE_STMT, "'%}'"))
            return NULL;
        return x;
    }
    if (!strcmp(k->s, "generation") || !strcmp(k->s, "endgeneration")) {
        *skip = 1;
        if (expect(P, JT_CLOSE_STMT, "'%}'"))
            return NULL;
        return NULL;
    }
    static const char *const KNOWN_END[] = {"endif", "endfor", "endset", "endmacro", "elif", "else"};
    for (size_t i = 0; i < sizeof KNOWN_END / sizeof KNOWN_END[0]; i++)
        if (!strcmp(k->s, KNOWN_END[i])) {
            pfail(P, line, "unexpected '%s' (no open block it could close)", k->s);
            return NULL;
        }
    pfail(P, line, "unsupported tag '%s' (docs/chat.md lists the supported Jinja subset)", k->s);
    return NULL;
}

/* statements until "{% END" with END in ends (cur left on END) or, with
 * n_ends == 0, until the end of the template */
static jj_node *parse_body(parser *P, const char *const *ends, size_t n_ends)
{
    if (enter(P))
        return NULL;
    jj_node *body = mk(P, JN_BODY, cur(P)->line);
    size_t cap = 0;
    if (!body)
        return NULL;
    for (;;) {
        const jj_token *k = cur(P);
        if (k->type == JT_EOF) {
            if (n_ends) {
                pfail(P, k->line, "missing '{%% %s %%}' before the end of the template", ends[n_ends - 1]);
                return NULL;
            }
            break;
        }
        jj_node *x = NULL;
        if (k->type == JT_TEXT) {
            if (!(x = mk(P, JN_TEXT, k->line)))
                return NULL;
            x->s = k->s;
            x->slen = k->n;
            P->pos++;
        } else if (k->type == JT_COMMENT) {
            P->pos++;
            continue;
        } else if (k->type == JT_OPEN_EXPR) {
            P->pos++;
            if (!(x = mk(P, JN_OUT, k->line)) || !(x->a = parse_cond(P)))
                return NULL;
            if (cur(P)->type == JT_COMMA) {
                pfail(P, k->line, "unsupported: a tuple in '{{ }}'%s", NULL);
                return NULL;
            }
            if (expect(P, JT_CLOSE_EXPR, "'}}'"))
                return NULL;
        } else if (k->type == JT_OPEN_STMT) {
            const jj_token *name = peek(P, 1);
            for (size_t i = 0; i < n_ends; i++)
                if (is_name(name, ends[i])) {
                    P->pos++; /* leave cur on the end tag's name */
                    P->depth--;
                    return body;
                }
            P->pos++;
            int skip;
            x = parse_stmt(P, &skip);
            if (!x && (P->failed || !skip))
                return NULL;
            if (!x)
                continue;
        } else {
            pfail(P, k->line, "unexpected %s", tok_desc(k));
            return NULL;
        }
        if (append(P, &body->kids, &body->n, &cap, x))
            return NULL;
    }
    P->depth--;
    return body;
}

int jj_parse(jj_arena *a, const jj_token *toks, size_t n_toks, jj_node **root, slm_err *err)
{
    parser P = {.a = a, .t = toks, .n = n_toks, .err = err};
    jj_node *r = parse_body(&P, NULL, 0);
    if (!r) {
        if (!P.failed)
            slm_err_set(err, SLM_EINPUT, "chat template: cannot parse");
        return err && err->code ? err->code : SLM_EINPUT;
    }
    *root = r;
    return 0;
}
