/* tools/opt.h — option tables, as git's parse-options: one table per command drives the
 * parser, `--help`, the man page (slm help --man CMD) and shell completion (slm completion).
 *
 * A row names an option (long name, short letter), the kind of its argument, where the value
 * goes and one help text. Targets are offsets into the command's own arguments struct (the
 * table is static; the struct lives on the caller's stack), so the same table serves the
 * parser and the documentation. Shared groups (model, sampler, fallback, --json, --threads)
 * are tables defined once in cli.c and included by reference with OPT_INCLUDE, which places
 * the group's struct inside the command's.
 *
 * Parsing follows getopt_long: options and operands may mix (operands are moved to the end,
 * in order), `--` ends the options, `--name=value` and `--name value`, `-xVALUE` and `-x VALUE`,
 * clustered short flags, unambiguous prefixes of long names. Every refusal is one line on
 * stderr ("slm CMD: usage error: --threads wants an integer 1..1024, got 'x'") plus the
 * "Try 'slm CMD --help'." hint, and exit status 2 (SLM_EUSAGE). */
#ifndef SLM_OPT_H
#define SLM_OPT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum slm_opt_kind {
    SLM_OPT_END = 0,
    SLM_OPT_GROUP,    /* a heading in the help ("calibration:"); no option */
    SLM_OPT_TEXT,     /* a paragraph of help between options; no option */
    SLM_OPT_INCLUDE,  /* the rows of another table, their struct at .off */
    SLM_OPT_FLAG,     /* int = .ival (1 unless given) */
    SLM_OPT_INT,      /* int in [lo, hi] */
    SLM_OPT_I64,      /* long long in [lo, hi] */
    SLM_OPT_U64,      /* uint64_t (non-negative decimal) */
    SLM_OPT_FLOAT,    /* float in the range of .flo/.fhi */
    SLM_OPT_DOUBLE,   /* double in the range of .flo/.fhi */
    SLM_OPT_STRING,   /* const char * */
    SLM_OPT_PATH,     /* const char *, a file (completion offers files) */
    SLM_OPT_DIR,      /* const char *, a directory (completion offers directories) */
    SLM_OPT_ENUM,     /* int = index of the value in .choices (NULL-terminated) */
    SLM_OPT_LIST,     /* repeatable: const char *[lo..hi capacity] at .off, count (int) at .off2 */
    SLM_OPT_CALLBACK, /* .cb(cmd, arg, base + .off, base) validates and stores */
} slm_opt_kind;

/* range flags for FLOAT/DOUBLE, and row flags */
enum {
    SLM_OPT_LO_OPEN = 1,   /* value > flo (else >=) */
    SLM_OPT_HI_OPEN = 2,   /* value < fhi (else <=) */
    SLM_OPT_NO_HI = 4,     /* no upper bound */
    SLM_OPT_HIDDEN = 8,    /* parsed but not documented (aliases kept for old scripts) */
    SLM_OPT_DASH1 = 16,    /* a multi-letter option with one dash (llama-bench's -pg) */
    SLM_OPT_NOARG = 32,    /* a CALLBACK that takes no argument (arg is NULL) */
};

struct slm_opt;
/* 0 when stored; else the exit status (the callback printed the message with cli_usage). */
typedef int (*slm_opt_cb)(const char *cmd, const char *arg, void *field, void *base);

typedef struct slm_opt {
    slm_opt_kind kind;
    char shrt;                   /* short letter, 0 for none */
    const char *name;            /* long name without "--"; NULL for a short-only option */
    const char *argname;         /* "N", "FILE", ...: NULL for flags */
    const char *help;            /* '\n' starts a continuation line */
    size_t off, off2;            /* target offset(s) in the arguments struct */
    long long lo, hi;            /* INT/I64 range; LIST capacity in hi */
    double flo, fhi;             /* FLOAT/DOUBLE range (flags say open/closed) */
    int ival;                    /* FLAG: the value stored */
    int flags;
    const char *const *choices;  /* ENUM */
    slm_opt_cb cb;               /* CALLBACK */
    const struct slm_opt *include;
} slm_opt;

/* One command's documentation and table: `slm CMD --help`, slm-CMD(1), completion. */
typedef struct slm_cmd_doc {
    const char *usage;       /* synopsis lines, each starting "slm CMD" */
    const char *description; /* paragraphs before the options */
    const slm_opt *opts;     /* NULL when the command takes no options */
    const char *notes;       /* paragraphs after the options (may be NULL) */
    const char *exit_codes;  /* "0 ok, 2 usage, ..." */
    const char *examples;    /* command lines, one per line (may be NULL) */
    const char *const *subcommands; /* words completion offers as the first operand */
} slm_cmd_doc;

/* The type check of a row: a compile error when T.f is not of type TY. */
#define SLM_OPT_OFF(T, f, TY) (offsetof(T, f) + 0 * sizeof(char[_Generic(((T *)0)->f, TY: 1, default: -1)]))

