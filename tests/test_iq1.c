/* tests/test_iq1.c — IQ1_S and IQ1_M (libquant/iq1.c, iq1_grids.c): the grid against ggml's
 * source, the block layouts written out by hand, the quantizer's exact grid search, importance,
 * the imatrix requirement of `slm quantize`, and files exchanged with llama.cpp (perplexity
 * within 1 % both ways, sizes equal to llama-quantize's). SIMD kernels against scalar:
 * iquants::simd_matches_scalar and libquant::simd_matches_scalar; recipes:
 * iquants::recipes_match_llama_quantize (every i-quant recipe). */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "formats.h"
#include "interop.h"
#include "libquant.h"
#include "qimpl.h"
#include "iq1.h"
#include "testutil.h"

static uint64_t rng = 1;
static double unif(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (rng >> 11) * 0x1p-53;
}
static float gauss(void) { return (float)(sqrt(-2 * log(unif() + 1e-300)) * cos(6.283185307179586 * unif())); }

/* Every entry of ggml's iq1s_grid, read from llama.cpp's ggml-common.h, equals ours. */
Test(iq1, grid_equals_ggml)
{
    const char *path = oracle_llama_source("ggml/src/ggml-common.h");
    if (!path) return;
    size_t n = 0;
    char *src = tu_read_file(path, &n);
    cr_assert_not_null(src, "%s", path);
    char *p = strstr(src, "GGML_TABLE_BEGIN(uint64_t, iq1s_grid, NGRID_IQ1S)");
    cr_assert_not_null(p, "%s has no iq1s_grid table", path);
    char *end = strstr(p, "GGML_TABLE_END()");
    cr_assert_not_null(end);
    *end = 0;
    const uint64_t *grid = slm_iq1s_grid_get();
    int k = 0;
    for (char *q = strstr(p, "0x"); q; q = strstr(q, "0x")) {
        char *e;
        const unsigned long long v = strtoull(q, &e, 16);
        cr_assert_lt(k, IQ1_NGRID, "more than %d entries", IQ1_NGRID);
        cr_assert_eq(grid[k], (uint64_t)v, "entry %d: ours %016llx, ggml %016llx", k, (unsigned long long)grid[k], v);
        int8_t t[8];
        memcpy(t, &grid[k], 8);
        cr_assert_eq(slm_iq1s_grid_index(t), k, "index of entry %d", k);
        k++;
        q = e;
    }
    cr_assert_eq(k, IQ1_NGRID, "ggml's table has %d entries", k);
    free(src);
}

/* The layouts, written out from ggml-common.h's description: hand-made blocks dequantize to
 * d * (2 l + 1) * (grid + delta) at the documented bit positions. */
