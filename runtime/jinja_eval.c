/* runtime/jinja_eval.c — the chat-template evaluator: values with Python's
 * semantics (str(), ==, truthiness, slicing by code point, int/float
 * arithmetic), scopes as Jinja2 has them (a for loop's body gets a fresh scope
 * per iteration; if does not open one), the filters, tests, string/dict
 * methods and globals chat templates use. Bounded by steps, loop iterations,
 * nesting depth, arena bytes and output bytes (jinja.h). */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jinja.h"

typedef struct scope {
    struct scope *parent;
    const char **names;
    jj_val *vals;
    size_t n, cap;
} scope;

typedef struct ev {
    jj_arena a;
    char *out;
    size_t n, cap;
    long steps, iters;
    int depth;
    int failed;
    int ctl; /* 1 break, 2 continue (pending loop control) */
    slm_err *err;
    const slm_chat_params *p;
    struct scope *top; /* the template's top-level scope: macros resolve free names there */
} ev;

#define EFAIL SLM_EINPUT

static int fail(ev *E, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(ev *E, int line, const char *fmt, ...)
{
    if (!E->failed) {
        char what[640];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        if (line > 0)
            slm_err_set(E->err, SLM_EINPUT, "chat template: line %d: %s", line, what);
        else
            slm_err_set(E->err, SLM_EINPUT, "chat template: %s", what);
        E->failed = 1;
    }
    return EFAIL;
}

static int oom(ev *E)
{
    return fail(E, 0, "memory limit reached while rendering (%u MiB)", JJ_MAX_ARENA >> 20);
}

/* ---- values ------------------------------------------------------------------- */
static const jj_val UNDEF = {.t = JV_UNDEF};

static jj_val vnone(void) { jj_val v = {.t = JV_NONE}; return v; }
static jj_val vbool(int b) { jj_val v = {.t = JV_BOOL}; v.u.b = !!b; return v; }
static jj_val vint(int64_t i) { jj_val v = {.t = JV_INT}; v.u.i = i; return v; }
static jj_val vfloat(double f) { jj_val v = {.t = JV_FLOAT}; v.u.f = f; return v; }
static jj_val vstr(const char *p, size_t n) { jj_val v = {.t = JV_STR}; v.u.s.p = p; v.u.s.n = n; return v; }
static jj_val vcstr(const char *p) { return vstr(p, strlen(p)); }

static jj_list *new_list(ev *E, size_t cap)
{
    jj_list *l = jj_alloc(&E->a, sizeof *l);
    if (!l)
        return NULL;
    l->cap = cap ? cap : 4;
    l->v = jj_alloc(&E->a, l->cap * sizeof *l->v);
    return l->v ? l : NULL;
}

static int list_push(ev *E, jj_list *l, jj_val v)
{
    if (l->n == l->cap) {
        size_t nc = l->cap * 2;
        jj_val *nv = jj_alloc(&E->a, nc * sizeof *nv);
        if (!nv)
            return oom(E);
        memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = v;
    return 0;
}

static jj_val vlist(jj_list *l) { jj_val v = {.t = JV_LIST}; v.u.l = l; return v; }
static jj_val vdict(jj_dict *d) { jj_val v = {.t = JV_DICT}; v.u.d = d; return v; }

static jj_dict *new_dict(ev *E)
{
    jj_dict *d = jj_alloc(&E->a, sizeof *d);
    if (!d)
        return NULL;
    d->cap = 4;
    d->k = jj_alloc(&E->a, d->cap * sizeof *d->k);
    d->v = jj_alloc(&E->a, d->cap * sizeof *d->v);
    return d->k && d->v ? d : NULL;
}

static int vequal(const jj_val *x, const jj_val *y);

static jj_val *dict_find(const jj_dict *d, const jj_val *k)
{
    for (size_t i = 0; i < d->n; i++)
        if (vequal(&d->k[i], k))
            return &d->v[i];
    return NULL;
}

static jj_val *dict_get(const jj_dict *d, const char *key, size_t n)
{
    jj_val k = vstr(key, n);
    return dict_find(d, &k);
}

static int dict_set(ev *E, jj_dict *d, jj_val k, jj_val v)
{
    jj_val *slot = dict_find(d, &k);
    if (slot) {
        *slot = v;
        return 0;
    }
    if (d->n == d->cap) {
        size_t nc = d->cap * 2;
        jj_val *nk = jj_alloc(&E->a, nc * sizeof *nk), *nv = jj_alloc(&E->a, nc * sizeof *nv);
        if (!nk || !nv)
            return oom(E);
        memcpy(nk, d->k, d->n * sizeof *nk);
        memcpy(nv, d->v, d->n * sizeof *nv);
        d->k = nk;
        d->v = nv;
        d->cap = nc;
    }
    d->k[d->n] = k;
    d->v[d->n++] = v;
    return 0;
}

static int truthy(const jj_val *v)
{
    switch (v->t) {
    case JV_BOOL: return v->u.b;
    case JV_INT: return v->u.i != 0;
    case JV_FLOAT: return v->u.f != 0;
    case JV_STR: return v->u.s.n > 0;
    case JV_LIST: return v->u.l->n > 0;
    case JV_DICT: return v->u.d->n > 0;
    case JV_FUNC: case JV_MACRO: return 1;
    default: return 0;
    }
}

static int is_num(const jj_val *v) { return v->t == JV_INT || v->t == JV_FLOAT || v->t == JV_BOOL; }
static double num(const jj_val *v)
{
    return v->t == JV_FLOAT ? v->u.f : v->t == JV_INT ? (double)v->u.i : v->t == JV_BOOL ? v->u.b : 0;
}

/* Python ==: numbers across int/float/bool, strings by bytes, lists and dicts deeply */
static int vequal_d(const jj_val *x, const jj_val *y, int depth)
{
    if (depth > JJ_MAX_DEPTH)
        return 0;
    if (is_num(x) && is_num(y)) {
        if (x->t != JV_FLOAT && y->t != JV_FLOAT)
            return (x->t == JV_INT ? x->u.i : x->u.b) == (y->t == JV_INT ? y->u.i : y->u.b);
        return num(x) == num(y);
    }
    if (x->t != y->t)
        return 0;
    switch (x->t) {
    case JV_UNDEF: case JV_NONE: return 1;
    case JV_STR: return x->u.s.n == y->u.s.n && (x->u.s.n == 0 || !memcmp(x->u.s.p, y->u.s.p, x->u.s.n));
    case JV_FUNC: return x->u.fn == y->u.fn;
    case JV_MACRO: return x->u.macro == y->u.macro;
    case JV_LIST:
        if (x->u.l->n != y->u.l->n)
            return 0;
        for (size_t i = 0; i < x->u.l->n; i++)
            if (!vequal_d(&x->u.l->v[i], &y->u.l->v[i], depth + 1))
                return 0;
        return 1;
    case JV_DICT:
        if (x->u.d == y->u.d)
            return 1;
        if (x->u.d->n != y->u.d->n || x->u.d->ns || y->u.d->ns)
            return 0;
        for (size_t i = 0; i < x->u.d->n; i++) {
            const jj_val *o = dict_find(y->u.d, &x->u.d->k[i]);
            if (!o || !vequal_d(&x->u.d->v[i], o, depth + 1))
                return 0;
        }
        return 1;
    default: return 0;
    }
}
static int vequal(const jj_val *x, const jj_val *y) { return vequal_d(x, y, 0); }

static const char *type_name(const jj_val *v)
{
    static const char *const N[] = {"undefined", "NoneType", "bool", "int", "float", "str", "list", "dict", "function",
                                    "macro"};
    if (v->t == JV_LIST && v->tuple)
        return "tuple";
    if (v->t == JV_DICT && v->u.d->ns)
        return "Namespace";
    return v->t <= JV_MACRO ? N[v->t] : "?";
}

/* ---- string builder (arena) ---------------------------------------------------- */
typedef struct sb { char *p; size_t n, cap; ev *E; int bad; } sb;

static void sb_put(sb *b, const char *s, size_t n)
{
    if (b->bad || n == 0)
        return;
    if (b->n + n > JJ_MAX_OUTPUT) {
        b->bad = 1;
        fail(b->E, 0, "a string grew past the output limit (%u MiB)", JJ_MAX_OUTPUT >> 20);
        return;
    }
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->n + n)
            nc *= 2;
        char *np = jj_alloc(&b->E->a, nc + 1);
        if (!np) {
            b->bad = 1;
            oom(b->E);
            return;
        }
        if (b->n)
            memcpy(np, b->p, b->n);
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void sb_puts(sb *b, const char *s) { sb_put(b, s, strlen(s)); }
static jj_val sb_val(sb *b) { return b->n ? vstr(b->p, b->n) : vstr("", 0); }

/* Python's repr() of a float: shortest round-trip digits, exponent outside [1e-4, 1e16) */
static void fmt_float(double f, char *buf, size_t cap)
{
    if (isnan(f)) { snprintf(buf, cap, "nan"); return; }
    if (isinf(f)) { snprintf(buf, cap, f < 0 ? "-inf" : "inf"); return; }
    char tmp[64];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    /* tmp: d.ddde[+-]XX with prec significant digits */
    char digits[32];
    int nd = 0, neg = tmp[0] == '-';
    const char *q = tmp + neg;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9')
            digits[nd++] = *q;
    int exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = 0;
    size_t o = 0;
    if (neg)
        buf[o++] = '-';
    if (exp10 < -4 || exp10 >= 16) {
        buf[o++] = digits[0];
        if (nd > 1) {
            buf[o++] = '.';
            for (int i = 1; i < nd; i++)
                buf[o++] = digits[i];
        }
        snprintf(buf + o, cap - o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
        return;
    }
    if (exp10 < 0) {
        buf[o++] = '0';
        buf[o++] = '.';
        for (int i = 0; i < -exp10 - 1; i++)
            buf[o++] = '0';
        for (int i = 0; i < nd; i++)
            buf[o++] = digits[i];
    } else {
        for (int i = 0; i <= exp10; i++)
            buf[o++] = i < nd ? digits[i] : '0';
        buf[o++] = '.';
        if (nd > exp10 + 1)
            for (int i = exp10 + 1; i < nd; i++)
                buf[o++] = digits[i];
        else
            buf[o++] = '0';
    }
    buf[o] = 0;
}

static void repr_str(sb *b, const char *s, size_t n)
{
    int has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    sb_put(b, &q, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[8];
        if (c == '\\') sb_puts(b, "\\\\");
        else if (c == '\n') sb_puts(b, "\\n");
        else if (c == '\r') sb_puts(b, "\\r");
        else if (c == '\t') sb_puts(b, "\\t");
        else if (c == (unsigned char)q) { sb_puts(b, "\\"); sb_put(b, &q, 1); }
        else if (c < 0x20 || c == 0x7f) { snprintf(e, sizeof e, "\\x%02x", c); sb_puts(b, e); }
        else sb_put(b, (const char *)&s[i], 1);
    }
    sb_put(b, &q, 1);
}

/* Python str() (repr=0) or repr() (repr=1) */
static void to_text(sb *b, const jj_val *v, int repr, int depth)
{
    char buf[64];
    if (depth > JJ_MAX_DEPTH) {
        sb_puts(b, "...");
        return;
    }
    switch (v->t) {
    case JV_UNDEF: break;
    case JV_NONE: sb_puts(b, "None"); break;
    case JV_BOOL: sb_puts(b, v->u.b ? "True" : "False"); break;
    case JV_INT: snprintf(buf, sizeof buf, "%lld", (long long)v->u.i); sb_puts(b, buf); break;
    case JV_FLOAT: fmt_float(v->u.f, buf, sizeof buf); sb_puts(b, buf); break;
    case JV_STR:
        if (repr)
            repr_str(b, v->u.s.p, v->u.s.n);
        else
            sb_put(b, v->u.s.p, v->u.s.n);
        break;
    case JV_LIST:
        sb_puts(b, v->tuple ? "(" : "[");
        for (size_t i = 0; i < v->u.l->n; i++) {
            if (i)
                sb_puts(b, ", ");
            to_text(b, &v->u.l->v[i], 1, depth + 1);
        }
        sb_puts(b, v->tuple ? (v->u.l->n == 1 ? ",)" : ")") : "]");
        break;
    case JV_DICT:
        sb_puts(b, v->u.d->ns ? "<Namespace {" : "{");
        for (size_t i = 0; i < v->u.d->n; i++) {
            if (i)
                sb_puts(b, ", ");
            to_text(b, &v->u.d->k[i], 1, depth + 1);
            sb_puts(b, ": ");
            to_text(b, &v->u.d->v[i], 1, depth + 1);
        }
        sb_puts(b, v->u.d->ns ? "}>" : "}");
        break;
    case JV_FUNC: sb_puts(b, "<function>"); break;
    case JV_MACRO: sb_puts(b, "<macro>"); break;
    }
}

static jj_val str_of(ev *E, const jj_val *v)
{
    if (v->t == JV_STR)
        return *v;
    sb b = {.E = E};
    to_text(&b, v, 0, 0);
    return sb_val(&b);
}

/* ---- UTF-8 code points (Python indexes strings by code point) --------------- */
static size_t cp_count(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

/* byte offsets of each code point start, plus n at the end: *cnt + 1 entries */
static size_t *cp_offsets(ev *E, const char *s, size_t n, size_t *cnt)
{
    size_t c = cp_count(s, n);
    size_t *off = jj_alloc(&E->a, (c + 1) * sizeof *off);
    if (!off)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80 && k < c)
            off[k++] = i;
    off[c] = n;
    *cnt = c;
    return off;
}

/* ---- JSON (transformers' tojson: json.dumps with ensure_ascii=False) -------- */
typedef struct json_opts { int indent; int sort_keys; int ensure_ascii; const char *item_sep, *key_sep; } json_opts;

static void json_str(sb *b, const char *s, size_t n, int ensure_ascii)
{
    sb_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[16];
        if (c == '"') sb_puts(b, "\\\"");
        else if (c == '\\') sb_puts(b, "\\\\");
        else if (c == '\n') sb_puts(b, "\\n");
        else if (c == '\r') sb_puts(b, "\\r");
        else if (c == '\t') sb_puts(b, "\\t");
        else if (c == '\b') sb_puts(b, "\\b");
        else if (c == '\f') sb_puts(b, "\\f");
        else if (c < 0x20 || (ensure_ascii && c == 0x7f)) { snprintf(e, sizeof e, "\\u%04x", c); sb_puts(b, e); }
        else if (ensure_ascii && c >= 0x80) {
            uint32_t cp = 0;
            int k = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 0;
            cp = k == 1 ? c & 0x1f : k == 2 ? c & 0x0f : c & 0x07;
            if (k == 0 || i + (size_t)k >= n) {
                snprintf(e, sizeof e, "\\u%04x", 0xfffd);
                sb_puts(b, e);
                continue;
            }
            for (int j = 1; j <= k; j++)
                cp = (cp << 6) | ((unsigned char)s[i + (size_t)j] & 0x3f);
            i += (size_t)k;
            if (cp >= 0x10000) {
                cp -= 0x10000;
                snprintf(e, sizeof e, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
            } else
                snprintf(e, sizeof e, "\\u%04x", cp);
            sb_puts(b, e);
        } else
            sb_put(b, (const char *)&s[i], 1);
    }
    sb_puts(b, "\"");
}

static void json_nl(sb *b, const json_opts *o, int depth)
{
    sb_puts(b, "\n");
    for (int i = 0; i < depth * o->indent && !b->bad; i++)
        sb_puts(b, " ");
}

static int json_val(ev *E, sb *b, const jj_val *v, const json_opts *o, int depth)
{
    char buf[64];
    if (depth > JJ_MAX_DEPTH)
        return fail(E, 0, "tojson: nested more than %d levels", JJ_MAX_DEPTH);
    switch (v->t) {
    case JV_UNDEF: case JV_NONE: sb_puts(b, "null"); return 0;
    case JV_BOOL: sb_puts(b, v->u.b ? "true" : "false"); return 0;
    case JV_INT: snprintf(buf, sizeof buf, "%lld", (long long)v->u.i); sb_puts(b, buf); return 0;
    case JV_FLOAT:
        if (isnan(v->u.f)) sb_puts(b, "NaN");
        else if (isinf(v->u.f)) sb_puts(b, v->u.f < 0 ? "-Infinity" : "Infinity");
        else { fmt_float(v->u.f, buf, sizeof buf); sb_puts(b, buf); }
        return 0;
    case JV_STR: json_str(b, v->u.s.p, v->u.s.n, o->ensure_ascii); return 0;
    case JV_LIST:
        sb_puts(b, "[");
        for (size_t i = 0; i < v->u.l->n; i++) {
            if (i)
                sb_puts(b, o->item_sep);
            if (o->indent >= 0)
                json_nl(b, o, depth + 1);
            if (json_val(E, b, &v->u.l->v[i], o, depth + 1))
                return EFAIL;
        }
        if (o->indent >= 0 && v->u.l->n)
            json_nl(b, o, depth);
        sb_puts(b, "]");
        return 0;
    case JV_DICT: {
        const jj_dict *d = v->u.d;
        size_t *ord = jj_alloc(&E->a, (d->n + 1) * sizeof *ord);
        if (!ord)
            return oom(E);
        for (size_t i = 0; i < d->n; i++) {
            if (d->k[i].t != JV_STR)
                return fail(E, 0, "tojson: dict key of type %s (only strings supported)", type_name(&d->k[i]));
            ord[i] = i;
        }
        if (o->sort_keys) /* insertion sort: dicts here are small */
            for (size_t i = 1; i < d->n; i++)
                for (size_t j = i; j > 0; j--) {
                    const jj_val *x = &d->k[ord[j - 1]], *y = &d->k[ord[j]];
                    size_t m = x->u.s.n < y->u.s.n ? x->u.s.n : y->u.s.n;
                    int c = m ? memcmp(x->u.s.p, y->u.s.p, m) : 0;
                    if (c < 0 || (c == 0 && x->u.s.n <= y->u.s.n))
                        break;
                    size_t t = ord[j];
                    ord[j] = ord[j - 1];
                    ord[j - 1] = t;
                }
        sb_puts(b, "{");
        for (size_t i = 0; i < d->n; i++) {
            if (i)
                sb_puts(b, o->item_sep);
            if (o->indent >= 0)
                json_nl(b, o, depth + 1);
            json_str(b, d->k[ord[i]].u.s.p, d->k[ord[i]].u.s.n, o->ensure_ascii);
            sb_puts(b, o->key_sep);
            if (json_val(E, b, &d->v[ord[i]], o, depth + 1))
                return EFAIL;
        }
        if (o->indent >= 0 && d->n)
            json_nl(b, o, depth);
        sb_puts(b, "}");
        return 0;
    }
    default: return fail(E, 0, "tojson: cannot serialize a %s", type_name(v));
    }
}

/* ---- slicing (Python's slice.indices) ------------------------------------------- */
static int slice_indices(ev *E, int line, const jj_val *sv[3], int64_t len, int64_t *start, int64_t *stop, int64_t *step)
{
    for (int i = 0; i < 3; i++)
        if (sv[i] && sv[i]->t != JV_NONE && sv[i]->t != JV_INT && sv[i]->t != JV_BOOL)
            return fail(E, line, "slice indices must be integers or None, not %s", type_name(sv[i]));
#define SLV(k) (sv[k] && sv[k]->t != JV_NONE ? (sv[k]->t == JV_BOOL ? sv[k]->u.b : sv[k]->u.i) : 0)
#define SLSET(k) (sv[k] && sv[k]->t != JV_NONE)
    *step = SLSET(2) ? SLV(2) : 1;
    if (*step == 0)
        return fail(E, line, "slice step cannot be zero");
    if (*step < -INT64_MAX)
        *step = -INT64_MAX;
    int64_t lo = *step < 0 ? -1 : 0, hi = *step < 0 ? len - 1 : len;
    if (!SLSET(0))
        *start = *step < 0 ? hi : lo;
    else {
        int64_t s = SLV(0);
        if (s < 0) { s = s < -len ? lo : s + len; if (s < lo) s = lo; }
        else if (s > hi) s = hi;
        *start = s;
    }
    if (!SLSET(1))
        *stop = *step < 0 ? lo : hi;
    else {
        int64_t s = SLV(1);
        if (s < 0) { s = s < -len ? lo : s + len; if (s < lo) s = lo; }
        else if (s > hi) s = hi;
        *stop = s;
    }
#undef SLV
#undef SLSET
    return 0;
}

static int do_slice(ev *E, int line, const jj_val *obj, const jj_val *sv[3], jj_val *out)
{
    int64_t start, stop, step;
    if (obj->t == JV_LIST) {
        const jj_list *l = obj->u.l;
        if (slice_indices(E, line, sv, (int64_t)l->n, &start, &stop, &step))
            return EFAIL;
        jj_list *r = new_list(E, 4);
        if (!r)
            return oom(E);
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            if (list_push(E, r, l->v[i]))
                return EFAIL;
            if (step > 0 ? i > INT64_MAX - step : i < INT64_MIN - step)
                break;
        }
        *out = vlist(r);
        out->tuple = obj->tuple;
        return 0;
    }
    if (obj->t == JV_STR) {
        size_t cnt;
        size_t *off = cp_offsets(E, obj->u.s.p, obj->u.s.n, &cnt);
        if (!off)
            return oom(E);
        if (slice_indices(E, line, sv, (int64_t)cnt, &start, &stop, &step))
            return EFAIL;
        sb b = {.E = E};
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            sb_put(&b, obj->u.s.p + off[i], off[i + 1] - off[i]);
            if (b.bad)
                return EFAIL;
            if (step > 0 ? i > INT64_MAX - step : i < INT64_MIN - step)
                break;
        }
        *out = sb_val(&b);
        return 0;
    }
    if (obj->t == JV_UNDEF)
        return fail(E, line, "cannot slice an undefined value");
    return fail(E, line, "cannot slice a %s", type_name(obj));
}

/* obj[key] as Jinja's getitem: out-of-range and missing keys give undefined */
static int do_index(ev *E, int line, const jj_val *obj, const jj_val *key, jj_val *out)
{
    *out = UNDEF;
    if (obj->t == JV_UNDEF)
        return fail(E, line, "cannot index an undefined value");
    if (obj->t == JV_DICT) {
        const jj_val *v = dict_find(obj->u.d, key);
        if (v)
            *out = *v;
        return 0;
    }
    if (obj->t == JV_LIST || obj->t == JV_STR) {
        if (key->t != JV_INT && key->t != JV_BOOL)
            return 0; /* Jinja: a failed lookup is undefined */
        int64_t i = key->t == JV_BOOL ? key->u.b : key->u.i;
        if (obj->t == JV_LIST) {
            int64_t n = (int64_t)obj->u.l->n;
            if (i < 0)
                i += n;
            if (i >= 0 && i < n)
                *out = obj->u.l->v[i];
            return 0;
        }
        size_t cnt;
        size_t *off = cp_offsets(E, obj->u.s.p, obj->u.s.n, &cnt);
        if (!off)
            return oom(E);
        if (i < 0)
            i += (int64_t)cnt;
        if (i >= 0 && i < (int64_t)cnt)
            *out = vstr(obj->u.s.p + off[i], off[i + 1] - off[i]);
        return 0;
    }
    if (obj->t == JV_NONE)
        return fail(E, line, "cannot index None");
    return 0;
}

/* ---- operators ---------------------------------------------------------------- */
static const char *const BINOP_NAME[] = {"==", "!=", "<", ">", "<=", ">=", "in", "not in", "+", "-", "~",
                                         "*", "/", "//", "%", "**"};

static int64_t ival(const jj_val *v) { return v->t == JV_BOOL ? v->u.b : v->u.i; }
static int is_intlike(const jj_val *v) { return v->t == JV_INT || v->t == JV_BOOL; }

static int compare(ev *E, int line, int op, const jj_val *x, const jj_val *y, int *res)
{
    int c;
    if (is_num(x) && is_num(y)) {
        if (is_intlike(x) && is_intlike(y))
            c = ival(x) < ival(y) ? -1 : ival(x) > ival(y);
        else {
            double a = num(x), b = num(y);
            if (isnan(a) || isnan(b)) {
                *res = 0;
                return 0;
            }
            c = a < b ? -1 : a > b;
        }
    } else if (x->t == JV_STR && y->t == JV_STR) {
        size_t m = x->u.s.n < y->u.s.n ? x->u.s.n : y->u.s.n;
        c = m ? memcmp(x->u.s.p, y->u.s.p, m) : 0;
        if (c == 0)
            c = x->u.s.n < y->u.s.n ? -1 : x->u.s.n > y->u.s.n;
    } else
        return fail(E, line, "'%s' not supported between %s and %s", BINOP_NAME[op], type_name(x), type_name(y));
    *res = op == JB_LT ? c < 0 : op == JB_GT ? c > 0 : op == JB_LE ? c <= 0 : c >= 0;
    return 0;
}

static int contains(ev *E, int line, const jj_val *item, const jj_val *coll, int *res)
{
    if (coll->t == JV_STR) {
        if (item->t != JV_STR)
            return fail(E, line, "'in <string>' requires a string on the left, not %s", type_name(item));
        *res = item->u.s.n == 0 || memmem(coll->u.s.p, coll->u.s.n, item->u.s.p, item->u.s.n) != NULL;
        return 0;
    }
    if (coll->t == JV_LIST) {
        *res = 0;
        for (size_t i = 0; i < coll->u.l->n && !*res; i++)
            *res = vequal(item, &coll->u.l->v[i]);
        return 0;
    }
    if (coll->t == JV_DICT) {
        *res = dict_find(coll->u.d, item) != NULL;
        return 0;
    }
    return fail(E, line, "argument of type %s is not iterable ('in')", type_name(coll));
}

static int repeat(ev *E, int line, const jj_val *seq, int64_t k, jj_val *out)
{
    if (k < 0)
        k = 0;
    if (seq->t == JV_STR) {
        if (seq->u.s.n && (uint64_t)k > JJ_MAX_OUTPUT / seq->u.s.n)
            return fail(E, line, "string repetition past the output limit");
        size_t n = seq->u.s.n, total = n * (size_t)k;
        if (!total) {
            *out = vstr("", 0);
            return 0;
        }
        /* one allocation, filled by doubling copies (k calls of sb_put took seconds for 50 MB) */
        char *p = jj_alloc(&E->a, total + 1);
        if (!p)
            return oom(E);
        memcpy(p, seq->u.s.p, n);
        for (size_t have = n; have < total; have *= 2)
            memcpy(p + have, p, have < total - have ? have : total - have);
        *out = vstr(p, total);
        return 0;
    }
    if (seq->u.l->n && (uint64_t)k > JJ_MAX_ITER / seq->u.l->n)
        return fail(E, line, "list repetition past the iteration limit");
    jj_list *r = new_list(E, 4);
    if (!r)
        return oom(E);
    for (int64_t i = 0; i < k; i++)
        for (size_t j = 0; j < seq->u.l->n; j++)
            if (list_push(E, r, seq->u.l->v[j]))
                return EFAIL;
    *out = vlist(r);
    return 0;
}

static int binop(ev *E, int line, int op, const jj_val *x, const jj_val *y, jj_val *out)
{
    int r;
    switch (op) {
    case JB_EQ: *out = vbool(vequal(x, y)); return 0;
    case JB_NE: *out = vbool(!vequal(x, y)); return 0;
    case JB_LT: case JB_GT: case JB_LE: case JB_GE:
        if (compare(E, line, op, x, y, &r))
            return EFAIL;
        *out = vbool(r);
        return 0;
    case JB_IN: case JB_NOTIN:
        if (contains(E, line, x, y, &r))
            return EFAIL;
        *out = vbool(op == JB_IN ? r : !r);
        return 0;
    case JB_CAT: {
        sb b = {.E = E};
        to_text(&b, x, 0, 0);
        to_text(&b, y, 0, 0);
        *out = sb_val(&b);
        return b.bad ? EFAIL : 0;
    }
    default: break;
    }
    if (is_num(x) && is_num(y)) {
        int ints = is_intlike(x) && is_intlike(y);
        int64_t a = ival(x), b = ival(y), c;
        double fa = num(x), fb = num(y);
        switch (op) {
        case JB_ADD:
            if (!ints) { *out = vfloat(fa + fb); return 0; }
            if (__builtin_add_overflow(a, b, &c)) break;
            *out = vint(c);
            return 0;
        case JB_SUB:
            if (!ints) { *out = vfloat(fa - fb); return 0; }
            if (__builtin_sub_overflow(a, b, &c)) break;
            *out = vint(c);
            return 0;
        case JB_MUL:
            if (!ints) { *out = vfloat(fa * fb); return 0; }
            if (__builtin_mul_overflow(a, b, &c)) break;
            *out = vint(c);
            return 0;
        case JB_DIV:
            if (fb == 0)
                return fail(E, line, "division by zero");
            *out = vfloat(fa / fb);
            return 0;
        case JB_FDIV: case JB_MOD:
            if (ints) {
                if (b == 0)
                    return fail(E, line, "integer division or modulo by zero");
                if (a == INT64_MIN && b == -1)
                    break;
                int64_t q = a / b, m = a % b;
                if (m != 0 && ((m < 0) != (b < 0))) {
                    q--;
                    m += b;
                }
                *out = vint(op == JB_FDIV ? q : m);
                return 0;
            }
            if (fb == 0)
                return fail(E, line, "float division or modulo by zero");
            if (op == JB_FDIV)
                *out = vfloat(floor(fa / fb));
            else {
                double m = fmod(fa, fb);
                if (m != 0 && ((m < 0) != (fb < 0)))
                    m += fb;
                *out = vfloat(m);
            }
            return 0;
        case JB_POW:
            if (ints && b >= 0) {
                int64_t acc = 1, base = a;
                int64_t e = b;
                int ovf = 0;
                while (e > 0 && !ovf) {
                    if (e & 1)
                        ovf |= __builtin_mul_overflow(acc, base, &acc);
                    e >>= 1;
                    if (e)
                        ovf |= __builtin_mul_overflow(base, base, &base);
                }
                if (ovf)
                    break;
                *out = vint(acc);
                return 0;
            }
            if (fa == 0 && fb < 0)
                return fail(E, line, "0.0 cannot be raised to a negative power");
            *out = vfloat(pow(fa, fb));
            return 0;
        }
        return fail(E, line, "integer overflow in '%s'", BINOP_NAME[op]);
    }
    if (op == JB_ADD && x->t == JV_STR && y->t == JV_STR) {
        sb b = {.E = E};
        sb_put(&b, x->u.s.p, x->u.s.n);
        sb_put(&b, y->u.s.p, y->u.s.n);
        *out = sb_val(&b);
        return b.bad ? EFAIL : 0;
    }
    if (op == JB_ADD && x->t == JV_LIST && y->t == JV_LIST) {
        jj_list *l = new_list(E, x->u.l->n + y->u.l->n + 1);
        if (!l)
            return oom(E);
        for (size_t i = 0; i < x->u.l->n; i++)
            l->v[l->n++] = x->u.l->v[i];
        for (size_t i = 0; i < y->u.l->n; i++)
            l->v[l->n++] = y->u.l->v[i];
        *out = vlist(l);
        return 0;
    }
    if (op == JB_MUL && (x->t == JV_STR || x->t == JV_LIST) && is_intlike(y))
        return repeat(E, line, x, ival(y), out);
    if (op == JB_MUL && (y->t == JV_STR || y->t == JV_LIST) && is_intlike(x))
        return repeat(E, line, y, ival(x), out);
    if (x->t == JV_UNDEF || y->t == JV_UNDEF)
        return fail(E, line, "'%s' on an undefined value", BINOP_NAME[op]);
    return fail(E, line, "unsupported operand types for '%s': %s and %s", BINOP_NAME[op], type_name(x),
                type_name(y));
}

/* ---- call arguments ----------------------------------------------------------- */
#define MAXARGS 8
typedef struct args {
    jj_val pos[MAXARGS];
    int np;
    const char *kn[MAXARGS];
    jj_val kv[MAXARGS];
    int nk;
    unsigned used; /* kwargs looked up */
} args;

/* positional i, else keyword name; NULL if absent */
static const jj_val *arg(args *A, int i, const char *name)
{
    if (i >= 0 && i < A->np)
        return &A->pos[i];
    for (int k = 0; name && k < A->nk; k++)
        if (!strcmp(A->kn[k], name)) {
            A->used |= 1u << k;
            return &A->kv[k];
        }
    return NULL;
}

/* refuse arguments the callee does not take */
static int check_args(ev *E, int line, args *A, int max_pos, const char *what)
{
    if (A->np > max_pos)
        return fail(E, line, "%s takes at most %d positional argument%s (%d given)", what, max_pos,
                    max_pos == 1 ? "" : "s", A->np);
    for (int k = 0; k < A->nk; k++)
        if (!(A->used & (1u << k)))
            return fail(E, line, "%s got an unexpected keyword argument '%s'", what, A->kn[k]);
    return 0;
}

static int want_str(ev *E, int line, const jj_val *v, const char *what)
{
    if (!v || v->t != JV_STR)
        return fail(E, line, "%s expects a string, got %s", what, v ? type_name(v) : "nothing");
    return 0;
}

/* ---- strings ---------------------------------------------------------------------- */
static int cp_len_at(const char *s, size_t n)
{
    unsigned char c = (unsigned char)s[0];
    int k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
    if ((size_t)k > n)
        k = 1;
    for (int j = 1; j < k; j++)
        if (((unsigned char)s[j] & 0xc0) != 0x80)
            return 1;
    return k;
}

static int cp_len_back(const char *s, size_t n)
{
    size_t k = 1;
    while (k < 4 && k < n && ((unsigned char)s[n - k] & 0xc0) == 0x80)
        k++;
    if ((size_t)cp_len_at(s + n - k, k) == k)
        return (int)k;
    return 1;
}

/* is the code point s[0..k) one of chars (a string)? */
static int in_chars(const char *s, int k, const jj_val *chars)
{
    const char *c = chars->u.s.p;
    size_t n = chars->u.s.n;
    for (size_t i = 0; i < n;) {
        int m = cp_len_at(c + i, n - i);
        if (m == k && !memcmp(c + i, s, (size_t)k))
            return 1;
        i += (size_t)m;
    }
    return 0;
}

/* Python str.strip / lstrip / rstrip (chars NULL or None: whitespace) */
static jj_val do_strip(const jj_val *s, const jj_val *chars, int left, int right)
{
    const char *p = s->u.s.p;
    size_t n = s->u.s.n;
    int use_chars = chars && chars->t == JV_STR;
    while (left && n) {
        int k = use_chars ? cp_len_at(p, n) : jj_ws_len(p, n);
        if (k == 0 || (use_chars && !in_chars(p, k, chars)))
            break;
        p += k;
        n -= (size_t)k;
    }
    while (right && n) {
        int k = use_chars ? cp_len_back(p, n) : jj_ws_len_back(p, n);
        if (k == 0 || (use_chars && !in_chars(p + n - k, k, chars)))
            break;
        n -= (size_t)k;
    }
    return vstr(p, n);
}

static jj_val case_map(ev *E, const jj_val *s, int mode) /* 0 lower, 1 upper, 2 capitalize, 3 title */
{
    char *o = jj_alloc(&E->a, s->u.s.n + 1);
    if (!o)
        return UNDEF;
    int prev_alpha = 0;
    for (size_t i = 0; i < s->u.s.n; i++) {
        char c = s->u.s.p[i];
        int lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z';
        int up = mode == 1 || (mode == 2 && i == 0) || (mode == 3 && !prev_alpha);
        if (up && lower)
            c = (char)(c - 32);
        else if (!up && upper)
            c = (char)(c + 32);
        prev_alpha = lower || upper;
        o[i] = c;
    }
    return vstr(o, s->u.s.n);
}

static int str_split(ev *E, int line, const jj_val *s, const jj_val *sep, int64_t maxsplit, jj_val *out)
{
    jj_list *l = new_list(E, 4);
    if (!l)
        return oom(E);
    const char *p = s->u.s.p;
    size_t n = s->u.s.n;
    if (!sep || sep->t == JV_NONE) {
        size_t i = 0;
        for (;;) {
            int w;
            while (i < n && (w = jj_ws_len(p + i, n - i)) > 0)
                i += (size_t)w;
            if (i >= n)
                break;
            if (maxsplit >= 0 && (int64_t)l->n >= maxsplit) {
                if (list_push(E, l, vstr(p + i, n - i)))
                    return EFAIL;
                break;
            }
            size_t j = i;
            while (j < n && jj_ws_len(p + j, n - j) == 0)
                j += (size_t)cp_len_at(p + j, n - j);
            if (list_push(E, l, vstr(p + i, j - i)))
                return EFAIL;
            i = j;
        }
    } else {
        if (want_str(E, line, sep, "split()"))
            return EFAIL;
        if (sep->u.s.n == 0)
            return fail(E, line, "split(): empty separator");
        size_t i = 0;
        for (;;) {
            const char *hit = maxsplit >= 0 && (int64_t)l->n >= maxsplit
                                  ? NULL
                                  : memmem(p + i, n - i, sep->u.s.p, sep->u.s.n);
            if (!hit) {
                if (list_push(E, l, vstr(p + i, n - i)))
                    return EFAIL;
                break;
            }
            size_t j = (size_t)(hit - p);
            if (list_push(E, l, vstr(p + i, j - i)))
                return EFAIL;
            i = j + sep->u.s.n;
            if (++E->steps > JJ_MAX_STEPS)
                return fail(E, line, "step limit reached");
        }
    }
    *out = vlist(l);
    return 0;
}

static int str_replace(ev *E, int line, const jj_val *s, const jj_val *old, const jj_val *new_, int64_t count,
                       jj_val *out)
{
    if (want_str(E, line, old, "replace()") || want_str(E, line, new_, "replace()"))
        return EFAIL;
    sb b = {.E = E};
    const char *p = s->u.s.p;
    size_t n = s->u.s.n, i = 0;
    int64_t done = 0;
    if (old->u.s.n == 0) { /* Python: insert between every code point */
        while (!b.bad) {
            if (count < 0 || done < count) {
                sb_put(&b, new_->u.s.p, new_->u.s.n);
                done++;
            }
            if (i >= n)
                break;
            int k = cp_len_at(p + i, n - i);
            sb_put(&b, p + i, (size_t)k);
            i += (size_t)k;
        }
    } else {
        while (!b.bad) {
            const char *hit = count >= 0 && done >= count ? NULL : memmem(p + i, n - i, old->u.s.p, old->u.s.n);
            if (!hit) {
                sb_put(&b, p + i, n - i);
                break;
            }
            sb_put(&b, p + i, (size_t)(hit - (p + i)));
            sb_put(&b, new_->u.s.p, new_->u.s.n);
            i = (size_t)(hit - p) + old->u.s.n;
            done++;
        }
    }
    *out = sb_val(&b);
    return b.bad ? EFAIL : 0;
}

static int affix(ev *E, int line, const jj_val *s, const jj_val *a, int end, int *res)
{
    if (a && a->t == JV_LIST) {
        *res = 0;
        for (size_t i = 0; i < a->u.l->n && !*res; i++)
            if (affix(E, line, s, &a->u.l->v[i], end, res))
                return EFAIL;
        return 0;
    }
    if (want_str(E, line, a, end ? "endswith()" : "startswith()"))
        return EFAIL;
    size_t m = a->u.s.n;
    *res = m <= s->u.s.n && (m == 0 || !memcmp(s->u.s.p + (end ? s->u.s.n - m : 0), a->u.s.p, m));
    return 0;
}

/* ---- tests ("x is NAME") ------------------------------------------------------------ */
static int apply_test(ev *E, int line, const char *name, const jj_val *v, args *A, int *res)
{
    const jj_val *a0 = arg(A, 0, NULL);
#define T(n) (!strcmp(name, n))
    if (T("defined")) *res = v->t != JV_UNDEF;
    else if (T("undefined")) *res = v->t == JV_UNDEF;
    else if (T("none")) *res = v->t == JV_NONE;
    else if (T("string")) *res = v->t == JV_STR;
    else if (T("number")) *res = is_num(v);
    else if (T("integer")) *res = v->t == JV_INT;
    else if (T("float")) *res = v->t == JV_FLOAT;
    else if (T("boolean")) *res = v->t == JV_BOOL;
    else if (T("true")) *res = v->t == JV_BOOL && v->u.b;
    else if (T("false")) *res = v->t == JV_BOOL && !v->u.b;
    else if (T("mapping")) *res = v->t == JV_DICT && !v->u.d->ns;
    else if (T("iterable")) *res = v->t == JV_STR || v->t == JV_LIST || v->t == JV_DICT || v->t == JV_UNDEF;
    else if (T("sequence")) *res = v->t == JV_STR || v->t == JV_LIST || (v->t == JV_DICT && !v->u.d->ns);
    else if (T("callable")) *res = v->t == JV_FUNC || v->t == JV_MACRO;
    else if (T("lower") || T("upper")) {
        if (v->t != JV_STR) { *res = 0; return 0; }
        jj_val m = case_map(E, v, T("upper"));
        if (m.t == JV_UNDEF)
            return oom(E);
        *res = vequal(&m, v);
    } else if (T("even") || T("odd") || T("divisibleby")) {
        if (!is_intlike(v))
            return fail(E, line, "test '%s' needs an integer, got %s", name, type_name(v));
        int64_t d = 2;
        if (T("divisibleby")) {
            if (!a0 || !is_intlike(a0) || ival(a0) == 0)
                return fail(E, line, "test 'divisibleby' needs a non-zero integer argument");
            d = ival(a0);
        }
        int64_t m = d == -1 ? 0 : ival(v) % d;
        *res = T("odd") ? m != 0 : m == 0;
    } else if (T("equalto") || T("eq") || T("==") || T("sameas") || T("ne") || T("!=")) {
        if (!a0)
            return fail(E, line, "test '%s' needs an argument", name);
        *res = vequal(v, a0);
        if (T("sameas") && v->t != a0->t)
            *res = 0;
        if (T("ne") || T("!="))
            *res = !*res;
    } else if (T("lt") || T("<") || T("gt") || T(">") || T("le") || T("<=") || T("ge") || T(">=")) {
        if (!a0)
            return fail(E, line, "test '%s' needs an argument", name);
        int op = (T("lt") || T("<")) ? JB_LT : (T("gt") || T(">")) ? JB_GT : (T("le") || T("<=")) ? JB_LE : JB_GE;
        if (compare(E, line, op, v, a0, res))
            return EFAIL;
    } else if (T("in")) {
        if (!a0)
            return fail(E, line, "test 'in' needs an argument");
        if (contains(E, line, v, a0, res))
            return EFAIL;
    } else
        return fail(E, line, "unsupported test '%s' (docs/chat.md lists the supported Jinja subset)", name);
#undef T
    return 0;
}

/* ---- methods of strings and dicts ------------------------------------------------------ */
/* 1: not a method of this object (the caller reports), 0 done, EFAIL */
static int call_method(ev *E, int line, const jj_val *obj, const char *name, args *A, jj_val *out)
{
#define M(n) (!strcmp(name, n))
    int r;
    if (obj->t == JV_STR) {
        if (M("strip") || M("lstrip") || M("rstrip")) {
            const jj_val *c = arg(A, 0, "chars");
            if (c && c->t != JV_STR && c->t != JV_NONE)
                return fail(E, line, "%s() arg must be None or str", name);
            *out = do_strip(obj, c, !M("rstrip"), !M("lstrip"));
            return check_args(E, line, A, 1, name);
        }
        if (M("startswith") || M("endswith")) {
            if (affix(E, line, obj, arg(A, 0, NULL), name[0] == 'e', &r))
                return EFAIL;
            *out = vbool(r);
            return check_args(E, line, A, 1, name);
        }
        if (M("split")) {
            const jj_val *ms = arg(A, 1, "maxsplit");
            if (ms && !is_intlike(ms))
                return fail(E, line, "split(): maxsplit must be an integer");
            if (str_split(E, line, obj, arg(A, 0, "sep"), ms ? ival(ms) : -1, out))
                return EFAIL;
            return check_args(E, line, A, 2, name);
        }
        if (M("upper") || M("lower") || M("capitalize") || M("title")) {
            *out = case_map(E, obj, M("lower") ? 0 : M("upper") ? 1 : M("capitalize") ? 2 : 3);
            if (out->t == JV_UNDEF)
                return oom(E);
            return check_args(E, line, A, 0, name);
        }
        if (M("replace")) {
            const jj_val *c = arg(A, 2, "count");
            if (c && !is_intlike(c))
                return fail(E, line, "replace(): count must be an integer");
            if (str_replace(E, line, obj, arg(A, 0, "old"), arg(A, 1, "new"), c ? ival(c) : -1, out))
                return EFAIL;
            return check_args(E, line, A, 3, name);
        }
        if (M("find")) {
            const jj_val *s = arg(A, 0, NULL);
            if (want_str(E, line, s, "find()"))
                return EFAIL;
            const char *hit = memmem(obj->u.s.p, obj->u.s.n, s->u.s.p, s->u.s.n);
            if (s->u.s.n == 0)
                hit = obj->u.s.p;
            *out = vint(hit ? (int64_t)cp_count(obj->u.s.p, (size_t)(hit - obj->u.s.p)) : -1);
            return check_args(E, line, A, 1, name);
        }
        if (M("join")) {
            const jj_val *l = arg(A, 0, NULL);
            if (!l || l->t != JV_LIST)
                return fail(E, line, "join() expects a list");
            sb b = {.E = E};
            for (size_t i = 0; i < l->u.l->n; i++) {
                if (l->u.l->v[i].t != JV_STR)
                    return fail(E, line, "join(): item %zu is %s, not str", i, type_name(&l->u.l->v[i]));
                if (i)
                    sb_put(&b, obj->u.s.p, obj->u.s.n);
                sb_put(&b, l->u.l->v[i].u.s.p, l->u.l->v[i].u.s.n);
            }
            *out = sb_val(&b);
            return b.bad ? EFAIL : check_args(E, line, A, 1, name);
        }
        return 1;
    }
    if (obj->t == JV_DICT && !obj->u.d->ns) {
        const jj_dict *d = obj->u.d;
        if (M("items") || M("keys") || M("values")) {
            jj_list *l = new_list(E, d->n + 1);
            if (!l)
                return oom(E);
            for (size_t i = 0; i < d->n; i++) {
                if (M("items")) {
                    jj_list *t = new_list(E, 2);
                    if (!t)
                        return oom(E);
                    t->v[0] = d->k[i];
                    t->v[1] = d->v[i];
                    t->n = 2;
                    l->v[l->n] = vlist(t);
                    l->v[l->n++].tuple = 1;
                } else
                    l->v[l->n++] = M("keys") ? d->k[i] : d->v[i];
            }
            *out = vlist(l);
            return check_args(E, line, A, 0, name);
        }
        if (M("get")) {
            const jj_val *k = arg(A, 0, "key"), *dflt = arg(A, 1, "default");
            if (!k)
                return fail(E, line, "get() needs a key");
            const jj_val *v = dict_find(d, k);
            *out = v ? *v : dflt ? *dflt : vnone();
            return check_args(E, line, A, 2, name);
        }
        return 1;
    }
#undef M
    return 1;
}

/* ---- filters ("x | NAME") ------------------------------------------------------------- */
static int apply_filter(ev *E, int line, const char *name, const jj_val *v, args *A, jj_val *out);

static int attr_of(ev *E, const jj_val *obj, const jj_val *attr, jj_val *out)
{
    *out = UNDEF;
    if (obj->t == JV_DICT) {
        /* dotted attribute paths ("a.b") as Jinja's attribute= does */
        const char *p = attr->u.s.p;
        size_t n = attr->u.s.n;
        const jj_val *cur = obj;
        while (cur && cur->t == JV_DICT) {
            const char *dot = memchr(p, '.', n);
            size_t k = dot ? (size_t)(dot - p) : n;
            cur = dict_get(cur->u.d, p, k);
            if (!dot)
                break;
            p += k + 1;
            n -= k + 1;
        }
        if (cur)
            *out = *cur;
    }
    return 0;
}

static int f_select(ev *E, int line, const char *name, const jj_val *v, args *A, jj_val *out)
{
    int by_attr = !strcmp(name, "selectattr") || !strcmp(name, "rejectattr");
    int reject = name[0] == 'r';
    if (v->t != JV_LIST)
        return fail(E, line, "filter '%s' expects a list, got %s", name, type_name(v));
    int first = 0;
    const jj_val *attr = NULL;
    if (by_attr) {
        attr = arg(A, 0, NULL);
        if (want_str(E, line, attr, name))
            return EFAIL;
        first = 1;
    }
    const jj_val *test = arg(A, first, NULL);
    if (test && test->t != JV_STR)
        return fail(E, line, "filter '%s': the test name must be a string", name);
    char tname[64] = "";
    if (test)
        snprintf(tname, sizeof tname, "%.*s", (int)(test->u.s.n < 63 ? test->u.s.n : 63), test->u.s.p);
    args targ = {0};
    for (int i = first + 1; i < A->np && targ.np < MAXARGS; i++)
        targ.pos[targ.np++] = A->pos[i];
    jj_list *l = new_list(E, v->u.l->n + 1);
    if (!l)
        return oom(E);
    for (size_t i = 0; i < v->u.l->n; i++) {
        jj_val item = v->u.l->v[i], x = item;
        if (by_attr && attr_of(E, &item, attr, &x))
            return EFAIL;
        int r;
        if (test) {
            if (apply_test(E, line, tname, &x, &targ, &r))
                return EFAIL;
        } else
            r = truthy(&x);
        if (r != reject && list_push(E, l, item))
            return EFAIL;
    }
    *out = vlist(l);
    return 0;
}

static int apply_filter(ev *E, int line, const char *name, const jj_val *v, args *A, jj_val *out)
{
#define F(n) (!strcmp(name, n))
    if (F("trim")) {
        if (v->t != JV_STR) {
            jj_val s = str_of(E, v);
            return apply_filter(E, line, name, &s, A, out);
        }
        const jj_val *c = arg(A, 0, "chars");
        *out = do_strip(v, c, 1, 1);
        return check_args(E, line, A, 1, "filter 'trim'");
    }
    if (F("length") || F("count")) {
        if (v->t == JV_STR) *out = vint((int64_t)cp_count(v->u.s.p, v->u.s.n));
        else if (v->t == JV_LIST) *out = vint((int64_t)v->u.l->n);
        else if (v->t == JV_DICT) *out = vint((int64_t)v->u.d->n);
        else if (v->t == JV_UNDEF) *out = vint(0);
        else return fail(E, line, "filter 'length': object of type %s has no len()", type_name(v));
        return check_args(E, line, A, 0, "filter 'length'");
    }
    if (F("tojson")) {
        const jj_val *ind = arg(A, 0, "indent"), *sk = arg(A, -1, "sort_keys"), *ea = arg(A, -1, "ensure_ascii");
        const jj_val *seps = arg(A, -1, "separators");
        json_opts o = {.indent = -1, .item_sep = ", ", .key_sep = ": "};
        if (ind && ind->t != JV_NONE) {
            if (!is_intlike(ind) || ival(ind) < 0 || ival(ind) > 64)
                return fail(E, line, "tojson: indent must be an integer in [0, 64]");
            o.indent = (int)ival(ind);
            o.item_sep = ",";
        }
        if (seps && seps->t == JV_LIST && seps->u.l->n == 2 && seps->u.l->v[0].t == JV_STR &&
            seps->u.l->v[1].t == JV_STR) {
            o.item_sep = jj_strdup(&E->a, seps->u.l->v[0].u.s.p, seps->u.l->v[0].u.s.n);
            o.key_sep = jj_strdup(&E->a, seps->u.l->v[1].u.s.p, seps->u.l->v[1].u.s.n);
            if (!o.item_sep || !o.key_sep)
                return oom(E);
        } else if (seps && seps->t != JV_NONE)
            return fail(E, line, "tojson: separators must be a pair of strings");
        o.sort_keys = sk && truthy(sk);
        o.ensure_ascii = ea && truthy(ea);
        sb b = {.E = E};
        if (json_val(E, &b, v, &o, 0))
            return EFAIL;
        *out = sb_val(&b);
        return b.bad ? EFAIL : check_args(E, line, A, 1, "filter 'tojson'");
    }
    if (F("upper") || F("lower") || F("capitalize") || F("title")) {
        jj_val s = str_of(E, v);
        *out = case_map(E, &s, F("lower") ? 0 : F("upper") ? 1 : F("capitalize") ? 2 : 3);
        if (out->t == JV_UNDEF)
            return oom(E);
        return check_args(E, line, A, 0, name);
    }
    if (F("string") || F("safe")) {
        *out = F("safe") && v->t != JV_UNDEF ? *v : str_of(E, v);
        if (F("safe") && v->t == JV_UNDEF)
            *out = *v;
        return check_args(E, line, A, 0, name);
    }
    if (F("escape") || F("e")) {
        jj_val s = str_of(E, v);
        sb b = {.E = E};
        for (size_t i = 0; i < s.u.s.n; i++) {
            char c = s.u.s.p[i];
            if (c == '&') sb_puts(&b, "&amp;");
            else if (c == '<') sb_puts(&b, "&lt;");
            else if (c == '>') sb_puts(&b, "&gt;");
            else if (c == '"') sb_puts(&b, "&#34;");
            else if (c == '\'') sb_puts(&b, "&#39;");
            else sb_put(&b, &c, 1);
        }
        *out = sb_val(&b);
        return b.bad ? EFAIL : check_args(E, line, A, 0, name);
    }
    if (F("default") || F("d")) {
        const jj_val *dv = arg(A, 0, "default_value"), *bo = arg(A, 1, "boolean");
        int use = v->t == JV_UNDEF || (bo && truthy(bo) && !truthy(v));
        *out = use ? (dv ? *dv : vstr("", 0)) : *v;
        return check_args(E, line, A, 2, name);
    }
    if (F("first") || F("last")) {
        *out = UNDEF;
        if (v->t == JV_LIST) {
            if (v->u.l->n)
                *out = v->u.l->v[F("first") ? 0 : v->u.l->n - 1];
        } else if (v->t == JV_STR) {
            if (v->u.s.n) {
                int k = F("first") ? cp_len_at(v->u.s.p, v->u.s.n) : cp_len_back(v->u.s.p, v->u.s.n);
                *out = vstr(F("first") ? v->u.s.p : v->u.s.p + v->u.s.n - k, (size_t)k);
            }
        } else if (v->t == JV_DICT) {
            if (v->u.d->n && F("first"))
                *out = v->u.d->k[0];
            else if (F("last"))
                return fail(E, line, "filter 'last' of a dict is not supported");
        } else
            return fail(E, line, "filter '%s' of a %s", name, type_name(v));
        return check_args(E, line, A, 0, name);
    }
    if (F("join")) {
        const jj_val *sep = arg(A, 0, "d"), *attr = arg(A, 1, "attribute");
        if (sep && want_str(E, line, sep, "filter 'join'"))
            return EFAIL;
        if (attr && want_str(E, line, attr, "filter 'join' attribute"))
            return EFAIL;
        if (v->t != JV_LIST)
            return fail(E, line, "filter 'join' expects a list, got %s", type_name(v));
        sb b = {.E = E};
        for (size_t i = 0; i < v->u.l->n && !b.bad; i++) {
            jj_val x = v->u.l->v[i];
            if (attr && attr_of(E, &v->u.l->v[i], attr, &x))
                return EFAIL;
            if (i && sep)
                sb_put(&b, sep->u.s.p, sep->u.s.n);
            to_text(&b, &x, 0, 0);
        }
        *out = sb_val(&b);
        return b.bad ? EFAIL : check_args(E, line, A, 2, name);
    }
    if (F("list") || F("reverse")) {
        jj_list *l = new_list(E, 4);
        if (!l)
            return oom(E);
        if (v->t == JV_LIST) {
            for (size_t i = 0; i < v->u.l->n; i++)
                if (list_push(E, l, v->u.l->v[i]))
                    return EFAIL;
        } else if (v->t == JV_DICT) {
            for (size_t i = 0; i < v->u.d->n; i++)
                if (list_push(E, l, v->u.d->k[i]))
                    return EFAIL;
        } else if (v->t == JV_STR) {
            if (F("reverse")) {
                sb b = {.E = E};
                for (size_t n = v->u.s.n; n && !b.bad;) {
                    int k = cp_len_back(v->u.s.p, n);
                    sb_put(&b, v->u.s.p + n - k, (size_t)k);
                    n -= (size_t)k;
                }
                *out = sb_val(&b);
                return b.bad ? EFAIL : check_args(E, line, A, 0, name);
            }
            for (size_t i = 0; i < v->u.s.n;) {
                int k = cp_len_at(v->u.s.p + i, v->u.s.n - i);
                if (list_push(E, l, vstr(v->u.s.p + i, (size_t)k)))
                    return EFAIL;
                i += (size_t)k;
            }
        } else if (v->t != JV_UNDEF)
            return fail(E, line, "filter '%s': %s is not iterable", name, type_name(v));
        if (F("reverse"))
            for (size_t i = 0; i < l->n / 2; i++) {
                jj_val t = l->v[i];
                l->v[i] = l->v[l->n - 1 - i];
                l->v[l->n - 1 - i] = t;
            }
        *out = vlist(l);
        return check_args(E, line, A, 0, name);
    }
    if (F("items")) {
        if (v->t == JV_UNDEF) {
            jj_list *l = new_list(E, 1);
            if (!l)
                return oom(E);
            *out = vlist(l);
            return 0;
        }
        if (v->t != JV_DICT)
            return fail(E, line, "filter 'items' expects a mapping, got %s", type_name(v));
        args none = {0};
        return call_method(E, line, v, "items", &none, out) == 0 ? check_args(E, line, A, 0, name) : EFAIL;
    }
    if (F("replace")) {
        jj_val s = str_of(E, v);
        const jj_val *c = arg(A, 2, "count");
        if (c && !is_intlike(c))
            return fail(E, line, "filter 'replace': count must be an integer");
        if (str_replace(E, line, &s, arg(A, 0, "old"), arg(A, 1, "new"), c ? ival(c) : -1, out))
            return EFAIL;
        return check_args(E, line, A, 3, name);
    }
    if (F("abs")) {
        if (v->t == JV_INT && v->u.i != INT64_MIN) *out = vint(v->u.i < 0 ? -v->u.i : v->u.i);
        else if (v->t == JV_FLOAT) *out = vfloat(fabs(v->u.f));
        else if (v->t == JV_BOOL) *out = vint(v->u.b);
        else return fail(E, line, "filter 'abs' of a %s", type_name(v));
        return check_args(E, line, A, 0, name);
    }
    if (F("int") || F("float")) {
        const jj_val *dflt = arg(A, 0, "default");
        jj_val d = dflt ? *dflt : F("int") ? vint(0) : vfloat(0);
        if (v->t == JV_INT || v->t == JV_BOOL)
            *out = F("int") ? vint(ival(v)) : vfloat((double)ival(v));
        else if (v->t == JV_FLOAT)
            *out = F("int") ? (isfinite(v->u.f) && fabs(v->u.f) < 9.2e18 ? vint((int64_t)v->u.f) : d) : *v;
        else if (v->t == JV_STR) {
            char buf[64];
            jj_val t = do_strip(v, NULL, 1, 1);
            if (t.u.s.n == 0 || t.u.s.n >= sizeof buf) {
                *out = d;
            } else {
                memcpy(buf, t.u.s.p, t.u.s.n);
                buf[t.u.s.n] = 0;
                char *end;
                if (F("int")) {
                    long long x = strtoll(buf, &end, 10);
                    *out = *end ? d : vint(x);
                } else {
                    double x = strtod(buf, &end);
                    *out = *end ? d : vfloat(x);
                }
            }
        } else
            *out = d;
        return check_args(E, line, A, 1, name);
    }
    if (F("select") || F("reject") || F("selectattr") || F("rejectattr"))
        return f_select(E, line, name, v, A, out);
    if (F("map")) {
        if (v->t != JV_LIST)
            return fail(E, line, "filter 'map' expects a list, got %s", type_name(v));
        const jj_val *attr = NULL, *fname = NULL;
        for (int k = 0; k < A->nk; k++)
            if (!strcmp(A->kn[k], "attribute"))
                attr = &A->kv[k];
        if (!attr)
            fname = arg(A, 0, NULL);
        if (attr ? want_str(E, line, attr, "map attribute") : want_str(E, line, fname, "map filter name"))
            return EFAIL;
        char fn[64] = "";
        if (fname)
            snprintf(fn, sizeof fn, "%.*s", (int)(fname->u.s.n < 63 ? fname->u.s.n : 63), fname->u.s.p);
        jj_list *l = new_list(E, v->u.l->n + 1);
        if (!l)
            return oom(E);
        for (size_t i = 0; i < v->u.l->n; i++) {
            jj_val x;
            if (attr) {
                if (attr_of(E, &v->u.l->v[i], attr, &x))
                    return EFAIL;
            } else {
                args sub = {0};
                for (int k = 1; k < A->np && sub.np < MAXARGS; k++)
                    sub.pos[sub.np++] = A->pos[k];
                if (apply_filter(E, line, fn, &v->u.l->v[i], &sub, &x))
                    return EFAIL;
            }
            if (list_push(E, l, x))
                return EFAIL;
        }
        *out = vlist(l);
        return 0;
    }
#undef F
    return fail(E, line, "unsupported filter '%s' (docs/chat.md lists the supported Jinja subset)", name);
}

/* ---- scopes ------------------------------------------------------------------------ */
static int scope_set(ev *E, scope *S, const char *name, jj_val v)
{
    for (size_t i = 0; i < S->n; i++)
        if (!strcmp(S->names[i], name)) {
            S->vals[i] = v;
            return 0;
        }
    if (S->n == S->cap) {
        size_t nc = S->cap ? S->cap * 2 : 8;
        const char **nn = jj_alloc(&E->a, nc * sizeof *nn);
        jj_val *nv = jj_alloc(&E->a, nc * sizeof *nv);
        if (!nn || !nv)
            return oom(E);
        if (S->n) {
            memcpy(nn, S->names, S->n * sizeof *nn);
            memcpy(nv, S->vals, S->n * sizeof *nv);
        }
        S->names = nn;
        S->vals = nv;
        S->cap = nc;
    }
    S->names[S->n] = name;
    S->vals[S->n++] = v;
    return 0;
}

static jj_val lookup(const scope *S, const char *name)
{
    for (; S; S = S->parent)
        for (size_t i = S->n; i-- > 0;)
            if (!strcmp(S->names[i], name))
                return S->vals[i];
    return UNDEF;
}

/* ---- globals --------------------------------------------------------------------------- */
static int strftime_now(ev *E, int line, const jj_val *fmt, jj_val *out)
{
    if (want_str(E, line, fmt, "strftime_now()"))
        return EFAIL;
    if (fmt->u.s.n > 128 || memchr(fmt->u.s.p, 0, fmt->u.s.n))
        return fail(E, line, "strftime_now(): format longer than 128 bytes or with a NUL");
    char f[130], buf[512];
    memcpy(f, fmt->u.s.p, fmt->u.s.n);
    f[fmt->u.s.n] = 0;
    struct tm tm;
    time_t t;
    int utc = 1;
    if (E->p->now >= 0)
        t = (time_t)E->p->now;
    else {
        const char *sde = getenv("SOURCE_DATE_EPOCH");
        char *end = NULL;
        long long v = sde && *sde ? strtoll(sde, &end, 10) : -1;
        if (sde && *sde && (*end || v < 0))
            return fail(E, line, "SOURCE_DATE_EPOCH='%.40s' is not a non-negative integer", sde);
        if (v >= 0)
            t = (time_t)v;
        else {
            t = time(NULL);
            utc = 0;
        }
    }
    if (!(utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm)))
        return fail(E, line, "strftime_now(): time out of range");
    size_t n = fmt->u.s.n ? strftime(buf, sizeof buf, f, &tm) : 0;
    if (fmt->u.s.n && n == 0)
        return fail(E, line, "strftime_now(): format gives no output or more than %zu bytes", sizeof buf);
    char *s = jj_strdup(&E->a, buf, n);
    if (!s)
        return oom(E);
    *out = vstr(s, n);
    return 0;
}

