/* tests/testutil.h — shared by every Criterion suite: where the models are,
 * scratch directories, and running the `slm` binary. */
#ifndef SLM_TESTUTIL_H
#define SLM_TESTUTIL_H

#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>

/* $SLM_MODELS or ../shared/models (relative to the repo root) + "/" + rel. Static buffer per call slot. */
const char *tu_model(const char *rel);
/* $SLM_CORPUS or ../shared/corpus + "/" + rel */
const char *tu_corpus(const char *rel);
/* $SLM_TESTDATA or tests/data (files committed with the tests) + "/" + rel */
const char *tu_data(const char *rel);
/* A fresh empty directory under $TMPDIR, removed by tu_rmtree. Returns a malloc'd path. */
char *tu_tmpdir(const char *tag);
void tu_rmtree(const char *path);
/* Path join into a malloc'd string. */
char *tu_path(const char *dir, const char *name);
/* Write bytes to a file (creates/truncates). 0 on success. */
int tu_write_file(const char *path, const void *data, size_t n);
/* Read a whole file (malloc'd, NUL-terminated); NULL on failure. */
char *tu_read_file(const char *path, size_t *n);
int tu_exists(const char *path);
/* Number of entries in dir other than . and .. */
int tu_count_entries(const char *dir);

/* Run `$SLM_BIN args...` (argv NULL-terminated, without the program), capture
 * stdout and stderr (malloc'd, may be NULL), return the exit status
 * (128+signal when killed). */
int tu_run_slm(char **out, char **err, const char *const *args);
/* *dst = s when dst is given, else free(s): an optional output of a run */
static inline void tu_hand(char **dst, char *s)
{
    if (dst)
        *dst = s;
    else
        free(s);
}
/* Same for any program (argv[0] is looked up in PATH). An oracle (a llama.cpp tool, a node script of
 * tests/interop) goes through the answer cache when $SLM_ORACLE_CACHE is set (interop.h). */
int tu_run(char **out, char **err, const char *const *argv);
/* tu_run without the cache */
int tu_run_uncached(char **out, char **err, const char *const *argv);
/* tu_run_slm with the arguments as a NULL-terminated list (out / err may be NULL: dropped). */
int tu_slmv(char **out, char **err, const char *a0, ...);
/* `slm ARGS...` must exit 0 (the test fails with its stderr otherwise). */
#define TU_SLM_OK(...)                                                                                          \
    do {                                                                                                        \
        char *e_ = NULL;                                                                                        \
        int rc_ = tu_slmv(NULL, &e_, __VA_ARGS__, NULL);                                                        \
        cr_assert_eq(rc_, 0, "slm -> %d: %s", rc_, e_ ? e_ : "");                                               \
        free(e_);                                                                                               \
    } while (0)
/* The slm binary under test ($SLM_BIN, default build/slm). */
const char *tu_slm_bin(void);
/* Factor for every wall-clock deadline of the tests (watchdogs, waits for a child): $SLM_TEST_TIME_SCALE
 * (>= 1, default 1; `make asan` sets it, sanitizers and a loaded machine are slower). Deadlines only
 * catch hangs; no test asserts a speed. */
double tu_time_scale(void);
/* Count lines of s (a trailing newline ends the last line). */
int tu_count_lines(const char *s);

/* Deterministic generator (splitmix64) so failures reproduce: set tu_rng_state, then draw. */
extern uint64_t tu_rng_state;
uint64_t tu_rng_next(void);
double tu_rng_unif(void);   /* [0, 1) */
float tu_rng_gauss(void);   /* standard normal (Box-Muller) */
/* A GPTQ problem with correlated input columns: X [T][n] a rank-R mix plus noise (every 17th
 * column louder), W [rows][n] small weights, H = X^T X (symmetric), imp[c] = H[c][c] / T; drawn
 * from gauss in that order (mix, X, W). */
void tu_gptq_problem(int T, int n, int rows, int R, float (*gauss)(void), float *X, float *W, float *H,
                     float *imp);
/* W [rows][n] quantized to `type` into buf (rows slm_row_bytes apart): gptq 0 by slm_quantize_rows
 * with the importance imp, 1 by slm_gptq_quantize on H (damping 0.01, blocks of 128, 2 threads);
 * Wq gets the rows dequantized. Returns the output error ||X (W - Wq)^T||^2 over the T rows of
 * X [T][n], or -1 if GPTQ failed. */
double tu_quant_output_error(uint32_t type, int gptq, int T, int n, int rows, const float *X, const float *W,
                             const float *H, const float *imp, unsigned char *buf, float *Wq);
/* ||X (W - Wq)^T||^2: X [T][n], W and Wq [rows][n] */
double tu_output_error(const float *X, int T, int n, const float *W, const float *Wq, int rows);
/* An x8 decode kernel f (slm_x8_fn) against the scalar row dot: f over one group, then all R / 8,
 * of the packed copy pk must write nothing past the groups and give each row r within 1e-5 of
 * the sum of |terms| of vec_dot(qw row r, qa) (rows rb bytes apart, dequantize gives the terms
 * with the float activations a; d0: N floats of scratch). NULL if so, else what failed
 * (a static buffer). */
typedef void (*tu_x8_fn)(int64_t n, int64_t ngroups, float *s, const void *packed, const void *y);
typedef void (*tu_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);
typedef void (*tu_dequant_fn)(const void *x, float *y, int64_t n);
const char *tu_x8_check(tu_x8_fn f, tu_vec_dot_fn vec_dot, tu_dequant_fn dequantize, int N, int R, const void *pk,
                        const uint8_t *qw, size_t rb, const float *a, const void *qa, float *d0);

/* GPTQ's grid round trip on one block bp of `type` whose dequantized values are y:
 * slm_qgrid_decode gives each element's a, b; its level is zero where a == 0, else the first c
 * in 0..qmax with a * lv(type, c, zero) + b == y exactly (lv NAN: no such level); scramble(type,
 * bp) (may be NULL) wipes what slm_qgrid_pack must write, then pack writes the levels back.
 * NULL if every step held, else what failed (a static buffer). *zero, *qmax (may be NULL): the
 * decode's. */
typedef float (*tu_level_fn)(uint32_t type, int c, int zero);
typedef void (*tu_scramble_fn)(uint32_t type, unsigned char *bp);
const char *tu_qgrid_repack(uint32_t type, unsigned char *bp, const float *y, tu_level_fn lv, tu_scramble_fn scramble,
                            int *zero, int *qmax);

#endif
