/* runtime/jinja_lex.c — the chat-template lexer: arena, whitespace helpers,
 * the trim_blocks / lstrip_blocks preprocessing transformers asks of Jinja,
 * and the tokenizer ({{ }}, {% %}, {# #} and their "-" whitespace control). */
#include <stdlib.h>
#include <string.h>

#include "jinja.h"

/* ---- arena ---------------------------------------------------------------- */
struct jj_chunk {
    jj_chunk *next;
    size_t used, size;
    max_align_t data[];
};

void jj_arena_init(jj_arena *a, size_t cap)
{
    memset(a, 0, sizeof *a);
    a->cap = cap;
}

void jj_arena_free(jj_arena *a)
{
    jj_chunk *c = a->head;
    while (c) {
        jj_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->used_total = 0;
}

void *jj_alloc(jj_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if (a->failed || n > a->cap || a->used_total > a->cap - n) {
        a->failed = 1;
        return NULL;
    }
    jj_chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t sz = n > (64u << 10) ? n : (64u << 10);
        c = malloc(sizeof *c + sz);
        if (!c) {
            a->failed = 1;
            return NULL;
        }
        c->size = sz;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    a->used_total += n;
    memset(p, 0, n);
    return p;
}

char *jj_strdup(jj_arena *a, const char *s, size_t n)
{
    char *p = jj_alloc(a, n + 1);
    if (p && n)
        memcpy(p, s, n);
    return p;
}

/* ---- whitespace (Python's str.isspace set) -------------------------------- */
static int is_ws_cp(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

int jj_ws_len(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0)
        return 0;
    if (u[0] < 0x80)
        return is_ws_cp(u[0]) ? 1 : 0;
    if ((u[0] & 0xe0) == 0xc0 && n >= 2 && (u[1] & 0xc0) == 0x80)
        return is_ws_cp(((uint32_t)(u[0] & 0x1f) << 6) | (u[1] & 0x3f)) ? 2 : 0;
    if ((u[0] & 0xf0) == 0xe0 && n >= 3 && (u[1] & 0xc0) == 0x80 && (u[2] & 0xc0) == 0x80)
        return is_ws_cp(((uint32_t)(u[0] & 0x0f) << 12) | ((uint32_t)(u[1] & 0x3f) << 6) | (u[2] & 0x3f)) ? 3
                                                                                                       : 0;
    return 0;
}

int jj_ws_len_back(const char *s, size_t n)
{
    for (int k = 1; k <= 3 && (size_t)k <= n; k++)
        if (jj_ws_len(s + n - k, (size_t)k) == k)
            return k;
    return 0;
}

/* ---- preprocessing ---------------------------------------------------------- */
/* One trailing newline dropped; lstrip_blocks: spaces and tabs from a line start
 * up to "{%" or "{#" removed; trim_blocks: the newline right after "%}", "#}"
 * (or "-}") removed. Same text transformation as @huggingface/jinja applies. */
static char *preprocess(jj_arena *a, const char *src, size_t len, size_t *out_len)
{
    if (len && src[len - 1] == '\n')
        len--;
    char *t = jj_alloc(a, len + 1), *u = jj_alloc(a, len + 1);
    if (!t || !u)
        return NULL;
    size_t o = 0;
    int line_start = 1;
    for (size_t i = 0; i < len;) {
        if (line_start) {
            size_t j = i;
            while (j < len && (src[j] == ' ' || src[j] == '\t'))
                j++;
            if (j + 1 < len && src[j] == '{' && (src[j + 1] == '%' || src[j + 1] == '#' || src[j + 1] == '-'))
                i = j;
            line_start = 0;
            continue;
        }
        char ch = src[i++];
        t[o++] = ch;
        if (ch == '\n' || ch == '\r')
            line_start = 1;
    }
    size_t m = 0;
    for (size_t i = 0; i < o; i++) {
        u[m++] = t[i];
        if (t[i] == '}' && i > 0 && (t[i - 1] == '%' || t[i - 1] == '#' || t[i - 1] == '-') && i + 1 < o &&
            t[i + 1] == '\n')
            i++;
    }
    *out_len = m;
    return u;
}

/* ---- tokenizer ---------------------------------------------------------------- */
typedef struct lexer {
    jj_arena *a;
    const char *s;
    size_t n, pos;
    jj_token *t;
    size_t nt, cap;
    slm_err *err;
    size_t lpos; /* line_at's cache: line number lline at offset lpos */
    int lline;
} lexer;

static int line_at(lexer *L, size_t pos)
{
    if (pos < L->lpos || L->lline == 0) {
        L->lpos = 0;
        L->lline = 1;
    }
    for (size_t i = L->lpos; i < pos && i < L->n; i++)
        L->lline += L->s[i] == '\n';
    L->lpos = pos;
    return L->lline;
}

static int lex_fail(lexer *L, const char *what)
{
    return slm_err_set(L->err, SLM_EINPUT, "chat template: line %d: %s", line_at(L, L->pos), what);
}

static jj_token *push(lexer *L, int type, const char *s, size_t n)
{
    if (L->nt == L->cap) {
        size_t nc = L->cap ? L->cap * 2 : 256;
        jj_token *nt = jj_alloc(L->a, nc * sizeof *nt);
        if (!nt)
            return NULL;
        if (L->nt)
            memcpy(nt, L->t, L->nt * sizeof *nt);
        L->t = nt;
        L->cap = nc;
    }
    jj_token *k = &L->t[L->nt++];
    memset(k, 0, sizeof *k);
    k->type = type;
    k->line = 0;
    k->s = s ? jj_strdup(L->a, s, n) : "";
    k->n = n;
    if (s && !k->s)
        return NULL;
    return k;
}

/* "{%-" / "{{-" / "{#-": strip trailing whitespace of the preceding text */
static void strip_prev_text(lexer *L)
{
    if (L->nt && L->t[L->nt - 1].type == JT_TEXT) {
        jj_token *k = &L->t[L->nt - 1];
        int w;
        while (k->n && (w = jj_ws_len_back(k->s, k->n)) > 0)
            k->n -= (size_t)w;
        if (k->n == 0)
            L->nt--;
    }
}

static void skip_ws(lexer *L)
{
    int w;
    while (L->pos < L->n && (w = jj_ws_len(L->s + L->pos, L->n - L->pos)) > 0)
        L->pos += (size_t)w;
}

static void put_utf8(char *o, size_t *m, uint32_t c)
{
    if (c < 0x80)
        o[(*m)++] = (char)c;
    else if (c < 0x800) {
        o[(*m)++] = (char)(0xc0 | (c >> 6));
        o[(*m)++] = (char)(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
        o[(*m)++] = (char)(0xe0 | (c >> 12));
        o[(*m)++] = (char)(0x80 | ((c >> 6) & 0x3f));
        o[(*m)++] = (char)(0x80 | (c & 0x3f));
    } else {
        o[(*m)++] = (char)(0xf0 | (c >> 18));
        o[(*m)++] = (char)(0x80 | ((c >> 12) & 0x3f));
        o[(*m)++] = (char)(0x80 | ((c >> 6) & 0x3f));
        o[(*m)++] = (char)(0x80 | (c & 0x3f));
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A string literal with Python's escapes (unknown escapes stay as written). */
static int lex_string(lexer *L)
{
    char q = L->s[L->pos++];
    size_t start = L->pos;
    while (L->pos < L->n && L->s[L->pos] != q) {
        if (L->s[L->pos] == '\\')
            L->pos++;
        L->pos++;
    }
    if (L->pos >= L->n)
        return lex_fail(L, "unterminated string literal");
    size_t end = L->pos++;
    char *o = jj_alloc(L->a, (end - start) * 2 + 8);
    if (!o)
        return lex_fail(L, "template too large (memory limit)");
    size_t m = 0;
    for (size_t i = start; i < end;) {
        char c = L->s[i++];
        if (c != '\\' || i >= end) {
            o[m++] = c;
            continue;
        }
        char e = L->s[i++];
        switch (e) {
        case 'n': o[m++] = '\n'; break;
        case 't': o[m++] = '\t'; break;
        case 'r': o[m++] = '\r'; break;
        case 'b': o[m++] = '\b'; break;
        case 'f': o[m++] = '\f'; break;
        case 'v': o[m++] = '\v'; break;
        case 'a': o[m++] = '\a'; break;
        case '\\': o[m++] = '\\'; break;
        case '\'': o[m++] = '\''; break;
        case '"': o[m++] = '"'; break;
        case '\n': break; /* line continuation */
        case 'x': case 'u': case 'U': {
            int k = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t c2 = 0;
            for (int j = 0; j < k; j++) {
                int h = i + (size_t)j < end ? hexval(L->s[i + (size_t)j]) : -1;
                if (h < 0)
                    return lex_fail(L, "bad \\x, \\u or \\U escape in a string literal");
                c2 = c2 * 16 + (uint32_t)h;
            }
            if (c2 > 0x10ffff || (c2 >= 0xd800 && c2 <= 0xdfff))
                return lex_fail(L, "escape outside Unicode (or a surrogate) in a string literal");
            i += (size_t)k;
            put_utf8(o, &m, c2);
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                uint32_t c2 = (uint32_t)(e - '0');
                for (int j = 0; j < 2 && i < end && L->s[i] >= '0' && L->s[i] <= '7'; j++)
                    c2 = c2 * 8 + (uint32_t)(L->s[i++] - '0');
                put_utf8(o, &m, c2);
            } else {
                o[m++] = '\\';
                o[m++] = e;
            }
        }
    }
    jj_token *k = push(L, JT_STR, o, m);
    return k ? 0 : lex_fail(L, "template too large (memory limit)");
}

static const char *const OPS[] = {"**", "//", "==", "!=", "<=", ">=", "<", ">", "+", "-", "~", "*", "/", "%"};

/* one token inside {{ }} / {% %}; *closed set when the tag ended */
static int lex_inside(lexer *L, int stmt, int *depth, int *closed)
{
    skip_ws(L);
    if (L->pos >= L->n)
        return lex_fail(L, stmt ? "unclosed '{%' tag" : "unclosed '{{' expression");
    const char *p = L->s + L->pos;
    size_t left = L->n - L->pos;
    int close = stmt ? JT_CLOSE_STMT : JT_CLOSE_EXPR;
    char c1 = stmt ? '%' : '}';
    if (left >= 3 && p[0] == '-' && p[1] == c1 && p[2] == '}' && (stmt || *depth == 0)) {
        L->pos += 3;
        if (!push(L, close, NULL, 0))
            return lex_fail(L, "template too large (memory limit)");
        skip_ws(L);
        *closed = 1;
        return 0;
    }
    if (left >= 2 && p[0] == c1 && p[1] == '}' && (stmt || *depth == 0)) {
        L->pos += 2;
        if (!push(L, close, NULL, 0))
            return lex_fail(L, "template too large (memory limit)");
        *closed = 1;
        return 0;
    }
    if (p[0] == '\'' || p[0] == '"')
        return lex_string(L);
    if (p[0] >= '0' && p[0] <= '9') {
        size_t i = 0;
        while (i < left && p[i] >= '0' && p[i] <= '9')
            i++;
        int isf = 0;
        if (i + 1 < left && p[i] == '.' && p[i + 1] >= '0' && p[i + 1] <= '9' &&
            !(L->nt && L->t[L->nt - 1].type == JT_DOT)) {
            isf = 1;
            i++;
            while (i < left && p[i] >= '0' && p[i] <= '9')
                i++;
        }
        if (i < left && (p[i] == 'e' || p[i] == 'E')) { /* exponent: 1e5, 2.5E-3 */
            size_t j = i + 1;
            if (j < left && (p[j] == '+' || p[j] == '-'))
                j++;
            if (j < left && p[j] >= '0' && p[j] <= '9') {
                while (j < left && p[j] >= '0' && p[j] <= '9')
                    j++;
                i = j;
                isf = 1;
            }
        }
        jj_token *k = push(L, isf ? JT_FLOAT : JT_INT, p, i);
        if (!k)
            return lex_fail(L, "template too large (memory limit)");
        if (isf)
            k->f = strtod(k->s, NULL);
        else {
            int64_t v = 0;
            for (size_t j = 0; j < i; j++) {
                int d = p[j] - '0';
                if (v > (INT64_MAX - d) / 10)
                    return lex_fail(L, "integer literal larger than 64 bits");
                v = v * 10 + d;
            }
            k->i = v;
        }
        L->pos += i;
        return 0;
    }
    if ((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z') || p[0] == '_') {
        size_t i = 0;
        while (i < left && ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') || p[i] == '_' ||
                            (p[i] >= '0' && p[i] <= '9')))
            i++;
        if (!push(L, JT_NAME, p, i))
            return lex_fail(L, "template too large (memory limit)");
        L->pos += i;
        return 0;
    }
    static const struct { char c; int t; } P1[] = {
        {'(', JT_LPAREN}, {')', JT_RPAREN}, {'[', JT_LBRACK}, {']', JT_RBRACK}, {'{', JT_LBRACE},
        {'}', JT_RBRACE}, {',', JT_COMMA}, {'.', JT_DOT},    {':', JT_COLON},  {'|', JT_PIPE}};
    for (size_t k = 0; k < sizeof P1 / sizeof P1[0]; k++)
        if (p[0] == P1[k].c) {
            if (P1[k].t == JT_LBRACE)
                (*depth)++;
            if (P1[k].t == JT_RBRACE)
                (*depth)--;
            if (!push(L, P1[k].t, p, 1))
                return lex_fail(L, "template too large (memory limit)");
            L->pos++;
            return 0;
        }
    for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++) {
        size_t ol = strlen(OPS[k]);
        if (left >= ol && !memcmp(p, OPS[k], ol)) {
            if (!push(L, JT_OP, OPS[k], ol))
                return lex_fail(L, "template too large (memory limit)");
            L->pos += ol;
            return 0;
        }
    }
    if (p[0] == '=') {
        if (!push(L, JT_ASSIGN, p, 1))
            return lex_fail(L, "template too large (memory limit)");
        L->pos++;
        return 0;
    }
    char msg[64];
    if ((unsigned char)p[0] >= 0x20 && (unsigned char)p[0] < 0x7f)
        snprintf(msg, sizeof msg, "unexpected character '%c' in a tag", p[0]);
    else
        snprintf(msg, sizeof msg, "unexpected byte 0x%02x in a tag", (unsigned char)p[0]);
    return lex_fail(L, msg);
}

int jj_lex(jj_arena *a, const char *src, size_t len, jj_token **toks, size_t *n_toks, slm_err *err)
{
    lexer L = {.a = a, .err = err};
    if (len > JJ_MAX_TEMPLATE)
        return slm_err_set(err, SLM_EINPUT, "chat template: %zu bytes, more than the %u supported", len,
                           JJ_MAX_TEMPLATE);
    L.s = preprocess(a, src, len, &L.n);
    if (!L.s)
        return slm_err_set(err, SLM_EINTERNAL, "chat template: out of memory");
    while (L.pos < L.n) {
        const char *p = L.s + L.pos;
        size_t left = L.n - L.pos;
        int open = left >= 2 && p[0] == '{' && (p[1] == '%' || p[1] == '{' || p[1] == '#');
        if (!open) {
            size_t i = 0;
            while (i < left && !(p[i] == '{' && i + 1 < left && (p[i + 1] == '%' || p[i + 1] == '{' || p[i + 1] == '#')))
                i++;
            jj_token *k = push(&L, JT_TEXT, p, i);
            if (!k)
                return lex_fail(&L, "template too large (memory limit)");
            k->line = line_at(&L, L.pos);
            L.pos += i;
            continue;
        }
        int line = line_at(&L, L.pos);
        if (p[1] == '#') {
            L.pos += 2;
            int strip_before = L.pos < L.n && L.s[L.pos] == '-';
            size_t i = L.pos;
            while (i + 1 < L.n && !(L.s[i] == '#' && L.s[i + 1] == '}'))
                i++;
            if (i + 1 >= L.n)
                return lex_fail(&L, "unclosed comment '{#'");
            int strip_after = i > L.pos && L.s[i - 1] == '-';
            if (strip_before)
                strip_prev_text(&L);
            if (!push(&L, JT_COMMENT, NULL, 0))
                return lex_fail(&L, "template too large (memory limit)");
            L.pos = i + 2;
            if (strip_after)
                skip_ws(&L);
            continue;
        }
        int stmt = p[1] == '%';
        L.pos += 2;
        if (L.pos < L.n && L.s[L.pos] == '-') {
            strip_prev_text(&L);
            L.pos++;
        } else if (L.pos < L.n && L.s[L.pos] == '+') {
            L.pos++; /* "{%+": no lstrip (already decided by preprocessing) */
        }
        jj_token *k = push(&L, stmt ? JT_OPEN_STMT : JT_OPEN_EXPR, NULL, 0);
        if (!k)
            return lex_fail(&L, "template too large (memory limit)");
        k->line = line;
        int depth = 0, closed = 0;
        while (!closed) {
            size_t before = L.nt;
            int rc = lex_inside(&L, stmt, &depth, &closed);
            if (rc)
                return rc;
            for (size_t j = before; j < L.nt; j++)
                L.t[j].line = line;
        }
    }
    jj_token *k = push(&L, JT_EOF, NULL, 0);
    if (!k)
        return lex_fail(&L, "template too large (memory limit)");
    k->line = line_at(&L, L.n);
    *toks = L.t;
    *n_toks = L.nt;
    return 0;
}