static int call_global(ev *E, int line, int fn, args *A, jj_val *out)
{
    *out = vnone();
    switch (fn) {
    case JF_RAISE: {
        const jj_val *m = arg(A, 0, NULL);
        jj_val s = m ? str_of(E, m) : vstr("", 0);
        if (!E->failed)
            slm_err_set(E->err, SLM_EINPUT, "chat template error (raise_exception): %.*s",
                        (int)(s.u.s.n > 600 ? 600 : s.u.s.n), s.u.s.p);
        E->failed = 1;
        return EFAIL;
    }
    case JF_NAMESPACE:
    case JF_DICT: {
        jj_dict *d = new_dict(E);
        if (!d)
            return oom(E);
        d->ns = fn == JF_NAMESPACE;
        for (int i = 0; i < A->np; i++) {
            if (A->pos[i].t != JV_DICT)
                return fail(E, line, "%s() positional arguments must be mappings", fn == JF_DICT ? "dict" : "namespace");
            for (size_t k = 0; k < A->pos[i].u.d->n; k++)
                if (dict_set(E, d, A->pos[i].u.d->k[k], A->pos[i].u.d->v[k]))
                    return EFAIL;
        }
        for (int k = 0; k < A->nk; k++)
            if (dict_set(E, d, vcstr(A->kn[k]), A->kv[k]))
                return EFAIL;
        *out = vdict(d);
        return 0;
    }
    case JF_STRFTIME:
        if (A->np != 1 || A->nk)
            return fail(E, line, "strftime_now() takes one format argument");
        return strftime_now(E, line, &A->pos[0], out);
    case JF_RANGE: {
        int64_t a = 0, b, s = 1;
        for (int i = 0; i < A->np; i++)
            if (!is_intlike(&A->pos[i]))
                return fail(E, line, "range() arguments must be integers");
        if (A->np == 1)
            b = ival(&A->pos[0]);
        else if (A->np == 2 || A->np == 3) {
            a = ival(&A->pos[0]);
            b = ival(&A->pos[1]);
            if (A->np == 3)
                s = ival(&A->pos[2]);
        } else
            return fail(E, line, "range() takes 1 to 3 arguments");
        if (s == 0)
            return fail(E, line, "range() step must not be zero");
        jj_list *l = new_list(E, 4);
        if (!l)
            return oom(E);
        for (int64_t i = a; s > 0 ? i < b : i > b; i += s) {
            if ((int64_t)l->n >= JJ_MAX_ITER)
                return fail(E, line, "range() longer than %ld", JJ_MAX_ITER);
            if (list_push(E, l, vint(i)))
                return EFAIL;
            if (s > 0 ? i > INT64_MAX - s : i < INT64_MIN - s)
                break;
        }
        *out = vlist(l);
        return 0;
    }
    }
    return fail(E, line, "unknown function");
}

