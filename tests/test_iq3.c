/* tests/test_iq3.c — IQ3_XXS and IQ3_S (issue 19): traits, ggml's grids and sign tables
 * (read from llama.cpp's ggml-common.h), ggml's decoding written out here from its
 * definition, every kernel set against scalar, quantizer properties; oracle: llama.cpp's
 * perplexity on our files and ours on its files agree, KLD below llama-quantize's with the
 * same imatrix, recipes (IQ3_S, IQ3_M, IQ3_XS) type by type and file size equal to
 * llama-quantize's, and the refusal without an imatrix where llama-quantize refuses. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "formats.h"
#include "interop.h"
#include "libquant.h"
#include "testutil.h"

enum { T_IQ3_XXS = 18, T_IQ3_S = 21 };
static const uint32_t IQ3T[] = { T_IQ3_XXS, T_IQ3_S };

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* ---- ggml's tables, parsed from llama.cpp's ggml-common.h ---- */

static char *g_common; /* the header's text */

static const char *common_h(void)
{
    if (g_common) return g_common;
    const char *bin = getenv("SLM_LLAMA_BIN");
    char p[4096];
    snprintf(p, sizeof p, "%s/../../ggml/src/ggml-common.h", bin ? bin : "/nonexistent");
    g_common = tu_read_file(p, NULL);
    if (!g_common) oracle_missing("llama.cpp source: ggml/src/ggml-common.h (beside $SLM_LLAMA_BIN)");
    return g_common;
}

/* the n numbers of table `name` (GGML_TABLE_BEGIN(type, name, n) ... GGML_TABLE_END) */
static void table(const char *name, uint64_t *v, int n)
{
    const char *s = common_h();
    char key[128];
    snprintf(key, sizeof key, ", %s, %d)", name, n);
    const char *b = strstr(s, key);
    cr_assert_not_null(b, "ggml-common.h has no table %s", name);
    b += strlen(key);
    const char *e = strstr(b, "GGML_TABLE_END");
    cr_assert_not_null(e);
    int k = 0;
    while (b < e && k <= n) {
        if (isdigit((unsigned char)*b)) {
            char *end;
            v[k++] = strtoull(b, &end, 0);
            b = end;
        } else {
            b++;
        }
    }
    cr_assert_eq(k, n, "%s: %d numbers, want %d", name, k, n);
}

static uint32_t g_xxs[256], g_s[512];
static uint8_t g_ksigns[128], g_kmask[8];

static void load_tables(void)
{
    uint64_t v[512];
    table("iq3xxs_grid", v, 256);
    for (int i = 0; i < 256; i++) g_xxs[i] = (uint32_t)v[i];
    table("iq3s_grid", v, 512);
    for (int i = 0; i < 512; i++) g_s[i] = (uint32_t)v[i];
    table("ksigns_iq2xs", v, 128);
    for (int i = 0; i < 128; i++) g_ksigns[i] = (uint8_t)v[i];
    table("kmask_iq2xs", v, 8);
    for (int i = 0; i < 8; i++) g_kmask[i] = (uint8_t)v[i];
}

/* ggml's decoding (dequantize_row_iq3_xxs / _iq3_s), written from the format definition */
static void ref_dequant(uint32_t type, const unsigned char *b, float *y)
{
    float d;
    {
        uint16_t h;
        memcpy(&h, b, 2);
        d = slm_h2f(h);
    }
    if (type == T_IQ3_XXS) {
        const unsigned char *qs = b + 2, *ss = b + 2 + 64;
        for (int g = 0; g < 8; g++) {
            uint32_t aux = (uint32_t)ss[4 * g] | (uint32_t)ss[4 * g + 1] << 8 | (uint32_t)ss[4 * g + 2] << 16 |
                           (uint32_t)ss[4 * g + 3] << 24;
            const float db = d * (0.5f + (float)(aux >> 28)) * 0.5f;
            for (int l = 0; l < 4; l++) {
                const uint8_t sg = g_ksigns[(aux >> 7 * l) & 127];
                for (int j = 0; j < 8; j++) {
                    const uint32_t gp = g_xxs[qs[8 * g + 2 * l + j / 4]];
                    const float q = (float)((gp >> 8 * (j % 4)) & 0xff);
                    y[32 * g + 8 * l + j] = db * q * (sg & g_kmask[j] ? -1.f : 1.f);
                }
            }
        }
    } else {
        const unsigned char *qs = b + 2, *qh = b + 66, *sg = b + 74, *sc = b + 106;
        for (int g = 0; g < 8; g++) {
            const float db = d * (float)(1 + 2 * ((sc[g / 2] >> 4 * (g % 2)) & 0xf));
            for (int v = 0; v < 8; v++) {
                const uint32_t gp = g_s[qs[8 * g + v] | ((qh[g] >> v) & 1) << 8];
                for (int k = 0; k < 4; k++) {
                    const int e = 32 * g + 4 * v + k;
                    y[e] = db * (float)((gp >> 8 * k) & 0xff) * (sg[e / 8] & g_kmask[e % 8] ? -1.f : 1.f);
                }
            }
        }
    }
}

