/* tests/testutil.c — see testutil.h */
#include <stdarg.h>
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <ftw.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "interop.h"
#include "libquant.h"

extern char **environ;

/* The test's name for the CPU log (below): criterion_current_test is only valid while the test runs,
 * so the helpers every heavy test calls take it down on first use. */
static char cpu_test_name[256];
static void note_test(void)
{
    if (!cpu_test_name[0] && criterion_current_test && criterion_current_suite)
        snprintf(cpu_test_name, sizeof cpu_test_name, "%s::%s", criterion_current_suite->name,
                 criterion_current_test->name);
}

static const char *root_rel(const char *env, const char *deflt, const char *rel)
{
    note_test();
    static __thread char buf[8][4096];
    static __thread int slot;
    char *b = buf[slot++ & 7];
    const char *base = getenv(env);
    if (!base || !*base)
        base = deflt;
    snprintf(b, 4096, "%s/%s", base, rel);
    return b;
}

const char *tu_model(const char *rel) { return root_rel("SLM_MODELS", "../shared/models", rel); }
const char *tu_corpus(const char *rel) { return root_rel("SLM_CORPUS", "../shared/corpus", rel); }
const char *tu_data(const char *rel) { return root_rel("SLM_TESTDATA", "tests/data", rel); }

double tu_time_scale(void)
{
    const char *e = getenv("SLM_TEST_TIME_SCALE");
    double f = e && *e ? strtod(e, NULL) : 1.0;
    return f >= 1.0 && f <= 1000.0 ? f : 1.0;
}

char *tu_tmpdir(const char *tag)
{
    note_test();
    const char *t = getenv("TMPDIR");
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/slmtest-%s-XXXXXX", t && *t ? t : "/tmp", tag);
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

void tu_rmtree(const char *path)
{
    if (path)
        nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int tu_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

char *tu_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *b = malloc(cap + 1);
    size_t r;
    while ((r = fread(b + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            cap *= 2;
            b = realloc(b, cap + 1);
        }
    }
    fclose(f);
    b[len] = 0;
    if (n)
        *n = len;
    return b;
}

int tu_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int tu_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

const char *tu_slm_bin(void)
{
    const char *b = getenv("SLM_BIN");
    return b && *b ? b : "build/slm";
}

static void drain(int fd, char **buf, size_t *len, size_t *cap)
{
    char tmp[65536];
    ssize_t r = read(fd, tmp, sizeof tmp);
    if (r <= 0)
        return;
    if (*len + (size_t)r + 1 > *cap) {
        *cap = (*len + r + 1) * 2;
        *buf = realloc(*buf, *cap);
    }
    memcpy(*buf + *len, tmp, r);
    *len += r;
    (*buf)[*len] = 0;
}

/* Per-test CPU accounting ($SLM_TEST_CPU_LOG, docs/ci.md): the CPU seconds of the children each test
 * ran, by kind (our slm binary, an oracle: node or a llama.cpp tool, anything else), and of the test
 * process itself, appended as one line per test when its worker process exits. */
static double cpu_kind[3];
static double tv_s(struct timeval t) { return (double)t.tv_sec + (double)t.tv_usec / 1e6; }
static int is_oracle_cmd(const char *const *argv)
{
    const char *bin = getenv("SLM_LLAMA_BIN");
    const char *a0 = argv[0];
    if (!strcmp(a0, "node") || !strcmp(a0, "python3"))
        return 1;
    return bin && *bin && !strncmp(a0, bin, strlen(bin));
}
static void cpu_account(const char *const *argv, const struct rusage *ru)
{
    int k = !strcmp(argv[0], tu_slm_bin()) ? 0 : is_oracle_cmd(argv) ? 1 : 2;
    cpu_kind[k] += tv_s(ru->ru_utime) + tv_s(ru->ru_stime);
}
__attribute__((destructor)) static void cpu_report(void)
{
    const char *log = getenv("SLM_TEST_CPU_LOG");
    if (!log || !*log || !criterion_current_test)
        return;
    if (!cpu_test_name[0]) /* a test that called none of the helpers */
        snprintf(cpu_test_name, sizeof cpu_test_name, "?::pid%ld", (long)getpid());
    struct rusage self, ch;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &ch);
    FILE *f = fopen(log, "a");
    if (!f)
        return;
    /* suite::test self children slm oracle other (CPU seconds) */
    fprintf(f, "%s %.2f %.2f %.2f %.2f %.2f\n", cpu_test_name, tv_s(self.ru_utime) + tv_s(self.ru_stime), tv_s(ch.ru_utime) + tv_s(ch.ru_stime), cpu_kind[0],
            cpu_kind[1], cpu_kind[2]);
    fclose(f);
}

int tu_run_uncached(char **out, char **err, const char *const *argv)
{
    note_test();
    int po[2], pe[2];
    if (pipe(po) || pipe(pe))
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    posix_spawn_file_actions_addclose(&fa, po[0]);
    posix_spawn_file_actions_addclose(&fa, pe[0]);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(po[1]);
    close(pe[1]);
    if (rc) {
        close(po[0]);
        close(pe[0]);
        return -1;
    }
    char *ob = calloc(1, 1), *eb = calloc(1, 1);
    size_t ol = 0, oc = 1, el = 0, ec = 1;
    struct pollfd p[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_n = 2;
    while (open_n > 0) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            size_t before = i ? el : ol;
            if (i)
                drain(p[i].fd, &eb, &el, &ec);
            else
                drain(p[i].fd, &ob, &ol, &oc);
            if ((i ? el : ol) == before) {
                close(p[i].fd);
                p[i].fd = -1;
                open_n--;
            }
        }
    }
    int st;
    struct rusage ru = {0};
    while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR)
        ;
    cpu_account(argv, &ru);
    if (out)
        *out = ob;
    else
        free(ob);
    if (err)
        *err = eb;
    else
        free(eb);
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