/* ---- expressions --------------------------------------------------------------------- */
static int eval(ev *E, const jj_node *x, scope *S, jj_val *out);

static int step(ev *E, int line)
{
    if (++E->steps > JJ_MAX_STEPS)
        return fail(E, line, "evaluation step limit (%ld) reached", JJ_MAX_STEPS);
    return 0;
}

static int eval_args(ev *E, const jj_node *x, scope *S, args *A)
{
    memset(A, 0, sizeof *A);
    for (size_t i = 0; i < x->n; i++) {
        const jj_node *k = x->kids[i];
        if (k->kind == JN_KWARG) {
            if (A->nk == MAXARGS)
                return fail(E, k->line, "more than %d keyword arguments", MAXARGS);
            A->kn[A->nk] = k->s;
            if (eval(E, k->a, S, &A->kv[A->nk]))
                return EFAIL;
            A->nk++;
        } else {
            if (A->np == MAXARGS)
                return fail(E, k->line, "more than %d positional arguments", MAXARGS);
            if (eval(E, k, S, &A->pos[A->np]))
                return EFAIL;
            A->np++;
        }
    }
    return 0;
}

static int exec_body(ev *E, const jj_node *body, scope *S);

/* A macro call: parameters bound from positional, keyword and default
 * arguments (missing ones are undefined, as in Jinja2) in a scope whose parent
 * is the template's top level; the body's output is the value. */
