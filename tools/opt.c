/* tools/opt.c — the option-table parser and the --help renderer (see opt.h). */
#include "opt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ---- the parser ---------------------------------------------------------------------------- */

/* one documented-or-not option with the base its offsets apply to */
typedef struct found {
    const slm_opt *o;
    char *base;
} found;

typedef struct walk {
    const char *name; /* long name or prefix being looked up, or NULL */
    size_t len;
    int exact_dash1;  /* look up a DASH1 option named exactly name */
    char shrt;
    found hit, exact;
    int n_prefix;
    const char *other; /* a second prefix match (for the ambiguity message) */
} walk;

static void lookup(const slm_opt *t, char *base, walk *w)
{
    for (; t->kind != SLM_OPT_END; t++) {
        if (t->kind == SLM_OPT_INCLUDE) {
            lookup(t->include, base + t->off, w);
            continue;
        }
        if (t->kind == SLM_OPT_GROUP || t->kind == SLM_OPT_TEXT)
            continue;
        if (w->shrt) {
            if (t->shrt == w->shrt && !w->hit.o)
                w->hit = (found){t, base};
            continue;
        }
        if (!t->name)
            continue;
        int dash1 = !!(t->flags & SLM_OPT_DASH1);
        if (dash1 != w->exact_dash1)
            continue;
        if (strlen(t->name) == w->len && !strncmp(t->name, w->name, w->len)) {
            if (!w->exact.o)
                w->exact = (found){t, base};
        } else if (!dash1 && !strncmp(t->name, w->name, w->len)) {
            if (w->n_prefix++ == 0)
                w->hit = (found){t, base};
            else if (!w->other)
                w->other = t->name;
        }
    }
}

static int takes_arg(const slm_opt *o)
{
    return o->kind != SLM_OPT_FLAG && !(o->kind == SLM_OPT_CALLBACK && (o->flags & SLM_OPT_NOARG));
}

/* "--threads" or "-t" for messages */
static const char *spelled(const slm_opt *o, char *buf, size_t n)
{
    if (o->name)
        snprintf(buf, n, "%s%s", o->flags & SLM_OPT_DASH1 ? "-" : "--", o->name);
    else
        snprintf(buf, n, "-%c", o->shrt);
    return buf;
}

static void fmt_num(char *b, size_t n, double v)
{
    snprintf(b, n, "%g", v);
}

static int store(const char *cmd, const found *f, const char *arg)
{
    const slm_opt *o = f->o;
    void *p = f->base + o->off;
    char nm[64], lo[32], hi[32];
    spelled(o, nm, sizeof nm);
    switch (o->kind) {
    case SLM_OPT_FLAG: *(int *)p = o->ival; return 0;
    case SLM_OPT_INT:
    case SLM_OPT_I64: {
        long long v;
        if (cli_parse_int(arg, o->lo, o->hi, &v)) {
            if (o->hi >= (1LL << 30))
                return cli_usage(cmd, "%s wants an integer >= %lld, got '%s'", nm, o->lo, arg);
            return cli_usage(cmd, "%s wants an integer %lld..%lld, got '%s'", nm, o->lo, o->hi, arg);
        }
        if (o->kind == SLM_OPT_INT)
            *(int *)p = (int)v;
        else
            *(long long *)p = v;
        return 0;
    }
    case SLM_OPT_U64: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(arg, &end, 10);
        if (!*arg || *end || *arg == '-' || *arg == '+' || errno)
            return cli_usage(cmd, "%s wants a non-negative integer, got '%s'", nm, arg);
        *(uint64_t *)p = (uint64_t)v;
        return 0;
    }
    case SLM_OPT_FLOAT:
    case SLM_OPT_DOUBLE: {
        double v;
        int bad = cli_parse_double(arg, &v);
        int lo_open = o->flags & SLM_OPT_LO_OPEN, hi_open = o->flags & SLM_OPT_HI_OPEN;
        int no_hi = o->flags & SLM_OPT_NO_HI;
        if (!bad)
            bad = lo_open ? !(v > o->flo) : !(v >= o->flo);
        if (!bad && !no_hi)
            bad = hi_open ? !(v < o->fhi) : !(v <= o->fhi);
        if (bad) {
            fmt_num(lo, sizeof lo, o->flo);
            fmt_num(hi, sizeof hi, o->fhi);
            if (no_hi)
                return cli_usage(cmd, "%s wants a number %s %s, got '%s'", nm, lo_open ? ">" : ">=", lo, arg);
            return cli_usage(cmd, "%s wants a number in %c%s, %s%c, got '%s'", nm, lo_open ? '(' : '[', lo, hi,
                             hi_open ? ')' : ']', arg);
        }
        if (o->kind == SLM_OPT_FLOAT)
            *(float *)p = (float)v;
        else
            *(double *)p = v;
        return 0;
    }
    case SLM_OPT_STRING:
    case SLM_OPT_PATH:
    case SLM_OPT_DIR: *(const char **)p = arg; return 0;
    case SLM_OPT_ENUM: {
        char list[256] = "";
        for (int i = 0; o->choices[i]; i++) {
            if (!strcmp(o->choices[i], arg)) {
                *(int *)p = i;
                return 0;
            }
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", o->choices[i]);
        }
        return cli_usage(cmd, "%s wants one of %s, got '%s'", nm, list, arg);
    }
    case SLM_OPT_LIST: {
        int *n = (int *)(f->base + o->off2);
        if (*n >= o->hi)
            return cli_usage(cmd, "at most %lld %s options", o->hi, nm);
        ((const char **)p)[(*n)++] = arg;
        return 0;
    }
    case SLM_OPT_CALLBACK: return o->cb(cmd, arg, p, f->base);
    default: return cli_fail(cmd, SLM_EINTERNAL, "option table: bad row for %s", nm);
    }
}