Test(iq1, dequant_known_bytes)
{
    const uint64_t *grid = slm_iq1s_grid_get();
    float y[256];
    /* IQ1_S: d = 0.5; sub-block 2: l = 5, delta -1/8, groups with indices 0x123, 0x7ff, 0x400, 0x0ab */
    block_iq1_s s;
    memset(&s, 0, sizeof s);
    s.d = slm_fp32_to_fp16(0.5f);
    const int idx[4] = { 0x123, 0x7ff, 0x400, 0x0ab };
    for (int k = 0; k < 4; k++) s.qs[8 + k] = (uint8_t)(idx[k] & 0xff);
    s.qh[2] = (uint16_t)(1 << 3 * 0 | 7 << 3 * 1 | 4 << 3 * 2 | 0 << 3 * 3 | 5 << 12 | 0x8000);
    slm_qtraits_get(SLM_T_IQ1_S)->dequantize_row(&s, y, 256);
    for (int e = 0; e < 256; e++) {
        const int ib = e / 32, k = e % 32 / 8, j = e % 8;
        float want;
        if (ib == 2) want = 0.5f * 11 * ((float)((const int8_t *)&grid[idx[k]])[j] - 0.125f);
        else want = 0.5f * 1 * ((float)((const int8_t *)&grid[0])[j] + 0.125f); /* index 0, l 0, +delta */
        cr_assert_eq(y[e], want, "iq1_s element %d: %g vs %g", e, y[e], want);
    }
    /* IQ1_M: d = 0.25 in the nibbles; sub-block 5: l = 3 (first 16), 6 (second 16); group 21 index
     * 0x2c1 delta -, group 22 index 0x5f0 delta +, group 23 index 0x012 delta - */
    block_iq1_m m;
    memset(&m, 0, sizeof m);
    const uint16_t dh = slm_fp32_to_fp16(0.25f);
    uint16_t sc[4] = { 0 };
    for (int k = 0; k < 4; k++) sc[k] = (uint16_t)(((dh >> 4 * k) & 0xf) << 12);
    sc[2] |= (uint16_t)(3 << 6 | 6 << 9); /* word 2 covers sub-blocks 4 and 5; 5 is the odd one */
    memcpy(m.scales, sc, 8);
    m.qs[21] = 0xc1, m.qs[22] = 0xf0, m.qs[23] = 0x12;
    m.qh[10] = (uint8_t)(0x2 << 4 | 0x80);  /* groups 20 (index 0, +), 21 (0x2c1, -) */
    m.qh[11] = (uint8_t)(0x5 | 0x0 << 4 | 0x80); /* groups 22 (0x5f0, +), 23 (0x012, -) */
    slm_qtraits_get(SLM_T_IQ1_M)->dequantize_row(&m, y, 256);
    for (int e = 0; e < 256; e++) {
        const int grp = e / 8, j = e % 8;
        int gi = 0;
        float dl = 0.25f, delta = 0.125f;
        if (grp == 20) dl = 0.25f * 7;
        if (grp == 21) gi = 0x2c1, dl = 0.25f * 7, delta = -0.125f;
        if (grp == 22) gi = 0x5f0, dl = 0.25f * 13;
        if (grp == 23) gi = 0x012, dl = 0.25f * 13, delta = -0.125f;
        const float want = dl * ((float)((const int8_t *)&grid[gi])[j] + delta);
        cr_assert_eq(y[e], want, "iq1_m element %d: %g vs %g", e, y[e], want);
    }
}

/* brute force: the least weighted error of 8 values over all 2048 points at scale s, shift delta */
static float brute(const uint64_t *grid, const float *x, const float *w, float s, float delta)
{
    float best = INFINITY;
    for (int g = 0; g < IQ1_NGRID; g++) {
        const int8_t *t = (const int8_t *)&grid[g];
        float e = 0;
        for (int j = 0; j < 8; j++) {
            const float d = x[j] - s * ((float)t[j] + delta);
            e += w[j] * d * d;
        }
        if (e < best) best = e;
    }
    return best;
}

/* The quantizer's grid points are the best at the scales it fitted: for each group, no grid
 * point (IQ1_M: with either delta) has a lower weighted error (the quantizer's weights:
 * imp * sqrt(2 mean x^2 + x^2)) at the group's scale. The stored d is the fitted one raised
 * by 1/8 (iq1.c's IQ1_SCALE_UP) and rounded to fp16, so the fitted scale is recovered
 * within fp16 rounding, and the errors compare within 0.5 %. */