Test(iq3, traits_rows)
{
    const struct { const char *name; uint32_t type; size_t bytes; } want[] = {
        { "iq3_xxs", T_IQ3_XXS, 98 }, { "IQ3_S", T_IQ3_S, 110 },
    };
    for (size_t i = 0; i < 2; i++) {
        const slm_qtraits *t = slm_qtraits_by_name(want[i].name);
        cr_assert_not_null(t, "%s", want[i].name);
        cr_assert_eq(t->type, want[i].type);
        cr_assert_eq(t->blck, 256);
        cr_assert_eq(t->bytes, want[i].bytes);
        cr_assert_eq(t->vec_dot_type, 15); /* Q8_K */
        cr_assert(t->is_quant);
        cr_assert_eq(slm_type_block_size(t->type), t->blck);
        cr_assert_eq(slm_type_block_bytes(t->type), t->bytes);
    }
}

/* Every grid entry and sign code, through our dequantizer, equals ggml-common.h's. */
Test(iq3, grids_equal_ggml)
{
    load_tables();
    for (int j = 0; j < 8; j++) cr_assert_eq(g_kmask[j], 1u << j);
    unsigned char b[110];
    float y[256];
    /* IQ3_XXS: d = 1, s = 0 (multiplier 0.25): y[0..3] = grid[i] / 4, signs none */
    for (int i = 0; i < 256; i++) {
        memset(b, 0, sizeof b);
        b[1] = 0x3c;
        b[2] = (unsigned char)i;
        slm_qtraits_get(T_IQ3_XXS)->dequantize_row(b, y, 256);
        for (int k = 0; k < 4; k++)
            cr_assert_eq(y[k], 0.25f * (float)((g_xxs[i] >> 8 * k) & 0xff), "iq3xxs_grid[%d] byte %d", i, k);
    }
    /* the sign codes: qs all index 0 (4, 4, 4, 4), code c in bits 0..6 of group 0's word */
    for (int c = 0; c < 128; c++) {
        memset(b, 0, sizeof b);
        b[1] = 0x3c;
        b[66] = (unsigned char)c;
        slm_qtraits_get(T_IQ3_XXS)->dequantize_row(b, y, 256);
        for (int j = 0; j < 8; j++)
            cr_assert_eq(y[j], (g_ksigns[c] >> j & 1) ? -1.f : 1.f, "ksigns_iq2xs[%d] bit %d", c, j);
    }
    /* IQ3_S: d = 1, s = 0 (multiplier 1): 9-bit index from qs[0] and bit 0 of qh[0] */
    for (int i = 0; i < 512; i++) {
        memset(b, 0, sizeof b);
        b[1] = 0x3c;
        b[2] = (unsigned char)(i & 0xff);
        b[66] = (unsigned char)(i >> 8);
        slm_qtraits_get(T_IQ3_S)->dequantize_row(b, y, 256);
        for (int k = 0; k < 4; k++)
            cr_assert_eq(y[k], (float)((g_s[i] >> 8 * k) & 0xff), "iq3s_grid[%d] byte %d", i, k);
    }
}