static int call_macro(ev *E, int line, const jj_node *m, args *A, jj_val *out)
{
    if (A->np > (int)m->n)
        return fail(E, line, "macro '%s' takes %zu argument%s (%d given)", m->s, m->n, m->n == 1 ? "" : "s", A->np);
    scope ms = {.parent = E->top};
    for (size_t i = 0; i < m->n; i++) {
        const jj_node *prm = m->kids[i];
        const jj_val *v = arg(A, (int)i, prm->s);
        jj_val d = UNDEF;
        if (!v && prm->kind == JN_KWARG) {
            if (eval(E, prm->a, &ms, &d))
                return EFAIL;
            v = &d;
        }
        if (scope_set(E, &ms, prm->s, v ? *v : UNDEF))
            return EFAIL;
    }
    if (check_args(E, line, A, (int)m->n, "macro"))
        return EFAIL;
    size_t mark = E->n;
    int saved_ctl = E->ctl;
    E->ctl = 0;
    if (exec_body(E, m->d, &ms))
        return EFAIL;
    E->ctl = saved_ctl;
    char *s = jj_strdup(&E->a, E->out ? E->out + mark : "", E->n - mark);
    if (!s)
        return oom(E);
    *out = vstr(s, E->n - mark);
    E->n = mark;
    return 0;
}