Test(iq1, grid_search_is_exact)
{
    const uint64_t *grid = slm_iq1s_grid_get();
    enum { NB = 6 };
    float x[256 * NB], imp[256 * NB], y[256 * NB];
    rng = 5;
    for (int i = 0; i < 256 * NB; i++) {
        x[i] = gauss() * (unif() < 0.05 ? 4.f : 1.f);
        imp[i] = 0.05f + (float)unif() * (i % 7 == 0 ? 20.f : 1.f);
    }
    float wq[256 * NB];
    for (int b = 0; b < NB; b++) {
        double s2 = 0;
        for (int j = 0; j < 256; j++) s2 += (double)x[256 * b + j] * x[256 * b + j];
        s2 = 2 * s2 / 256;
        for (int j = 0; j < 256; j++) wq[256 * b + j] = imp[256 * b + j] * sqrtf((float)s2 + x[256 * b + j] * x[256 * b + j]);
    }
    int checked = 0, improved = 0;
    for (int type = 0; type < 2; type++) {
        const uint32_t T = type ? SLM_T_IQ1_M : SLM_T_IQ1_S;
        const slm_qtraits *q = slm_qtraits_get(T);
        unsigned char blk[64 * NB];
        q->quantize_row(x, blk, 256 * NB, imp);
        q->dequantize_row(blk, y, 256 * NB);
        for (int b = 0; b < NB; b++)
            for (int grp = 0; grp < 32; grp++) {
                const float *xg = x + 256 * b + 8 * grp, *wg = wq + 256 * b + 8 * grp;
                const float *yg = y + 256 * b + 8 * grp;
                float dl, delta;
                if (!type) {
                    const block_iq1_s *s = (const block_iq1_s *)blk + b;
                    const uint16_t h = s->qh[grp / 4];
                    dl = slm_h2f(s->d) * (float)(2 * ((h >> 12) & 7) + 1);
                    delta = h & 0x8000 ? -0.125f : 0.125f;
                } else {
                    const block_iq1_m *m = (const block_iq1_m *)blk + b;
                    uint16_t sc[4];
                    memcpy(sc, m->scales, 8);
                    const int ib = grp / 4, half = grp % 4 / 2;
                    dl = slm_h2f(slm_iq1m_d(m)) * (float)(2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3 * half)) & 7) + 1);
                    delta = m->qh[grp / 2] & (grp % 2 ? 0x80 : 0x08) ? -0.125f : 0.125f;
                }
                dl /= 1.125f;
                float ours = 0;
                for (int j = 0; j < 8; j++) {
                    const float r = xg[j] - yg[j] / 1.125f;
                    ours += wg[j] * r * r;
                }
                float best = brute(grid, xg, wg, dl, delta);
                if (type) best = fminf(best, brute(grid, xg, wg, dl, -delta));
                cr_assert(ours <= best * 1.005f + 1e-9f, "%s block %d group %d: error %g, best grid point %g",
                          q->name, b, grp, ours, best);
                improved += best < ours;
                checked++;
            }
    }
    cr_log_info("%d groups checked (%d with a better point within rounding)", checked, improved);
}

/* Importance: with heavily weighted columns the importance-weighted error (at the fitted
 * scale) is lower than the plain quantizer's. */
Test(iq1, importance_lowers_weighted_error)
{
    enum { N = 256 * 16 };
    float *x = malloc(N * 4), *imp = malloc(N * 4), *y = malloc(N * 4), *ones = malloc(N * 4);
    unsigned char *q = malloc(N);
    rng = 9;
    for (int i = 0; i < N; i++) {
        x[i] = gauss();
        imp[i] = i % 5 == 0 ? 50.f : 1.f; /* scattered: inside every group */
        ones[i] = 1.f;
    }
    for (int type = 0; type < 2; type++) {
        const slm_qtraits *t = slm_qtraits_get(type ? SLM_T_IQ1_M : SLM_T_IQ1_S);
        double e[2] = { 0, 0 };
        for (int k = 0; k < 2; k++) {
            t->quantize_row(x, q, N, k ? imp : ones);
            t->dequantize_row(q, y, N);
            for (int i = 0; i < N; i++) { /* at the fitted scale: the stored one is raised by 1/8 */
                const double r = x[i] - y[i] / 1.125;
                e[k] += imp[i] * r * r;
            }
        }
        cr_log_info("%s weighted error: plain %.4g, with importance %.4g", t->name, e[0], e[1]);
        cr_expect_lt(e[1], 0.8 * e[0], "%s: importance %.4g vs plain %.4g", t->name, e[1], e[0]);
    }
    free(x); free(imp); free(y); free(ones); free(q);
}

static void run_ok(const char *what, const char *const *argv, int slm)
{
    char *o = NULL, *e = NULL;
    int rc = slm ? tu_run_slm(&o, &e, argv) : tu_run(&o, &e, argv);
    cr_assert_eq(rc, 0, "%s: %s", what, e);
    free(o);
    free(e);
}

static long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) ? -1 : (long)st.st_size;
}

static double slm_ppl(const char *model)
{
    char *o = NULL, *e = NULL;
    const char *a[] = {"perplexity", "-m", model, "-f", tu_corpus("tinystories-eval.txt"), "-c", "128", "--chunks",
                       "8", "-t", "2", "--json", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, a), 0, "slm perplexity %s: %s", model, e);
    cJSON *j = cJSON_Parse(o);
    cr_assert_not_null(j, "%s", o);
    double v = cJSON_GetObjectItem(j, "ppl")->valuedouble;
    cJSON_Delete(j);
    free(o);
    free(e);
    return v;
}