/* Random blocks: our dequantizer equals ggml's decoding bit for bit; the scalar vec_dot is
 * the dot of the dequantized weights with Q8_K's; every SIMD set equals scalar. */
Test(iq3, decode_and_kernels_match_ggml)
{
    load_tables();
    enum { N = 256 * 8 };
    float *y0 = malloc(N * 4), *y1 = malloc(N * 4), *a = malloc(N * 4), *ad = malloc(N * 4), *x = malloc(N * 4);
    unsigned char *q = malloc(N), *qa = malloc(N * 2);
    tu_rng_state = 99;
    int checked = 0;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < N; i++) { a[i] = tu_rng_gauss(); x[i] = tu_rng_gauss() * (round == 1 && i % 7 == 0 ? 50.f : 1.f); }
        for (size_t k = 0; k < 2; k++) {
            const slm_qtraits *t = slm_qtraits_get(IQ3T[k]);
            const size_t rb = slm_row_bytes(t->type, N);
            if (round < 2) {
                slm_quantize_rows(t->type, x, q, 1, N, NULL);
            } else {
                for (size_t i = 0; i < rb; i++) q[i] = (unsigned char)tu_rng_next();
                for (size_t bl = 0; bl < rb / t->bytes; bl++) { /* finite scales */
                    unsigned char *h = q + bl * t->bytes;
                    if ((h[1] & 0x7c) == 0x7c) h[1] &= 0xbf;
                }
            }
            slm_qtraits ks, kk;
            const slm_qtraits *s = slm_qtraits_kernel(t->type, SLM_KERNEL_SCALAR, &ks);
            s->dequantize_row(q, y0, N);
            for (size_t bl = 0; bl < N / 256; bl++) {
                ref_dequant(t->type, q + bl * t->bytes, y1);
                for (int i = 0; i < 256; i++)
                    cr_assert_eq(f2u(y0[256 * bl + i]), f2u(y1[i]), "%s round %d block %zu i %d: %g vs ggml %g", t->name,
                                 round, bl, i, y0[256 * bl + i], y1[i]);
            }
            cr_assert_eq(slm_quantize_act_kernel(15, SLM_KERNEL_SCALAR, a, qa, N), 0);
            float ds;
            s->vec_dot(N, &ds, q, qa);
            slm_qtraits_get(15)->dequantize_row(qa, ad, N);
            double ref = 0, mag = 0;
            for (int i = 0; i < N; i++) { ref += (double)y0[i] * ad[i]; mag += fabs((double)y0[i] * ad[i]); }
            cr_assert(fabs(ref - ds) <= 1e-5 * mag + 1e-30, "%s scalar vec_dot %.9g vs %.9g", t->name, ds, ref);
            for (int kern = 1; kern < SLM_KERNEL_COUNT; kern++) {
                const slm_qtraits *v = slm_qtraits_kernel(t->type, kern, &kk);
                if (!v) continue;
                v->dequantize_row(q, y1, N);
                for (int i = 0; i < N; i++)
                    cr_assert_eq(f2u(y0[i]), f2u(y1[i]), "%s %s dequant i=%d", t->name, slm_kernel_name(kern), i);
                float dv;
                v->vec_dot(N, &dv, q, qa);
                cr_assert(fabs((double)dv - ds) <= 1e-5 * mag + 1e-30, "%s %s vec_dot %.9g vs %.9g", t->name,
                          slm_kernel_name(kern), dv, ds);
                checked++;
            }
        }
    }
    cr_log_info("%d kernel comparisons", checked);
    free(y0); free(y1); free(a); free(ad); free(x); free(q); free(qa);
}

/* Importance: heavily weighted columns come out more accurate; zero, constant, spikes,
 * huge and tiny blocks give finite values, zero stays zero; IQ3_XXS keeps an even number
 * of negatives per octet (the format cannot hold more), yet signs follow the weights. */