int slm_opt_parse(const char *cmd, const slm_opt *opts, int argc, char **argv, void *base)
{
    /* operands are collected here in order, then put back after the options */
    char **operands = calloc((size_t)argc + 1, sizeof *operands);
    int n_ops = 0, n_opts = 1, rc = 0;
    if (!operands) {
        cli_fail(cmd, SLM_EINTERNAL, "out of memory");
        return -1;
    }
    char **order = calloc((size_t)argc + 1, sizeof *order);
    if (!order) {
        free(operands);
        cli_fail(cmd, SLM_EINTERNAL, "out of memory");
        return -1;
    }
    if (argc > 0)
        order[0] = argv[0];
    int i = 1;
    for (; i < argc && !rc; i++) {
        char *a = argv[i];
        if (!strcmp(a, "--")) {
            order[n_opts++] = a;
            for (i++; i < argc; i++)
                operands[n_ops++] = argv[i];
            break;
        }
        if (a[0] != '-' || !a[1]) {
            operands[n_ops++] = a;
            continue;
        }
        order[n_opts++] = a;
        {
            walk w = {0};
            int is_long = a[1] == '-';
            const char *nm = a + (is_long ? 2 : 1);
            const char *eq = strchr(nm, '=');
            w.name = nm;
            w.len = eq ? (size_t)(eq - nm) : strlen(nm);
            if (!is_long) {
                /* a multi-letter one-dash option (-pg) wins over a cluster of short ones */
                w.exact_dash1 = 1;
                lookup(opts, base, &w);
                if (!w.exact.o) {
                    /* short options: -x, -xVALUE, -xyz (flags) */
                    for (const char *s = a + 1; *s && !rc; s++) {
                        walk ws = {.shrt = *s};
                        lookup(opts, base, &ws);
                        if (!ws.hit.o) {
                            rc = cli_usage(cmd, "unknown option '%s'", a);
                            break;
                        }
                        if (!takes_arg(ws.hit.o)) {
                            rc = store(cmd, &ws.hit, NULL);
                            continue;
                        }
                        const char *v = s[1] ? s + 1 : NULL;
                        if (!v) {
                            if (i + 1 >= argc) {
                                rc = cli_usage(cmd, "option '%s' needs a value", a);
                                break;
                            }
                            v = argv[++i];
                            order[n_opts++] = argv[i];
                        }
                        rc = store(cmd, &ws.hit, v);
                        break;
                    }
                    continue;
                }
            } else {
                lookup(opts, base, &w);
            }
            found f = w.exact.o ? w.exact : w.hit;
            if (!w.exact.o && w.n_prefix > 1) {
                rc = cli_usage(cmd, "option '%.*s' is ambiguous (--%s, --%s, ...)", (int)(w.len + 2), a,
                               w.hit.o->name, w.other);
                break;
            }
            if (!f.o) {
                rc = cli_usage(cmd, "unknown option '%s'", a);
                break;
            }
            char sp[64];
            spelled(f.o, sp, sizeof sp);
            if (!takes_arg(f.o)) {
                if (eq) {
                    rc = cli_usage(cmd, "option '%s' takes no value", sp);
                    break;
                }
                rc = store(cmd, &f, NULL);
                continue;
            }
            const char *v = eq ? eq + 1 : NULL;
            if (!v) {
                if (i + 1 >= argc) {
                    rc = cli_usage(cmd, "option '%s' needs a value", a);
                    break;
                }
                v = argv[++i];
                order[n_opts++] = argv[i];
            }
            rc = store(cmd, &f, v);
        }
    }
    int first = -(rc ? rc : SLM_EUSAGE);
    if (!rc) {
        /* argv = command word, options (in order), then the operands (in order) */
        for (int k = 0; k < n_opts; k++)
            argv[k] = order[k];
        for (int k = 0; k < n_ops; k++)
            argv[n_opts + k] = operands[k];
        first = n_opts;
    }
    free(order);
    free(operands);
    return first;
}