int tu_run(char **out, char **err, const char *const *argv)
{
    return oracle_cache_dir() ? oracle_cached_run(out, err, argv) : tu_run_uncached(out, err, argv);
}

int tu_run_slm(char **out, char **err, const char *const *args)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = tu_slm_bin();
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return tu_run(out, err, argv);
}

int tu_count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        if (*s == '\n')
            n++;
    return n;
}

int tu_slmv(char **out, char **err, const char *a0, ...)
{
    const char *args[64];
    int n = 0;
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && n < 63; a = va_arg(ap, const char *))
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    char *o = NULL, *e = NULL;
    int rc = tu_run_slm(&o, &e, args);
    tu_hand(out, o);
    tu_hand(err, e);
    return rc;
}

uint64_t tu_rng_state;

uint64_t tu_rng_next(void)
{
    uint64_t z = (tu_rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double tu_rng_unif(void) { return (tu_rng_next() >> 11) * 0x1p-53; }

float tu_rng_gauss(void)
{
    double u1 = tu_rng_unif(), u2 = tu_rng_unif();
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
}

void tu_gptq_problem(int T, int n, int rows, int R, float (*gauss)(void), float *X, float *W, float *H,
                     float *imp)
{
    float *mix = malloc(sizeof(float) * (size_t)R * n), z[64];
    if (!mix || R > 64) abort();
    for (int i = 0; i < R * n; i++) mix[i] = gauss();
    for (int t = 0; t < T; t++) {
        for (int r = 0; r < R; r++) z[r] = gauss();
        for (int c = 0; c < n; c++) {
            float v = 0.3f * gauss() * (c % 17 == 0 ? 4.0f : 1.0f);
            for (int r = 0; r < R; r++) v += z[r] * mix[r * n + c];
            X[(size_t)t * n + c] = v;
        }
    }
    for (int i = 0; i < rows * n; i++) W[i] = 0.05f * gauss();
    slm_gptq_accumulate(H, X, T, n, 2);
    slm_gptq_symmetrize(H, n);
    for (int c = 0; c < n; c++) imp[c] = H[c * n + c] / T;
    free(mix);
}

const char *tu_x8_check(tu_x8_fn f, tu_vec_dot_fn vec_dot, tu_dequant_fn dequantize, int N, int R, const void *pk,
                        const uint8_t *qw, size_t rb, const float *a, const void *qa, float *d0)
{
    static char why[200];
    float out[R + 8];
    for (int ng = 1; ng <= R / 8; ng += R / 8 > 1 ? R / 8 - 1 : 1) { /* one group, then all */
        for (int i = 0; i < R + 8; i++) out[i] = 12345.f;
        f(N, ng, out, pk, qa);
        for (int i = 8 * ng; i < R + 8; i++)
            if (out[i] != 12345.f) {
                snprintf(why, sizeof why, "written past the groups (%d groups, index %d)", ng, i);
                return why;
            }
        for (int r = 0; r < 8 * ng; r++) {
            float want;
            vec_dot(N, &want, qw + (size_t)r * rb, qa);
            dequantize(qw + (size_t)r * rb, d0, N);
            double mag = 0;
            for (int i = 0; i < N; i++) mag += fabs((double)d0[i] * a[i]);
            if (!isfinite(out[r]) || fabs((double)out[r] - want) > 1e-5 * mag + 1e-30) {
                snprintf(why, sizeof why, "row %d: %.9g vs %.9g (mag %g)", r, out[r], want, mag);
                return why;
            }
        }
    }
    return NULL;
}

double tu_quant_output_error(uint32_t type, int gptq, int T, int n, int rows, const float *X, const float *W,
                             const float *H, const float *imp, unsigned char *buf, float *Wq)
{
    const slm_qtraits *q = slm_qtraits_get(type);
    const size_t rb = slm_row_bytes(type, n);
    if (gptq) {
        slm_gptq_params p = {0.01f, 128, 0};
        if (slm_gptq_quantize(type, W, rows, n, H, NULL, &p, 2, buf) != 0)
            return -1;
    } else {
        slm_quantize_rows(type, W, buf, rows, n, imp);
    }
    for (int r = 0; r < rows; r++) q->dequantize_row(buf + r * rb, Wq + (size_t)r * n, n);
    return tu_output_error(X, T, n, W, Wq, rows);
}

double tu_output_error(const float *X, int T, int n, const float *W, const float *Wq, int rows)
{
    double e = 0;
    for (int t = 0; t < T; t++)
        for (int r = 0; r < rows; r++) {
            double d = 0;
            for (int c = 0; c < n; c++) d += (double)X[(size_t)t * n + c] * (W[(size_t)r * n + c] - Wq[(size_t)r * n + c]);
            e += d * d;
        }
    return e;
}

const char *tu_qgrid_repack(uint32_t type, unsigned char *bp, const float *y, tu_level_fn lv, tu_scramble_fn scramble,
                            int *zero, int *qmax)
{
    static char why[200];
    const slm_qtraits *q = slm_qtraits_get(type);
    float a[256], b[256];
    uint8_t L[256];
    int z = 0, qm = 0;
    const int len = slm_qgrid_decode(type, bp, a, b, &z, &qm);
    if (zero) *zero = z;
    if (qmax) *qmax = qm;
    if (len != q->blck) {
        snprintf(why, sizeof why, "%s: decode gave %d elements, not %d", q->name, len, q->blck);
        return why;
    }
    for (int j = 0; j < len; j++) {
        int l = a[j] == 0 ? z : -1;
        for (int c = 0; c <= qm && l < 0; c++)
            if (a[j] * lv(type, c, z) + b[j] == y[j]) l = c;
        if (l < 0) {
            snprintf(why, sizeof why, "%s: element %d, %g, is on no level (a %g, b %g)", q->name, j, y[j], a[j], b[j]);
            return why;
        }
        L[j] = (uint8_t)l;
    }
    if (scramble) scramble(type, bp);
    if (slm_qgrid_pack(type, bp, L) != 0) {
        snprintf(why, sizeof why, "%s: slm_qgrid_pack refused the levels read back", q->name);
        return why;
    }
    return NULL;
}