Test(iq3, quantizer_properties)
{
    enum { N = 256 * 16 };
    float *x = malloc(N * 4), *imp = malloc(N * 4), *y = malloc(N * 4);
    unsigned char *q = malloc(N);
    tu_rng_state = 11;
    for (int i = 0; i < N; i++) { x[i] = tu_rng_gauss(); imp[i] = (i % 7 == 0) ? 50.f : 1.f; }
    for (size_t k = 0; k < 2; k++) {
        const slm_qtraits *t = slm_qtraits_get(IQ3T[k]);
        double e[2], rel = 0, sx = 0;
        for (int u = 0; u < 2; u++) {
            slm_quantize_rows(t->type, x, q, 1, N, u ? imp : NULL);
            t->dequantize_row(q, y, N);
            e[u] = 0;
            for (int i = 0; i < N; i++) e[u] += imp[i] * ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
            if (!u)
                for (int i = 0; i < N; i++) { rel += ((double)x[i] - y[i]) * ((double)x[i] - y[i]); sx += (double)x[i] * x[i]; }
        }
        cr_log_info("%s: relative squared error %.4f; weighted error with imp %g, without %g", t->name, rel / sx, e[1], e[0]);
        cr_expect(e[1] < 0.9 * e[0], "%s: weighted error with imp %g, without %g", t->name, e[1], e[0]);
        /* a 3-bit grid on Gaussian weights: about 4 % (XXS) / 3 % (S) of the energy left */
        cr_expect(rel / sx < (t->type == T_IQ3_XXS ? 0.06 : 0.045), "%s: relative error %g", t->name, rel / sx);
    }
    float xa[512], ya[512];
    unsigned char qb[512];
    for (int c = 0; c < 6; c++) {
        for (int i = 0; i < 512; i++) {
            switch (c) {
            case 0: xa[i] = 0; break;
            case 1: xa[i] = 0.75f; break;
            case 2: xa[i] = i == 77 ? 1000.f : 0.f; break;
            case 3: xa[i] = (i & 1 ? -1 : 1) * 60000.f * (float)(i % 5) / 4; break;
            case 4: xa[i] = (i % 3 - 1) * 1e-7f; break;
            case 5: xa[i] = i < 256 ? 0.f : -3.f + (float)(i % 16) * 0.01f; break;
            }
        }
        for (size_t k = 0; k < 2; k++) {
            const slm_qtraits *t = slm_qtraits_get(IQ3T[k]);
            slm_quantize_rows(t->type, xa, qb, 1, 512, NULL);
            t->dequantize_row(qb, ya, 512);
            for (int i = 0; i < 512; i++) cr_assert(isfinite(ya[i]), "%s case %d i %d", t->name, c, i);
            if (c == 0 || c == 5)
                for (int i = 0; i < (c ? 256 : 512); i++) cr_assert_eq(ya[i], 0.f, "%s zero block", t->name);
            if (c == 1) /* a constant block: one grid point, within the fp16 / 4-bit scale steps */
                for (int i = 0; i < 512; i++) cr_assert(fabsf(ya[i] - 0.75f) < 0.75f * 0.04f, "%s constant: %g", t->name, ya[i]);
            if (c == 2) cr_assert(fabsf(ya[77] - 1000.f) < 1000.f * 0.04f, "%s spike: %g", t->name, ya[77]);
        }
    }
    free(x); free(imp); free(y); free(q);
}

/* ---- against llama.cpp ------------------------------------------------------------------ */

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

static cJSON *slm_ppl(const char *model, const char *kld_base)
{
    char *o = NULL, *e = NULL;
    const char *a[] = {"perplexity", "-m", model, "-f", tu_corpus("tinystories-eval.txt"), "-c", "128", "--chunks", "8",
                       "-t", "2", "--json", "--kl-divergence-base", kld_base, kld_base ? "--kl-divergence" : NULL, NULL};
    if (!kld_base) a[12] = NULL;
    cr_assert_eq(tu_run_slm(&o, &e, a), 0, "slm perplexity %s: %s", model, e);
    cJSON *j = cJSON_Parse(o);
    cr_assert_not_null(j, "%s", o);
    free(o);
    free(e);
    return j;
}

/* stories-llama256, F32, imatrix by `slm imatrix` (16 chunks of 128 of the calibration text),
 * IQ3_XXS and IQ3_S with --pure by `slm quantize` and by `llama-quantize` (the same imatrix
 * file): llama.cpp (tests/interop/perplexity.mjs) and `slm perplexity` agree within 1 % on
 * all four files (-c 128, 8 chunks of the eval text), sizes are equal, and our mean KLD
 * against F32 is at most llama-quantize's. */