/* `slm quantize` refuses IQ1_S / IQ1_M without importance data, as llama-quantize does,
 * writing nothing; with `slm imatrix`'s file, the files of both tools have the same size,
 * llama.cpp scores ours and we score llama-quantize's with the same perplexity within 1 %
 * (tests/interop/perplexity.mjs, -c 128, 8 chunks of the eval text). */
Test(iq1, files_agree_with_llamacpp, .timeout = 300)
{
    const char *lq = oracle_llama_tool("llama-quantize");
    if (!lq) return;
    char lqp[4096];
    snprintf(lqp, sizeof lqp, "%s", lq);
    const char *script = oracle_script("perplexity.mjs");
    if (!script) return;
    char *dir = tu_tmpdir("iq1ppl");
    char *f32 = tu_path(dir, "f32.gguf"), *imat = tu_path(dir, "imatrix.gguf"), *refused = tu_path(dir, "refused.gguf");
    const char *conv[] = {"convert", tu_model("stories-llama256"), "-o", f32, "--outtype", "f32", NULL};
    run_ok("slm convert", conv, 1);
    {
        char *o = NULL, *e = NULL;
        const char *q[] = {"quantize", f32, refused, "IQ1_S", NULL};
        const int rc = tu_run_slm(&o, &e, q);
        cr_assert_eq(rc, 3, "IQ1_S without --imatrix: exit %d (%s)", rc, e);
        cr_assert(e && strstr(e, "--imatrix"), "the error names --imatrix: %s", e);
        cr_assert_eq(file_size(refused), -1, "a refused quantize left %s", refused);
        free(o); free(e);
    }
    const char *im[] = {"imatrix", "-m", f32, "-f", tu_corpus("tinystories-calib.txt"), "-o", imat, "-c", "128",
                        "--chunks", "8", "-t", "2", NULL};
    run_ok("slm imatrix", im, 1);
    enum { NF = 4 };
    static const char *const names[2] = {"IQ1_S", "IQ1_M"};
    char *files[NF];
    const char *node[5 + NF + 1] = {"node", script, tu_corpus("tinystories-eval.txt"), "128", "8"};
    for (int k = 0; k < NF; k++) {
        const char *ty = names[k % 2];
        char fn[64];
        snprintf(fn, sizeof fn, "%s-%s.gguf", k < 2 ? "slm" : "llama", ty);
        files[k] = tu_path(dir, fn);
        node[5 + k] = files[k];
        if (k < 2) {
            const char *q[] = {"quantize", f32, files[k], ty, "--imatrix", imat, "-t", "2", NULL};
            run_ok("slm quantize", q, 1);
        } else {
            const char *q[] = {lqp, "--imatrix", imat, f32, files[k], ty, "2", NULL};
            run_ok("llama-quantize", q, 0);
            cr_assert_eq(file_size(files[k]), file_size(files[k - 2]), "%s: slm's file %ld bytes, llama-quantize's %ld", ty,
                         file_size(files[k - 2]), file_size(files[k]));
        }
    }
    node[5 + NF] = NULL;
    char *o = NULL, *e = NULL;
    cr_assert_eq(tu_run(&o, &e, node), 0, "llama.cpp could not score the files: %s", e);
    char *line = o;
    for (int k = 0; k < NF; k++) {
        char *nl = line ? strchr(line, '\n') : NULL;
        cr_assert_not_null(nl, "oracle printed %d lines, want %d: %s", k, NF, o);
        *nl = 0;
        cJSON *ref = cJSON_Parse(line);
        cr_assert_not_null(ref, "oracle output: %s", line);
        line = nl + 1;
        const double theirs = cJSON_GetObjectItem(ref, "ppl")->valuedouble, ours = slm_ppl(files[k]);
        cJSON_Delete(ref);
        const char *by = k < 2 ? "slm" : "llama-quantize";
        cr_log_info("%s file by %s: llama.cpp %.4f, slm %.4f (%+.3f %%)", names[k % 2], by, theirs, ours,
                    100 * (ours / theirs - 1));
        cr_assert(fabs(ours / theirs - 1) < 0.01, "%s (%s's file): slm PPL %.4f vs llama.cpp %.4f", names[k % 2], by,
                  ours, theirs);
        cr_assert(ours < 8.0, "%s (%s's file): PPL %.4f is not a working model", names[k % 2], by, ours);
        free(files[k]);
    }
    free(o);
    free(e);
    tu_rmtree(dir);
    free(f32); free(imat); free(refused); free(dir);
}