static int eval_call(ev *E, const jj_node *x, scope *S, jj_val *out)
{
    args A;
    const jj_node *c = x->a;
    if (c->kind == JN_ATTR) {
        jj_val obj;
        if (eval(E, c->a, S, &obj))
            return EFAIL;
        if (obj.t == JV_UNDEF)
            return fail(E, x->line, "method '%s' called on an undefined value", c->s);
        if (eval_args(E, x, S, &A))
            return EFAIL;
        int r = call_method(E, x->line, &obj, c->s, &A, out);
        if (r != 1)
            return r;
        if (obj.t == JV_DICT) {
            const jj_val *f = dict_get(obj.u.d, c->s, c->slen);
            if (f && f->t == JV_FUNC)
                return call_global(E, x->line, f->u.fn, &A, out);
        }
        return fail(E, x->line, "unsupported method '%s' of a %s (docs/chat.md lists the supported Jinja subset)",
                    c->s, type_name(&obj));
    }
    jj_val f;
    if (eval(E, c, S, &f))
        return EFAIL;
    if (f.t == JV_MACRO) {
        if (eval_args(E, x, S, &A))
            return EFAIL;
        return call_macro(E, x->line, f.u.macro, &A, out);
    }
    if (f.t != JV_FUNC) {
        if (c->kind == JN_NAME && f.t == JV_UNDEF)
            return fail(E, x->line, "unsupported function '%s' (docs/chat.md lists the supported Jinja subset)", c->s);
        return fail(E, x->line, "a %s is not callable", type_name(&f));
    }
    if (eval_args(E, x, S, &A))
        return EFAIL;
    return call_global(E, x->line, f.u.fn, &A, out);
}

