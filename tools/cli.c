/* tools/cli.c — shared helpers of the subcommands (see cli.h). */
#include "cli.h"
#include "pipeline.h"
#include "signing.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void cli_print_help(const slm_cmd *c, FILE *out)
{
    slm_opt_help(out, c->name, c->doc);
}

/* ---- shared option groups ---- */

const slm_opt cli_model_table[] = {
    OPT_PATH('m', "model", cli_model_opts, model, "FILE", "GGUF model"),
    OPT_PATH(0, "bundle", cli_model_opts, bundle, "B.slmb",
             "use the model of a signed bundle: signatures, expiry and every\n"
             "payload byte are verified first, into sealed memory that is\n"
             "then mapped (what runs is exactly what was hashed)"),
    OPT_LIST(0, "trust", cli_model_opts, trust, n_trust, "ROOT", "trust root for --bundle; repeat to walk a rotation chain"),
    OPT_DIR(0, "store", cli_model_opts, store, "DIR",
            "use the active model of an install store (re-verified against\n"
            "the store's pinned root the same way)"),
    OPT_END(),
};

const slm_opt cli_sampler_table[] = {
    OPT_FLOAT(0, "temp", slm_sampler_params, temp, "T", 0, 0, SLM_OPT_NO_HI, "temperature; 0 = greedy (default 0.8)"),
    OPT_INT(0, "top-k", slm_sampler_params, top_k, "K", 0, 1 << 30, "keep the K most likely tokens; 0 = off (default 40)"),
    OPT_FLOAT(0, "top-p", slm_sampler_params, top_p, "P", 0, 1, SLM_OPT_LO_OPEN, "nucleus sampling; 1 = off (default 0.95)"),
    OPT_FLOAT(0, "min-p", slm_sampler_params, min_p, "P", 0, 1, 0,
              "drop tokens below P x the top probability; 0 = off (default 0.05)"),
    OPT_FLOAT(0, "repeat-penalty", slm_sampler_params, repeat_penalty, "R", 0, 0, SLM_OPT_LO_OPEN | SLM_OPT_NO_HI,
              "penalise the last --repeat-last-n tokens; 1 = off (default 1)"),
    OPT_INT(0, "repeat-last-n", slm_sampler_params, repeat_last_n, "N", 0, 1 << 20, "window of the penalty (default 64)"),
    OPT_U64(0, "seed", slm_sampler_params, seed, "S", "PRNG seed (default: from the clock; printed in the stats)"),
    OPT_END(),
};

static int fallback_url(const char *cmd, const char *arg, void *field, void *base)
{
    (void)base;
    if (strncmp(arg, "http://", 7) && strncmp(arg, "https://", 8))
        return cli_usage(cmd, "--fallback wants an http:// or https:// URL, got '%s'", arg);
    *(const char **)field = arg;
    return 0;
}

int cli_parse_bytes(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *s == '-' || errno)
        return -1;
    int sh = !*end ? 0 : !strcmp(end, "K") ? 10 : !strcmp(end, "M") ? 20 : !strcmp(end, "G") ? 30 : -1;
    if (sh < 0 || v > (~0ull >> sh) || v == 0)
        return -1;
    *out = (uint64_t)v << sh;
    return 0;
}

static int mem_budget(const char *cmd, const char *arg, void *field, void *base)
{
    uint64_t v;
    (void)base;
    if (cli_parse_bytes(arg, &v))
        return cli_usage(cmd, "--mem-budget wants bytes (e.g. 512M), got '%s'", arg);
    *(unsigned long long *)field = v;
    return 0;
}

static int fallback_timeout(const char *cmd, const char *arg, void *field, void *base)
{
    cli_fallback_opts *f = base;
    double d;
    (void)field;
    if (cli_parse_double(arg, &d) || d <= 0 || d > 3600)
        return cli_usage(cmd, "--fallback-timeout wants seconds in (0, 3600], got '%s'", arg);
    f->timeout_ms = (long)(d * 1000);
    f->connect_ms = f->timeout_ms < 2000 ? f->timeout_ms : 2000;
    return 0;
}

void cli_fallback_defaults(cli_fallback_opts *f)
{
    memset(f, 0, sizeof *f);
    f->confidence = 0.1;
    f->connect_ms = 2000;
    f->timeout_ms = 30000;
}