/* GPTQ's view of the blocks: slm_qgrid_decode gives each element's a, b (value a (L - 1) + b),
 * and slm_qgrid_pack of the levels read back from the grid rewrites the same indices (after
 * the index bits are scrambled), so a re-packed block dequantizes to the same values. */
static float iq1_level(uint32_t type, int c, int zero) { return (float)(c - zero); }

/* the grid indices: low bytes, and the high bits of IQ1_S's qh words / IQ1_M's qh nibbles */
static void iq1_scramble(uint32_t type, unsigned char *bp)
{
    if (type == SLM_T_IQ1_S) {
        block_iq1_s *s = (block_iq1_s *)bp;
        memset(s->qs, 0x5a, 32);
        for (int k = 0; k < 8; k++) s->qh[k] |= 0x0fff;
    } else {
        block_iq1_m *m = (block_iq1_m *)bp;
        memset(m->qs, 0x5a, 32);
        for (int k = 0; k < 16; k++) m->qh[k] |= 0x77;
    }
}

Test(iq1, qgrid_pack_reproduces_quantizer_blocks)
{
    enum { N = 1024 };
    float x[N], imp[N], y0[N], y1[N];
    rng = 21;
    for (int i = 0; i < N; i++) x[i] = gauss() * (i % 97 == 0 ? 8.0f : 1.0f), imp[i] = (float)unif() + 0.01f;
    for (int type = 0; type < 2; type++) {
        const slm_qtraits *q = slm_qtraits_get(type ? SLM_T_IQ1_M : SLM_T_IQ1_S);
        cr_assert(slm_qgrid_supported(q->type), "%s", q->name);
        unsigned char buf[256], rep[256];
        q->quantize_row(x, buf, N, imp);
        q->dequantize_row(buf, y0, N);
        memcpy(rep, buf, slm_row_bytes(q->type, N));
        for (int blk = 0; blk < N / 256; blk++) {
            int zero, qmax;
            const char *why = tu_qgrid_repack(q->type, rep + (size_t)blk * q->bytes, y0 + blk * 256, iq1_level,
                                              iq1_scramble, &zero, &qmax);
            cr_assert_null(why, "%s", why);
            cr_assert_eq(zero, 1);
            cr_assert_eq(qmax, 2);
        }
        q->dequantize_row(rep, y1, N);
        cr_expect(memcmp(y0, y1, sizeof y0) == 0, "%s: re-packed block dequantizes differently", q->name);
    }
}

/* GPTQ on the grid (every level it picks keeps its group of 8 on the grid) lowers the output
 * error ||X (W - Wq)^T||^2 against the type's importance-weighted quantizer, on activations
 * with correlated columns (a low-rank mix plus noise). */
Test(iq1, gptq_lowers_output_error, .timeout = 60)
{
    enum { T = 384, n = 512, rows = 16, R = 8 };
    float *X = malloc(sizeof(float) * T * n), *W = malloc(sizeof(float) * rows * n), *H = calloc(n * n, sizeof(float));
    float *Wq = malloc(sizeof(float) * rows * n), *imp = malloc(sizeof(float) * n);
    unsigned char *buf = malloc((size_t)rows * n);
    rng = 5;
    tu_gptq_problem(T, n, rows, R, gauss, X, W, H, imp);
    for (int type = 0; type < 2; type++) {
        const slm_qtraits *q = slm_qtraits_get(type ? SLM_T_IQ1_M : SLM_T_IQ1_S);
        double e[2];
        for (int g = 0; g < 2; g++) {
            e[g] = tu_quant_output_error(q->type, g, T, n, rows, X, W, H, imp, buf, Wq);
            cr_assert_geq(e[g], 0, "%s: GPTQ failed", q->name);
        }
        cr_log_info("%s: output error GPTQ %.4g, quantizer %.4g (%.3fx)", q->name, e[1], e[0], e[1] / e[0]);
        cr_expect(e[1] < 0.9 * e[0], "%s: GPTQ output error %.4g vs quantizer %.4g", q->name, e[1], e[0]);
    }
    free(X); free(W); free(H); free(Wq); free(imp); free(buf);
}