Test(iq3, perplexity_agrees_with_llamacpp, .timeout = 300)
{
    const char *lq = oracle_llama_tool("llama-quantize");
    if (!lq) return;
    char lqp[4096];
    snprintf(lqp, sizeof lqp, "%s", lq);
    const char *script = oracle_script("perplexity.mjs");
    if (!script) return;
    char *dir = tu_tmpdir("iq3ppl"), *f32 = tu_path(dir, "f32.gguf"), *imat = tu_path(dir, "imatrix.gguf"),
         *base = tu_path(dir, "base.kld");
    const char *conv[] = {"convert", tu_model("stories-llama256"), "-o", f32, "--outtype", "f32", NULL};
    run_ok("slm convert", conv, 1);
    const char *im[] = {"imatrix", "-m", f32, "-f", tu_corpus("tinystories-calib.txt"), "-o", imat, "-c", "128",
                        "--chunks", "16", "-t", "2", NULL};
    run_ok("slm imatrix", im, 1);
    {
        char *o = NULL, *e = NULL;
        const char *a[] = {"perplexity", "-m", f32, "-f", tu_corpus("tinystories-eval.txt"), "-c", "128", "--chunks",
                           "8", "-t", "2", "--kl-divergence-base", base, NULL};
        cr_assert_eq(tu_run_slm(&o, &e, a), 0, "%s", e);
        free(o); free(e);
    }
    enum { NF = 4 };
    static const char *const names[NF] = {"IQ3_XXS", "IQ3_S", "IQ3_XXS", "IQ3_S"};
    char *files[NF];
    const char *node[5 + NF + 1] = {"node", script, tu_corpus("tinystories-eval.txt"), "128", "8"};
    for (int k = 0; k < NF; k++) {
        char fn[64];
        snprintf(fn, sizeof fn, "%s-%s.gguf", k < 2 ? "slm" : "llama", names[k]);
        files[k] = tu_path(dir, fn);
        node[5 + k] = files[k];
        if (k < 2) {
            const char *q[] = {"quantize", f32, files[k], names[k], "--pure", "--imatrix", imat, "-t", "2", NULL};
            run_ok("slm quantize", q, 1);
        } else {
            const char *q[] = {lqp, "--pure", "--imatrix", imat, f32, files[k], names[k], "2", NULL};
            run_ok("llama-quantize", q, 0);
        }
    }
    node[5 + NF] = NULL;
    char *o = NULL, *e = NULL;
    cr_assert_eq(tu_run(&o, &e, node), 0, "llama.cpp could not score the files: %s", e);
    double kld[NF];
    char *line = o;
    for (int k = 0; k < NF; k++) {
        char *nl = line ? strchr(line, '\n') : NULL;
        cr_assert_not_null(nl, "oracle printed %d lines, want %d: %s", k, NF, o);
        *nl = 0;
        cJSON *ref = cJSON_Parse(line);
        cr_assert_not_null(ref, "oracle output: %s", line);
        line = nl + 1;
        const double theirs = cJSON_GetObjectItem(ref, "ppl")->valuedouble;
        cJSON_Delete(ref);
        cJSON *j = slm_ppl(files[k], base);
        const double ours = cJSON_GetObjectItem(j, "ppl")->valuedouble;
        kld[k] = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "kld"), "mean")->valuedouble;
        cJSON_Delete(j);
        const char *by = k < 2 ? "slm" : "llama-quantize";
        cr_log_info("%s file by %s: llama.cpp PPL %.4f, slm %.4f (%+.3f %%), KLD %.6f", names[k], by, theirs, ours,
                    100 * (ours / theirs - 1), kld[k]);
        cr_assert(fabs(ours / theirs - 1) < 0.01, "%s (%s's file): slm PPL %.4f vs llama.cpp %.4f", names[k], by, ours,
                  theirs);
    }
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(file_size(files[k]), file_size(files[k + 2]), "%s: %ld bytes, llama-quantize %ld", names[k],
                     file_size(files[k]), file_size(files[k + 2]));
        cr_expect(kld[k] <= kld[k + 2], "%s: KLD %.6f, llama-quantize's %.6f (same imatrix)", names[k], kld[k], kld[k + 2]);
    }
    for (int k = 0; k < NF; k++) free(files[k]);
    free(o);
    free(e);
    tu_rmtree(dir);
    free(f32); free(imat); free(base); free(dir);
}

