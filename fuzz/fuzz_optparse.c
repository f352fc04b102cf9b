/* fuzz/fuzz_optparse.c — the option-table parser (tools/opt.c): the input is an argument vector,
 * arguments separated by NUL bytes, parsed against a table with a row of every kind (flags, ranged
 * integers, floats with open and closed ends, strings, enums, a repeatable list, a callback, a
 * one-dash multi-letter option, an included group). Accepted: the operands come back in their order
 * after the options; refused: one usage line (status 2, reported here as SLM_EINPUT). */
#include "fuzz_common.h"

#include "../tools/cli.c"
#include "../tools/opt.c"

typedef struct fz_group {
    int json, threads;
} fz_group;

typedef struct fz_args {
    int flag, n, e, n_list;
    long long big;
    uint64_t seed;
    float f;
    double d;
    const char *s, *path, *list[4];
    int cb_calls;
    fz_group g;
} fz_args;

static int fz_cb(const char *cmd, const char *arg, void *field, void *base)
{
    (void)base;
    if (arg && !strcmp(arg, "no"))
        return cli_usage(cmd, "--cb refuses 'no'");
    ++*(int *)field;
    return 0;
}

static const fz_group *fz_unused;
static const slm_opt fz_group_table[] = {
    OPT_FLAG(0, "json", fz_group, json, "json"),
    OPT_INT('t', "threads", fz_group, threads, "N", 1, 1024, "threads"),
    OPT_END(),
};
static const char *const fz_choices[] = {"f32", "f16", "q8_0", NULL};
static const slm_opt optp_table[] = {
    OPT_FLAG('a', "all", fz_args, flag, "a flag"),
    OPT_INT('n', "n-predict", fz_args, n, "N", 0, 1 << 30, "int"),
    OPT_I64(0, "big", fz_args, big, "N", -5, 1LL << 53, "i64"),
    OPT_U64(0, "seed", fz_args, seed, "S", "u64"),
    OPT_FLOAT(0, "top-p", fz_args, f, "P", 0, 1, SLM_OPT_LO_OPEN, "float"),
    OPT_DOUBLE(0, "temp", fz_args, d, "T", 0, 0, SLM_OPT_NO_HI, "double"),
    OPT_STRING('p', "prompt", fz_args, s, "TEXT", "string"),
    OPT_PATH('o', "output", fz_args, path, "FILE", "path"),
    OPT_ENUM(0, "outtype", fz_args, e, "T", fz_choices, "enum"),
    OPT_LIST('k', "key", fz_args, list, n_list, "KEY", "list"),
    OPT_CALLBACK(0, "cb", fz_args, cb_calls, "X", fz_cb, "callback"),
    {.kind = SLM_OPT_CALLBACK, .name = "pg", .argname = "P,N", .off = offsetof(fz_args, cb_calls), .cb = fz_cb,
     .flags = SLM_OPT_DASH1, .help = "one dash"},
    OPT_GROUP("group:"),
    OPT_INCLUDE(fz_group_table, fz_args, g),
    OPT_END(),
};

static int fuzz_optparse(const uint8_t *data, size_t size)
{
    enum { MAXA = 64 };
    char *buf = malloc(size + 1), *argv[MAXA + 2], *orig[MAXA + 2];
    if (!buf)
        return SLM_EINTERNAL;
    memcpy(buf, data, size);
    buf[size] = 0;
    int argc = 1;
    argv[0] = "fuzz";
    for (size_t i = 0; i <= size && argc <= MAXA;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    memcpy(orig, argv, sizeof(char *) * (size_t)argc);
    fz_args a = {0};
    (void)fz_unused;
    FILE *saved = stderr;
    FILE *null = fopen("/dev/null", "w");
    if (null)
        stderr = null; /* one line per refusal: not wanted a million times */
    int ai = slm_opt_parse("fuzz", optp_table, argc, argv, &a);
    stderr = saved;
    if (null)
        fclose(null);
    int rc = 0;
    if (ai < 0) {
        rc = -ai == SLM_EUSAGE ? SLM_EINPUT : SLM_EINTERNAL;
    } else {
        /* every argument is still there (a permutation), the operands in their order */
        if (ai < 1 || ai > argc)
            abort();
        int last = 0;
        for (int k = ai; k < argc; k++) {
            int at = 0;
            for (int j = last + 1; j < argc; j++)
                if (orig[j] == argv[k]) {
                    at = j;
                    break;
                }
            if (!at)
                abort();
            last = at;
        }
        if (a.n_list > 4 || a.n < 0 || (a.g.threads && (a.g.threads < 1 || a.g.threads > 1024)))
            abort();
        if (a.f != 0 && !(a.f > 0 && a.f <= 1))
            abort();
    }
    free(buf);
    return rc;
}

FUZZ_ENTRY(fuzz_optparse)