#define OPT_END() {.kind = SLM_OPT_END}
#define OPT_GROUP(h) {.kind = SLM_OPT_GROUP, .help = (h)}
#define OPT_TEXT(h) {.kind = SLM_OPT_TEXT, .help = (h)}
#define OPT_INCLUDE(tab, T, f) {.kind = SLM_OPT_INCLUDE, .include = (tab), .off = offsetof(T, f)}
/* a one-option group (cli_json_table, cli_threads_table) documented with this command's words */
#define OPT_INCLUDE_AS(tab, T, f, h) {.kind = SLM_OPT_INCLUDE, .include = (tab), .off = SLM_OPT_OFF(T, f, int), .help = (h)}
#define OPT_FLAG(s, l, T, f, h) {.kind = SLM_OPT_FLAG, .shrt = (s), .name = (l), .help = (h), .off = SLM_OPT_OFF(T, f, int), .ival = 1}
#define OPT_SET_INT(s, l, T, f, v, h) {.kind = SLM_OPT_FLAG, .shrt = (s), .name = (l), .help = (h), .off = SLM_OPT_OFF(T, f, int), .ival = (v)}
#define OPT_INT(s, l, T, f, a, mn, mx, h) \
    {.kind = SLM_OPT_INT, .shrt = (s), .name = (l), .argname = (a), .help = (h), .off = SLM_OPT_OFF(T, f, int), .lo = (mn), .hi = (mx)}
#define OPT_I64(s, l, T, f, a, mn, mx, h) \
    {.kind = SLM_OPT_I64, .shrt = (s), .name = (l), .argname = (a), .help = (h), .off = SLM_OPT_OFF(T, f, long long), .lo = (mn), .hi = (mx)}
#define OPT_U64(s, l, T, f, a, h) \
    {.kind = SLM_OPT_U64, .shrt = (s), .name = (l), .argname = (a), .help = (h), .off = SLM_OPT_OFF(T, f, uint64_t)}
#define OPT_DOUBLE(s, l, T, f, a, mn, mx, fl, h) \
    {.kind = SLM_OPT_DOUBLE, .shrt = (s), .name = (l), .argname = (a), .help = (h), .off = SLM_OPT_OFF(T, f, double), .flo = (mn), .fhi = (mx), .flags = (fl)}
#define OPT_FLOAT(s, l, T, f, a, mn, mx, fl, h) \
    {.kind = SLM_OPT_FLOAT, .shrt = (s), .name = (l), .argname = (a), .help = (h), .off = SLM_OPT_OFF(T, f, float), .flo = (mn), .fhi = (mx), .flags = (fl)}
#define OPT_STRING(s, l, T, f, a, h) \
    {.kind = SLM_OPT_STRING, .shrt = (s), .name = (l), .argname = (a), .help = (h), .off = SLM_OPT_OFF(T, f, const char *)}
#define OPT_PATH(s, l, T, f, a, h) \
    {.kind = SLM_OPT_PATH, .shrt = (s), .name = (l), .argname = (a), .help = (h), .off = SLM_OPT_OFF(T, f, const char *)}
#define OPT_DIR(s, l, T, f, a, h) \
    {.kind = SLM_OPT_DIR, .shrt = (s), .name = (l), .argname = (a), .help = (h), .off = SLM_OPT_OFF(T, f, const char *)}
#define OPT_ENUM(s, l, T, f, a, ch, h) \
    {.kind = SLM_OPT_ENUM, .shrt = (s), .name = (l), .argname = (a), .help = (h), .off = SLM_OPT_OFF(T, f, int), .choices = (ch)}
/* repeatable: T.f is const char *[cap], T.n an int count */
#define OPT_LIST(s, l, T, f, n, a, h) \
    {.kind = SLM_OPT_LIST, .shrt = (s), .name = (l), .argname = (a), .help = (h), .off = offsetof(T, f), \
     .off2 = SLM_OPT_OFF(T, n, int), .hi = sizeof(((T *)0)->f) / sizeof(((T *)0)->f[0])}
#define OPT_CALLBACK(s, l, T, f, a, fn, h) \
    {.kind = SLM_OPT_CALLBACK, .shrt = (s), .name = (l), .argname = (a), .help = (h), .off = offsetof(T, f), .cb = (fn)}
#define OPT_CALLBACK_NOARG(s, l, T, f, fn, h) \
    {.kind = SLM_OPT_CALLBACK, .shrt = (s), .name = (l), .help = (h), .off = offsetof(T, f), .cb = (fn), .flags = SLM_OPT_NOARG}

/* Parse argv[1..argc) (argv[0] is the command word) into base. Returns the index of the first
 * operand after permutation (operands are argv[ret..argc), in their order), or minus the exit
 * status after the error was printed: 2 for usage errors; a callback may return another status
 * (4 for a key file it cannot read): `if (ai < 0) return -ai;`. -h/--help is handled before
 * (cli_wants_help). */
int slm_opt_parse(const char *cmd, const slm_opt *opts, int argc, char **argv, void *base);

/* `slm CMD --help`: usage, description, the options table, notes, exit codes, examples. */
void slm_opt_help(FILE *out, const char *cmd, const slm_cmd_doc *doc);
/* The options part only (aligned two-column text, groups as headings). */
void slm_opt_print_table(FILE *out, const slm_opt *opts);

/* roff for man(7): slm-CMD(1) (cmd != NULL) with its summary, or slm(1) listing every command. */
typedef struct slm_cmd slm_cmd;
int slm_opt_man(FILE *out, const slm_cmd *cmds, size_t n, const char *cmd, const char *version);
/* bash or zsh completion script for every command in cmds. */
int slm_opt_completion(FILE *out, const slm_cmd *cmds, size_t n, const char *shell);

/* Visit every documented option of a table (includes flattened, groups skipped). */
typedef void (*slm_opt_visit_fn)(const slm_opt *o, void *ctx);
void slm_opt_each(const slm_opt *opts, slm_opt_visit_fn fn, void *ctx);
/* The same with the GROUP and TEXT rows. */
void slm_opt_each_all(const slm_opt *opts, slm_opt_visit_fn fn, void *ctx);

#endif