static int eval(ev *E, const jj_node *x, scope *S, jj_val *out)
{
    if (step(E, x->line))
        return EFAIL;
    if (++E->depth > 4 * JJ_MAX_DEPTH) {
        E->depth--;
        return fail(E, x->line, "evaluation nested too deeply");
    }
    int rc = 0;
    jj_val a, b;
    args A;
    *out = UNDEF;
    switch (x->kind) {
    case JN_CONST: *out = x->v; break;
    case JN_NAME: *out = lookup(S, x->s); break;
    case JN_ATTR:
        if ((rc = eval(E, x->a, S, &a)))
            break;
        if (a.t == JV_UNDEF) {
            if (x->a->kind == JN_NAME)
                rc = fail(E, x->line, "'%s' is undefined (reading its attribute '%s')", x->a->s, x->s);
            else
                rc = fail(E, x->line, "attribute '%s' of an undefined value", x->s);
        } else if (a.t == JV_DICT) {
            const jj_val *v = dict_get(a.u.d, x->s, x->slen);
            if (v)
                *out = *v;
        }
        break;
    case JN_INDEX:
        if (!(rc = eval(E, x->a, S, &a)) && !(rc = eval(E, x->b, S, &b)))
            rc = do_index(E, x->line, &a, &b, out);
        break;
    case JN_SLICE: {
        jj_val sv[3];
        const jj_val *sp[3] = {NULL, NULL, NULL};
        if ((rc = eval(E, x->a, S, &a)))
            break;
        for (int i = 0; i < 3 && !rc; i++)
            if (x->kids[i] && !(rc = eval(E, x->kids[i], S, &sv[i])))
                sp[i] = &sv[i];
        if (!rc)
            rc = do_slice(E, x->line, &a, sp, out);
        break;
    }
    case JN_CALL: rc = eval_call(E, x, S, out); break;
    case JN_FILTER:
        if (!(rc = eval(E, x->a, S, &a)) && !(rc = eval_args(E, x, S, &A)))
            rc = apply_filter(E, x->line, x->s, &a, &A, out);
        break;
    case JN_TEST: {
        int r = 0;
        if (!(rc = eval(E, x->a, S, &a)) && !(rc = eval_args(E, x, S, &A)) &&
            !(rc = apply_test(E, x->line, x->s, &a, &A, &r)))
            *out = vbool(x->neg ? !r : r);
        break;
    }
    case JN_NOT:
        if (!(rc = eval(E, x->a, S, &a)))
            *out = vbool(!truthy(&a));
        break;
    case JN_NEG: case JN_POS:
        if ((rc = eval(E, x->a, S, &a)))
            break;
        if (a.t == JV_FLOAT)
            *out = vfloat(x->kind == JN_NEG ? -a.u.f : a.u.f);
        else if (is_intlike(&a) && !(x->kind == JN_NEG && ival(&a) == INT64_MIN))
            *out = vint(x->kind == JN_NEG ? -ival(&a) : ival(&a));
        else
            rc = fail(E, x->line, "bad operand type for unary %c: %s", x->kind == JN_NEG ? '-' : '+', type_name(&a));
        break;
    case JN_BIN:
        if (!(rc = eval(E, x->a, S, &a)) && !(rc = eval(E, x->b, S, &b)))
            rc = binop(E, x->line, x->op, &a, &b, out);
        break;
    case JN_AND: case JN_OR:
        if ((rc = eval(E, x->a, S, &a)))
            break;
        if (truthy(&a) == (x->kind == JN_OR))
            *out = a;
        else
            rc = eval(E, x->b, S, out);
        break;
    case JN_COND:
        if ((rc = eval(E, x->c, S, &a)))
            break;
        if (truthy(&a))
            rc = eval(E, x->a, S, out);
        else if (x->b)
            rc = eval(E, x->b, S, out);
        break;
    case JN_LIST: case JN_TUPLE: {
        jj_list *l = new_list(E, x->n + 1);
        if (!l) {
            rc = oom(E);
            break;
        }
        for (size_t i = 0; i < x->n && !rc; i++)
            if (!(rc = eval(E, x->kids[i], S, &l->v[i])))
                l->n++;
        *out = vlist(l);
        out->tuple = x->kind == JN_TUPLE;
        break;
    }
    case JN_DICT: {
        jj_dict *d = new_dict(E);
        if (!d) {
            rc = oom(E);
            break;
        }
        for (size_t i = 0; i < x->n && !rc; i++)
            if (!(rc = eval(E, x->kids[i], S, &a)) && !(rc = eval(E, x->kids2[i], S, &b)))
                rc = dict_set(E, d, a, b);
        *out = vdict(d);
        break;
    }
    default: rc = fail(E, x->line, "internal: not an expression");
    }
    E->depth--;
    return rc;
}