const slm_opt cli_fallback_table[] = {
    OPT_CALLBACK(0, "fallback", cli_fallback_opts, url, "URL", fallback_url,
                 "an OpenAI-compatible upstream (e.g. slm serve) answers instead when the\n"
                 "prompt + tokens to generate exceed the context, when the model does not fit\n"
                 "--mem-budget, or when the local answer's confidence is below\n"
                 "--fallback-confidence. See docs/serve.md"),
    OPT_PATH(0, "fallback-key-file", cli_fallback_opts, key_file, "F", "bearer key sent to the upstream (F's first line)"),
    OPT_DOUBLE(0, "fallback-confidence", cli_fallback_opts, confidence, "P", 0, 1, 0,
               "defer a (non-streamed) local answer whose confidence is below P;\n0 = never (default 0.1)"),
    OPT_CALLBACK(0, "fallback-timeout", cli_fallback_opts, timeout_ms, "S", fallback_timeout,
                 "whole upstream request bound in seconds (default 30; connect: 2)"),
    OPT_CALLBACK(0, "mem-budget", cli_fallback_opts, mem_budget, "BYTES", mem_budget,
                 "the model (weights + KV caches) must fit; K/M/G suffixes (default: none)"),
    OPT_END(),
};

int cli_opt_duration(const char *cmd, const char *arg, void *field, void *base)
{
    (void)base;
    int64_t v;
    if (slm_parse_duration(arg, &v) || v <= 0)
        return cli_usage(cmd, "--expires wants a duration like 365d, 30d, 12h, 90m, 45s; got '%s'", arg);
    *(int64_t *)field = v;
    return 0;
}

typedef struct one_int {
    int v;
} one_int;

const slm_opt cli_json_table[] = {
    OPT_FLAG(0, "json", one_int, v, "print one JSON object on stdout"),
    OPT_END(),
};

const slm_opt cli_threads_table[] = {
    OPT_INT('t', "threads", one_int, v, "N", 1, 1024, "threads (default: physical cores)"),
    OPT_END(),
};

/* index order of cli_cache_opts' fields: f32 (0, the default) first */
static const char *const cache_type_names[] = {"f32", "f16", "bf16", "q8_0", "q4_0", NULL};

const slm_opt cli_cache_table[] = {
    OPT_ENUM(0, "cache-type-k", cli_cache_opts, k, "TYPE", cache_type_names,
             "KV cache type of the keys: f32 (default), f16, bf16, q8_0, q4_0\n"
             "(quantized types need a head size that is a multiple of 32; docs/kvcache.md)"),
    {.kind = SLM_OPT_ENUM, .name = "ctk", .argname = "TYPE", .off = SLM_OPT_OFF(cli_cache_opts, k, int),
     .choices = cache_type_names, .flags = SLM_OPT_DASH1, .help = "the same as --cache-type-k"},
    OPT_ENUM(0, "cache-type-v", cli_cache_opts, v, "TYPE", cache_type_names,
             "KV cache type of the values: f32 (default), f16, bf16, q8_0, q4_0"),
    {.kind = SLM_OPT_ENUM, .name = "ctv", .argname = "TYPE", .off = SLM_OPT_OFF(cli_cache_opts, v, int),
     .choices = cache_type_names, .flags = SLM_OPT_DASH1, .help = "the same as --cache-type-v"},
    OPT_END(),
};

uint32_t cli_cache_type(int idx)
{
    return idx > 0 && idx < (int)(sizeof cache_type_names / sizeof cache_type_names[0]) - 1
               ? slm_pl_kv_type_by_name(cache_type_names[idx])
               : SLM_TYPE_F32;
}

int cli_wants_help(const slm_cmd *c, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            cli_print_help(c, stdout);
            return 1;
        }
    }
    return 0;
}