/* ---- walking a table ----------------------------------------------------------------------- */

static void each(const slm_opt *t, slm_opt_visit_fn fn, void *ctx, int with_groups)
{
    for (; t && t->kind != SLM_OPT_END; t++) {
        if (t->kind == SLM_OPT_INCLUDE && t->help) {
            /* a one-option group with this command's own help text */
            slm_opt row = t->include[0];
            row.help = t->help;
            fn(&row, ctx);
        } else if (t->kind == SLM_OPT_INCLUDE)
            each(t->include, fn, ctx, with_groups);
        else if (t->kind == SLM_OPT_GROUP || t->kind == SLM_OPT_TEXT) {
            if (with_groups)
                fn(t, ctx);
        } else if (!(t->flags & SLM_OPT_HIDDEN))
            fn(t, ctx);
    }
}

void slm_opt_each(const slm_opt *opts, slm_opt_visit_fn fn, void *ctx)
{
    each(opts, fn, ctx, 0);
}

void slm_opt_each_all(const slm_opt *opts, slm_opt_visit_fn fn, void *ctx)
{
    each(opts, fn, ctx, 1);
}

/* "-o, --output FILE", "    --json", "-pg P,N" */
static void left_part(const slm_opt *o, char *b, size_t n)
{
    const char *a = o->argname ? o->argname : "";
    const char *sep = o->argname ? " " : "";
    if (o->name && (o->flags & SLM_OPT_DASH1))
        snprintf(b, n, "-%s%s%s", o->name, sep, a);
    else if (o->shrt && o->name)
        snprintf(b, n, "-%c, --%s%s%s", o->shrt, o->name, sep, a);
    else if (o->name)
        snprintf(b, n, "    --%s%s%s", o->name, sep, a);
    else
        snprintf(b, n, "-%c%s%s", o->shrt, sep, a);
}

typedef struct widths {
    int w;
} widths;

static void measure(const slm_opt *o, void *ctx)
{
    widths *w = ctx;
    char b[160];
    left_part(o, b, sizeof b);
    int l = (int)strlen(b);
    if (l <= 26 && l > w->w)
        w->w = l;
}

typedef struct printer {
    FILE *out;
    int col;
    int any;
} printer;

/* text with continuation lines indented to column col */
static void put_indented(FILE *out, const char *text, int col)
{
    for (const char *p = text; *p; p++) {
        fputc(*p, out);
        if (*p == '\n' && p[1])
            fprintf(out, "%*s", col, "");
    }
    fputc('\n', out);
}

static void print_row(const slm_opt *o, void *ctx)
{
    printer *p = ctx;
    if (o->kind == SLM_OPT_GROUP) {
        fprintf(p->out, "%s%s\n", p->any ? "\n" : "", o->help);
        return;
    }
    if (o->kind == SLM_OPT_TEXT) {
        fputs("  ", p->out);
        put_indented(p->out, o->help, 2);
        return;
    }
    p->any = 1;
    char b[160];
    left_part(o, b, sizeof b);
    int l = (int)strlen(b);
    fprintf(p->out, "  %s", b);
    if (l < p->col)
        fprintf(p->out, "%*s", p->col - l, "");
    else
        fputs("  ", p->out);
    put_indented(p->out, o->help ? o->help : "", p->col + 2);
}

void slm_opt_print_table(FILE *out, const slm_opt *opts)
{
    widths w = {10};
    each(opts, measure, &w, 0);
    static const slm_opt help_row = {.kind = SLM_OPT_FLAG, .shrt = 'h', .name = "help", .help = "this help"};
    measure(&help_row, &w);
    printer p = {out, w.w + 2, 0};
    each(opts, print_row, &p, 1);
    print_row(&help_row, &p);
}

void slm_opt_help(FILE *out, const char *cmd, const slm_cmd_doc *d)
{
    (void)cmd;
    fputs("usage: ", out);
    put_indented(out, d->usage, 7);
    if (d->description)
        fprintf(out, "\n%s", d->description);
    fputs("\noptions:\n", out);
    slm_opt_print_table(out, d->opts);
    if (d->notes)
        fprintf(out, "\n%s", d->notes);
    if (d->examples) {
        fputs("\nexamples:\n", out);
        for (const char *p = d->examples; *p;) {
            const char *e = strchr(p, '\n');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            fprintf(out, "  %.*s\n", (int)l, p);
            p += l + (e != NULL);
        }
    }
    fputs("\nexit codes: ", out);
    put_indented(out, d->exit_codes, 12);
}