/* ---- statements ---------------------------------------------------------------------- */
static int emit(ev *E, const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (n > JJ_MAX_OUTPUT - E->n)
        return fail(E, 0, "output longer than the limit (%u MiB)", JJ_MAX_OUTPUT >> 20);
    if (E->n + n > E->cap) {
        size_t nc = E->cap ? E->cap : 4096;
        while (nc < E->n + n)
            nc *= 2;
        char *o = realloc(E->out, nc + 1);
        if (!o)
            return oom(E);
        E->out = o;
        E->cap = nc;
    }
    memcpy(E->out + E->n, s, n);
    E->n += n;
    return 0;
}

static int bind_target(ev *E, const jj_node *x, scope *S, const jj_val *item)
{
    if (!x->s2)
        return scope_set(E, S, x->s, *item);
    if (item->t != JV_LIST || item->u.l->n != 2)
        return fail(E, x->line, "cannot unpack a %s into two loop variables", type_name(item));
    if (scope_set(E, S, x->s, item->u.l->v[0]))
        return EFAIL;
    return scope_set(E, S, x->s2, item->u.l->v[1]);
}

static int exec_for(ev *E, const jj_node *x, scope *S)
{
    jj_val it;
    if (eval(E, x->a, S, &it))
        return EFAIL;
    jj_list *items;
    if (it.t == JV_LIST)
        items = it.u.l;
    else {
        args none = {0};
        jj_val l;
        if (it.t == JV_DICT && it.u.d->ns)
            return fail(E, x->line, "cannot loop over a namespace");
        if (it.t != JV_STR && it.t != JV_DICT && it.t != JV_UNDEF)
            return fail(E, x->line, "cannot loop over a %s", type_name(&it));
        if (apply_filter(E, x->line, "list", &it, &none, &l))
            return EFAIL;
        items = l.u.l;
    }
    if (x->c) { /* "for x in xs if cond": filter first, loop.* counts what is left */
        jj_list *kept = new_list(E, items->n + 1);
        if (!kept)
            return oom(E);
        scope fs = {.parent = S};
        for (size_t i = 0; i < items->n; i++) {
            jj_val c;
            fs.n = 0;
            if (++E->iters > JJ_MAX_ITER)
                return fail(E, x->line, "loop iteration limit (%ld) reached", JJ_MAX_ITER);
            if (bind_target(E, x, &fs, &items->v[i]) || eval(E, x->c, &fs, &c))
                return EFAIL;
            if (truthy(&c) && list_push(E, kept, items->v[i]))
                return EFAIL;
        }
        items = kept;
    }
    /* One loop object and one body scope per loop, updated in place each
     * iteration (Jinja2's LoopContext is one object too): an iteration costs
     * no memory beyond what its body allocates. */
    size_t n = items->n;
    static const char *const K[] = {"index", "index0", "revindex", "revindex0", "first", "last", "length",
                                    "depth", "depth0", "previtem", "nextitem"};
    jj_dict *loop = new_dict(E);
    scope is = {.parent = S};
    if (!loop)
        return oom(E);
    for (size_t i = 0; i < n; i++) {
        if (++E->iters > JJ_MAX_ITER)
            return fail(E, x->line, "loop iteration limit (%ld) reached", JJ_MAX_ITER);
        jj_val V[] = {vint((int64_t)i + 1), vint((int64_t)i), vint((int64_t)(n - i)), vint((int64_t)(n - i - 1)),
                      vbool(i == 0), vbool(i + 1 == n), vint((int64_t)n), vint(1), vint(0),
                      i > 0 ? items->v[i - 1] : UNDEF, i + 1 < n ? items->v[i + 1] : UNDEF};
        for (size_t k = 0; k < sizeof K / sizeof K[0]; k++)
            if (dict_set(E, loop, vcstr(K[k]), V[k]))
                return EFAIL;
        is.n = 0; /* a fresh scope for each iteration, as Jinja2 has it */
        if (scope_set(E, &is, "loop", vdict(loop)) || bind_target(E, x, &is, &items->v[i]))
            return EFAIL;
        if (exec_body(E, x->d, &is))
            return EFAIL;
        int ctl = E->ctl;
        E->ctl = 0;
        if (ctl == 1)
            break;
    }
    if (n == 0 && x->b)
        return exec_body(E, x->b, S);
    return 0;
}