/* ---- GPTQ on the 4-d grids ---------------------------------------------------------------- */

/* GPTQ's levels of IQ3: c & 7 the magnitude (IQ3_XXS's grid values, IQ3_S's 1, 3, .., 15), c & 8 the sign */
static float iq3_level(uint32_t type, int c, int zero)
{
    static const int xxs[8] = {4, 12, 20, 28, 36, 44, 52, 62};
    return (float)((type == T_IQ3_XXS ? xxs[c & 7] : 2 * (c & 7) + 1) * (c & 8 ? -1 : 1));
}

static void iq3_scramble(uint32_t type, unsigned char *bp) { memset(bp + 2, 0x5a, 64); } /* the grid indices */

/* decode -> each element's level (index + 8 for a negative sign) -> re-pack gives the same
 * block; GPTQ lowers the output error ||X (W - Wq)^T||^2 against importance-weighted
 * rounding on activations with correlated columns. */
Test(iq3, gptq_lowers_output_error_vs_rounding, .timeout = 60)
{
    enum { T = 512, n = 512, rows = 32, R = 8 };
    float *X = malloc(sizeof(float) * T * n), *W = malloc(sizeof(float) * rows * n), *H = calloc(n * n, sizeof(float));
    float *Wq = malloc(sizeof(float) * rows * n), *imp = malloc(sizeof(float) * n);
    unsigned char *buf = malloc((size_t)rows * n), *rep = malloc((size_t)rows * n);
    tu_rng_state = 5;
    tu_gptq_problem(T, n, rows, R, tu_rng_gauss, X, W, H, imp);
    for (size_t k = 0; k < 2; k++) {
        const slm_qtraits *q = slm_qtraits_get(IQ3T[k]);
        cr_assert(slm_qgrid_supported(q->type), "%s", q->name);
        const size_t rb = slm_row_bytes(q->type, n);
        double e[2];
        for (int g = 0; g < 2; g++) {
            e[g] = tu_quant_output_error(q->type, g, T, n, rows, X, W, H, imp, buf, Wq);
            cr_assert_geq(e[g], 0, "%s: GPTQ failed", q->name);
            /* decode / pack round trip on these blocks */
            memcpy(rep, buf, rb * rows);
            for (size_t bl = 0; bl < rb * rows / q->bytes; bl++) {
                unsigned char *bp = rep + bl * q->bytes;
                float y[256];
                q->dequantize_row(bp, y, 256);
                const char *why = tu_qgrid_repack(q->type, bp, y, iq3_level, iq3_scramble, NULL, NULL);
                cr_assert_null(why, "%s", why);
            }
            for (int r = 0; r < rows; r++) {
                float y0[n], y1[n];
                q->dequantize_row(buf + r * rb, y0, n);
                q->dequantize_row(rep + r * rb, y1, n);
                cr_assert(memcmp(y0, y1, sizeof y0) == 0, "%s: re-packed row %d dequantizes differently", q->name, r);
            }
        }
        cr_log_info("%s: output error GPTQ %.4g, rounding %.4g (%.3fx)", q->name, e[1], e[0], e[1] / e[0]);
        cr_expect(e[1] < 0.8 * e[0], "%s: GPTQ output error %.4g vs rounding %.4g", q->name, e[1], e[0]);
    }
    free(X); free(W); free(H); free(Wq); free(imp); free(buf); free(rep);
}

/* The IQ3_XXS recipe (its attn_q / attn_k are IQ2_S, a type this branch cannot write yet):
 * slm_recipe_tensor_type against llama-quantize --dry-run's type for every tensor of
 * stories-llama256 (n_gqa 2), without and with an imatrix. */
