/* tools/cli.c — shared helpers of the subcommands (see cli.h). */
#include "cli.h"
#include "pipeline.h"
#include "runtime.h"
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
    fputs(c->help, out);
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
    /* O_NONBLOCK: opening a FIFO must not wait for a writer */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        slm_err_set(err, SLM_EIO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        slm_err_set(err, SLM_EIO, "%s: not a regular file", path);
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        slm_err_set(err, SLM_EINTERNAL, "out of memory reading %s", path);
        return NULL;
    }
    if ((uint64_t)st.st_size > max) {
        fclose(f);
        slm_err_set(err, SLM_EINPUT, "%s: %lld bytes is more than the %zu this command reads", path,
                    (long long)st.st_size, max);
        return NULL;
    }
    /* the size may change while we read: read until EOF, never past max */
    size_t cap = (size_t)st.st_size + 1, n = 0, r;
    char *b = malloc(cap + 1);
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            if (cap > max) {
                free(b);
                fclose(f);
                slm_err_set(err, SLM_EINPUT, "%s: grew past %zu bytes while being read", path, max);
                return NULL;
            }
            char *nb = realloc(b, cap * 2 + 1);
            if (!nb)
                free(b);
            b = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!b) {
        slm_err_set(err, SLM_EINTERNAL, "out of memory reading %s", path);
        return NULL;
    }
    if (bad) {
        free(b);
        slm_err_set(err, SLM_EIO, "%s: read error", path);
        return NULL;
    }
    b[n] = 0;
    if (len)
        *len = n;
    return b;
}

int cli_model_opt(const char *cmd, int opt, const char *arg, cli_model_opts *o)
{
    switch (opt) {
    case 'm': o->model = arg; return 1;
    case CLI_OPT_BUNDLE: o->bundle = arg; return 1;
    case CLI_OPT_STORE: o->store = arg; return 1;
    case CLI_OPT_TRUST:
        if (o->n_trust == 16)
            return cli_usage(cmd, "at most 16 --trust roots");
        o->trust[o->n_trust++] = arg;
        return 1;
    default: return 0;
    }
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

int cli_sampler_opt(const char *cmd, int opt, const char *arg, void *spv, int *seed_set)
{
    slm_sampler_params *sp = spv;
    double d;
    long long ll;
    switch (opt) {
    case CLI_OPT_TEMP:
        if (cli_parse_double(arg, &d) || d < 0)
            return cli_usage(cmd, "--temp wants a number >= 0, got '%s'", arg);
        sp->temp = (float)d;
        return 1;
    case CLI_OPT_TOPK:
        if (cli_parse_int(arg, 0, 1 << 30, &ll))
            return cli_usage(cmd, "--top-k wants an integer >= 0, got '%s'", arg);
        sp->top_k = (int)ll;
        return 1;
    case CLI_OPT_TOPP:
        if (cli_parse_double(arg, &d) || d <= 0 || d > 1)
            return cli_usage(cmd, "--top-p wants a number in (0, 1], got '%s'", arg);
        sp->top_p = (float)d;
        return 1;
    case CLI_OPT_MINP:
        if (cli_parse_double(arg, &d) || d < 0 || d > 1)
            return cli_usage(cmd, "--min-p wants a number in [0, 1], got '%s'", arg);
        sp->min_p = (float)d;
        return 1;
    case CLI_OPT_REP:
        if (cli_parse_double(arg, &d) || d <= 0)
            return cli_usage(cmd, "--repeat-penalty wants a number > 0, got '%s'", arg);
        sp->repeat_penalty = (float)d;
        return 1;
    case CLI_OPT_REPN:
        if (cli_parse_int(arg, 0, 1 << 20, &ll))
            return cli_usage(cmd, "--repeat-last-n wants an integer >= 0, got '%s'", arg);
        sp->repeat_last_n = (int)ll;
        return 1;
    case CLI_OPT_SEED: {
        char *end;
        unsigned long long v = strtoull(arg, &end, 10);
        if (!*arg || *end || *arg == '-')
            return cli_usage(cmd, "--seed wants a non-negative integer, got '%s'", arg);
        sp->seed = v;
        *seed_set = 1;
        return 1;
    }
    default:
        return 0;
    }
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