static int exec_stmt(ev *E, const jj_node *x, scope *S)
{
    jj_val v;
    if (step(E, x->line))
        return EFAIL;
    switch (x->kind) {
    case JN_TEXT: return emit(E, x->s, x->slen);
    case JN_OUT: {
        if (eval(E, x->a, S, &v))
            return EFAIL;
        if (v.t == JV_STR)
            return emit(E, v.u.s.p, v.u.s.n);
        jj_val s = str_of(E, &v);
        return E->failed ? EFAIL : emit(E, s.u.s.p, s.u.s.n);
    }
    case JN_IF:
        if (eval(E, x->c, S, &v))
            return EFAIL;
        if (truthy(&v))
            return exec_body(E, x->a, S);
        return x->b ? exec_body(E, x->b, S) : 0;
    case JN_FOR: return exec_for(E, x, S);
    case JN_SET:
        if (eval(E, x->a, S, &v))
            return EFAIL;
        if (x->s2) {
            jj_val ns = lookup(S, x->s);
            if (ns.t != JV_DICT || !ns.u.d->ns)
                return fail(E, x->line, "cannot assign attribute '%s' of '%s': not a namespace()", x->s2, x->s);
            return dict_set(E, ns.u.d, vcstr(x->s2), v);
        }
        return scope_set(E, S, x->s, v);
    case JN_SETBLOCK: {
        size_t mark = E->n;
        if (exec_body(E, x->a, S))
            return EFAIL;
        char *s = jj_strdup(&E->a, E->out ? E->out + mark : "", E->n - mark);
        if (!s)
            return oom(E);
        v = vstr(s, E->n - mark);
        E->n = mark;
        return scope_set(E, S, x->s, v);
    }
    case JN_MACRO:
        v.t = JV_MACRO;
        v.tuple = 0;
        v.u.macro = x;
        return scope_set(E, S, x->s, v);
    case JN_BREAK: E->ctl = 1; return 0;
    case JN_CONTINUE: E->ctl = 2; return 0;
    case JN_BODY: return exec_body(E, x, S);
    default: return fail(E, x->line, "internal: not a statement");
    }
}

static int exec_body(ev *E, const jj_node *body, scope *S)
{
    if (++E->depth > 4 * JJ_MAX_DEPTH) {
        E->depth--;
        return fail(E, body->line, "blocks nested too deeply");
    }
    for (size_t i = 0; i < body->n && !E->ctl; i++)
        if (exec_stmt(E, body->kids[i], S)) {
            E->depth--;
            return EFAIL;
        }
    E->depth--;
    return 0;
}

/* ---- entry ----------------------------------------------------------------------------- */
int jj_render(const jj_node *root, const slm_chat_params *p, char **out, size_t *out_len, slm_err *err)
{
    ev E = {.err = err, .p = p};
    jj_arena_init(&E.a, JJ_MAX_ARENA);
    scope globals = {0}, top = {.parent = &globals};
    int rc = 0;
    jj_list *msgs = new_list(&E, p->n_msgs + 1);
    if (!msgs)
        rc = oom(&E);
    for (size_t i = 0; !rc && i < p->n_msgs; i++) {
        jj_dict *m = new_dict(&E);
        if (!m) {
            rc = oom(&E);
            break;
        }
        const slm_chat_msg *cm = &p->msgs[i];
        if ((rc = dict_set(&E, m, vcstr("role"), vcstr(cm->role ? cm->role : ""))) ||
            (rc = dict_set(&E, m, vcstr("content"), vstr(cm->content ? cm->content : "", cm->content ? cm->content_len : 0))))
            break;
        msgs->v[msgs->n++] = vdict(m);
    }
    static const struct { const char *name; int fn; } FNS[] = {
        {"raise_exception", JF_RAISE}, {"namespace", JF_NAMESPACE}, {"strftime_now", JF_STRFTIME},
        {"range", JF_RANGE}, {"dict", JF_DICT}};
    for (size_t i = 0; !rc && i < sizeof FNS / sizeof FNS[0]; i++) {
        jj_val f = {.t = JV_FUNC};
        f.u.fn = FNS[i].fn;
        rc = scope_set(&E, &globals, FNS[i].name, f);
    }
    if (!rc)
        rc = scope_set(&E, &globals, "messages", vlist(msgs));
    if (!rc)
        rc = scope_set(&E, &globals, "add_generation_prompt", vbool(p->add_generation_prompt));
    if (!rc)
        rc = scope_set(&E, &globals, "tools", vnone());
    if (!rc)
        rc = scope_set(&E, &globals, "documents", vnone());
    if (!rc && p->bos_token)
        rc = scope_set(&E, &globals, "bos_token", vcstr(p->bos_token));
    if (!rc && p->eos_token)
        rc = scope_set(&E, &globals, "eos_token", vcstr(p->eos_token));
    E.top = &top;
    if (!rc)
        rc = exec_body(&E, root, &top);
    if (!rc && E.ctl)
        rc = fail(&E, 0, "'break' or 'continue' outside a loop");
    if (!rc && E.failed) /* an error inside a helper that could not return it (str(), a builder) */
        rc = EFAIL;
    if (!rc) {
        char *o = realloc(E.out, E.n + 1);
        if (!o)
            rc = slm_err_set(err, SLM_EINTERNAL, "chat template: out of memory");
        else {
            o[E.n] = 0;
            *out = o;
            *out_len = E.n;
            E.out = NULL;
        }
    }
    if (rc && E.a.failed && !E.failed)
        rc = oom(&E);
    free(E.out);
    jj_arena_free(&E.a);
    return rc;
}