Test(iq3, iq3_xxs_recipe_types_match_llama_quantize_dry_run, .timeout = 120)
{
    const char *lq = oracle_llama_tool("llama-quantize");
    if (!lq) return;
    char lqp[4096];
    snprintf(lqp, sizeof lqp, "%s", lq);
    char *dir = tu_tmpdir("iq3dry"), *f32 = tu_path(dir, "f32.gguf"), *imat = tu_path(dir, "imatrix.gguf"),
         *out = tu_path(dir, "out.gguf");
    const char *conv[] = {"convert", tu_model("stories-llama256"), "-o", f32, "--outtype", "f32", NULL};
    run_ok("slm convert", conv, 1);
    const char *im[] = {"imatrix", "-m", f32, "-f", tu_corpus("tinystories-calib.txt"), "-o", imat, "-c", "128",
                        "--chunks", "2", "-t", "2", NULL};
    run_ok("slm imatrix", im, 1);
    gguf_file *g;
    slm_err err = {0};
    cr_assert_eq(gguf_open(f32, &g, &err), 0, "%s", err.msg);
    for (int with = 0; with < 2; with++) {
        char *o = NULL, *e = NULL;
        const char *a0[] = {lqp, "--dry-run", f32, out, "IQ3_XXS", "2", NULL};
        const char *a1[] = {lqp, "--dry-run", "--imatrix", imat, f32, out, "IQ3_XXS", "2", NULL};
        cr_assert_eq(tu_run(&o, &e, with ? a1 : a0), 0, "llama-quantize --dry-run: %s", e);
        slm_recipe_model m = {"llama", 0, 1, 0, 0, with};
        int64_t nh = 0, nkv = 0, nl = 0;
        gguf_get_int(g, "llama.attention.head_count", &nh);
        gguf_get_int(g, "llama.attention.head_count_kv", &nkv);
        gguf_get_int(g, "llama.block_count", &nl);
        m.n_layers = (int)nl;
        m.n_gqa = (int)(nh / nkv);
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            if (strstr(g->tensors[i].name, "attn_v.weight")) m.n_attn_v++;
            if (!strcmp(g->tensors[i].name, "output.weight")) m.has_output = 1;
        }
        int attn_v_seen = 0, n_checked = 0, n_iq2s = 0, n_xxs = 0;
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const gguf_tensor *t = &g->tensors[i];
            int layer = -1;
            if (sscanf(t->name, "blk.%d.", &layer) != 1) layer = -1;
            const uint32_t ours = slm_recipe_tensor_type(&m, t->name, (int)t->n_dims, t->ne, t->type, layer,
                                                         slm_recipe_by_name("IQ3_XXS"), NULL, &attn_v_seen, NULL, NULL);
            /* llama-quantize's line: "[ i/ N] name - [dims], type = f32, size = ... -> ... (type)" */
            char key[160];
            snprintf(key, sizeof key, "] %s ", t->name);
            const char *p = strstr(e, key);
            if (!p) p = strstr(o, key);
            cr_assert_not_null(p, "no dry-run line for %s", t->name);
            const char *nl_ = strchr(p, '\n'), *arrow = strstr(p, "->");
            char theirs[32] = "f32";
            if (arrow && (!nl_ || arrow < nl_)) {
                const char *lp = strchr(arrow, '(');
                cr_assert_not_null(lp);
                sscanf(lp + 1, "%31[^)]", theirs);
            }
            cr_assert_str_eq(slm_type_name(ours), theirs, "IQ3_XXS%s: %s is %s, llama-quantize %s", with ? " +imatrix" : "",
                             t->name, slm_type_name(ours), theirs);
            n_checked++;
            n_iq2s += ours == 22;
            n_xxs += ours == T_IQ3_XXS;
        }
        cr_assert_gt(n_iq2s, 0);
        cr_assert_gt(n_xxs, 0);
        cr_log_info("IQ3_XXS%s: %d tensors as llama-quantize --dry-run", with ? " +imatrix" : "", n_checked);
        free(o); free(e);
    }
    gguf_close(g);
    tu_rmtree(dir);
    free(dir); free(f32); free(imat); free(out);
}