static void vmsg(const char *cmd, const char *kind, const char *fmt, va_list ap)
{
    fprintf(stderr, "slm%s%s: %s: ", cmd ? " " : "", cmd ? cmd : "", kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_fail(const char *cmd, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(cmd, "error", fmt, ap);
    va_end(ap);
    return code;
}

int cli_fail_err(const char *cmd, const slm_err *e)
{
    return cli_fail(cmd, e->code ? e->code : SLM_EINTERNAL, "%s", e->msg);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(cmd, "usage error", fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'slm %s --help'.\n", cmd ? cmd : "");
    return SLM_EUSAGE;
}

void cli_warn(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(cmd, "warning", fmt, ap);
    va_end(ap);
}

int cli_parse_int(const char *s, long long lo, long long hi, long long *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || v != v)
        return -1;
    *out = v;
    return 0;
}

int cli_default_threads(void)
{
    /* physical cores: count distinct (physical id, core id) pairs */
    FILE *f = fopen("/proc/cpuinfo", "r");
    int n = 0;
    if (f) {
        char line[256];
        int phys = 0;
        int seen[1024][2];
        while (fgets(line, sizeof line, f)) {
            int v;
            if (sscanf(line, "physical id : %d", &v) == 1)
                phys = v;
            else if (sscanf(line, "core id : %d", &v) == 1) {
                int dup = 0;
                for (int i = 0; i < n; i++)
                    if (seen[i][0] == phys && seen[i][1] == v)
                        dup = 1;
                if (!dup && n < 1024) {
                    seen[n][0] = phys;
                    seen[n][1] = v;
                    n++;
                }
            }
        }
        fclose(f);
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0 || (online > 0 && n > online))
        n = online > 0 ? (int)online : 1;
    return n;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

long cli_peak_rss_kb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        return ru.ru_maxrss;
    return -1;
}

void cli_progress_start(cli_progress *p, const char *label, uint64_t total)
{
    memset(p, 0, sizeof *p);
    p->on = isatty(STDERR_FILENO) && !getenv("SLM_NO_PROGRESS");
    p->label = label;
    p->total = total ? total : 1;
    p->t0 = cli_now();
    p->last_drawn = (uint64_t)-1;
    cli_progress_update(p, 0);
}

void cli_progress_update(cli_progress *p, uint64_t done)
{
    if (!p->on)
        return;
    if (done > p->total)
        done = p->total;
    uint64_t permille = done * 1000 / p->total;
    if (permille == p->last_drawn)
        return;
    p->last_drawn = permille;
    int width = 30, fill = (int)(permille * width / 1000);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r%s [%s] %5.1f%% %6.1fs", p->label, bar, permille / 10.0, cli_now() - p->t0);
    fflush(stderr);
}

void cli_progress_end(cli_progress *p)
{
    if (!p->on)
        return;
    p->last_drawn = (uint64_t)-1;
    cli_progress_update(p, p->total);
    fputc('\n', stderr);
}

char *cli_read_file(const char *path, size_t max, size_t *len, slm_err *err)
{
    char *b = NULL;
    size_t n = 0;
    if (slm_read_text_file(path, max, &b, &n, err))
        return NULL;
    if (len)
        *len = n;
    return b;
}

int cli_model_fd(const char *path)
{
    int fd = -1;
    return path && sscanf(path, "/proc/self/fd/%d", &fd) == 1 ? fd : -1;
}

int cli_model_check(const cli_model_opts *o, slm_err *err)
{
    if (!!o->model + !!o->bundle + !!o->store != 1)
        return slm_err_set(err, SLM_EUSAGE,
                           "give exactly one model: -m MODEL.gguf, --bundle B.slmb --trust ROOT, or --store DIR");
    if (o->bundle && !o->n_trust)
        return slm_err_set(err, SLM_EUSAGE, "--bundle needs --trust ROOT");
    if (o->n_trust && !o->bundle)
        return slm_err_set(err, SLM_EUSAGE, "--trust goes with --bundle (a store uses its pinned root)");
    return SLM_OK;
}

int cli_model_path(const cli_model_opts *o, char *buf, size_t cap, const char **path, slm_err *err)
{
    int fd;
    return slm_pl_model_path(o->model, o->bundle, o->trust, o->n_trust, o->store, buf, cap, path, &fd, err);
}

int cli_fallback_check(const cli_fallback_opts *f, slm_err *err)
{
    if (f->key_file && !f->url)
        return slm_err_set(err, SLM_EUSAGE, "--fallback-key-file goes with --fallback URL");
    return SLM_OK;
}

int cli_fallback_key(const cli_fallback_opts *f, char **key, slm_err *err)
{
    *key = NULL;
    if (!f->key_file)
        return SLM_OK;
    size_t kn = 0;
    if (!(*key = cli_read_file(f->key_file, 4096, &kn, err)))
        return err->code ? err->code : SLM_EIO;
    (*key)[strcspn(*key, "\r\n")] = 0;
    return SLM_OK;
}

uint64_t cli_clock_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec;
}

void cli_progress_phase(void *user, int phase, uint64_t v)
{
    cli_progress *bar = user;
    if (phase == 0)
        cli_progress_start(bar, bar->label, v);
    else if (phase == 1)
        cli_progress_update(bar, v);
    else
        cli_progress_end(bar);
}
