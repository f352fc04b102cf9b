/* tests/test_iquants.c — the i-quant and ternary types (issue 19): IQ4_NL, IQ4_XS, TQ1_0, TQ2_0.
 *
 * Units: traits rows, ggml's bytes decoded by hand, every SIMD set against the scalar
 * kernels, quantizer properties (importance, adversarial blocks, exact ternary). Oracle
 * (llama.cpp tools via tests/interop.h): squared error below llama-quantize --pure's on
 * stories-llama256; recipes give llama-quantize's type per tensor and its file size;
 * llama.cpp's perplexity on our files and ours on its files agree within 1 %. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "formats.h"
#include "interop.h"
#include "libquant.h"
#include "testutil.h"

enum { T_IQ4_NL = 20, T_IQ4_XS = 23, T_TQ1_0 = 34, T_TQ2_0 = 35 };
static const uint32_t IQT[] = { T_IQ4_NL, T_IQ4_XS, T_TQ1_0, T_TQ2_0 };
#define NIQT (sizeof IQT / sizeof IQT[0])
/* ggml's kvalues_iq4nl, written out independently of libquant's copy */
static const int KV[16] = { -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113 };

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

Test(iquants, traits_rows)
{
    const struct { const char *name; uint32_t type; int blck; size_t bytes; uint32_t vdt; } want[] = {
        { "iq4_nl", T_IQ4_NL, 32, 18, 8 }, { "IQ4_XS", T_IQ4_XS, 256, 136, 15 },
        { "tq1_0", T_TQ1_0, 256, 54, 15 }, { "TQ2_0", T_TQ2_0, 256, 66, 15 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const slm_qtraits *t = slm_qtraits_by_name(want[i].name);
        cr_assert_not_null(t, "%s", want[i].name);
        cr_assert_eq(t->type, want[i].type);
        cr_assert_eq(t->blck, want[i].blck, "%s", want[i].name);
        cr_assert_eq(t->bytes, want[i].bytes, "%s", want[i].name);
        cr_assert_eq(t->vec_dot_type, want[i].vdt, "%s", want[i].name);
        cr_assert(t->is_quant);
        /* the GGUF reader's geometry (formats/types.c) agrees */
        cr_assert_eq(slm_type_block_size(t->type), t->blck);
        cr_assert_eq(slm_type_block_bytes(t->type), t->bytes);
    }
}

/* ggml's bytes decoded by hand */
Test(iquants, dequant_known_bytes)
{
    unsigned char b[256];
    float y[256];
    /* IQ4_NL: d = 0.5; low nibble j, high nibble 15 - j */
    memset(b, 0, sizeof b);
    b[1] = 0x38;
    for (int j = 0; j < 16; j++) b[2 + j] = (unsigned char)(j | (15 - j) << 4);
    slm_qtraits_get(T_IQ4_NL)->dequantize_row(b, y, 32);
    for (int j = 0; j < 16; j++) {
        cr_assert_eq(y[j], 0.5f * KV[j], "j=%d", j);
        cr_assert_eq(y[16 + j], 0.5f * KV[15 - j], "j=%d", j);
    }
    /* IQ4_XS: d = 0.25; sub-block 0: ls 33 (multiplier 1); sub-block 5: ls 44 = 0b101100
     * (low 4 bits 12 in the high nibble of scales_l[2], high bits 2 at bits 10..11 of scales_h) */
    memset(b, 0, sizeof b);
    b[1] = 0x34;
    const unsigned ls0 = 33, ls5 = 44;
    uint16_t sh = (uint16_t)((ls0 >> 4) | (ls5 >> 4) << 10);
    for (int ib = 0; ib < 8; ib++) if (ib != 0 && ib != 5) sh |= (uint16_t)(2u << 2 * ib); /* ls 32: zero */
    memcpy(b + 2, &sh, 2);
    b[4] = (unsigned char)(ls0 & 0xf);
    b[6] = (unsigned char)((ls5 & 0xf) << 4);
    for (int j = 0; j < 16; j++) { b[8 + j] = (unsigned char)(j | 3 << 4); b[8 + 80 + j] = 0xf0; }
    slm_qtraits_get(T_IQ4_XS)->dequantize_row(b, y, 256);
    for (int j = 0; j < 16; j++) {
        cr_assert_eq(y[j], 0.25f * KV[j]);
        cr_assert_eq(y[16 + j], 0.25f * KV[3]);
        cr_assert_eq(y[160 + j], 0.25f * 12 * KV[0]);
        cr_assert_eq(y[176 + j], 0.25f * 12 * KV[15]);
    }
    for (int j = 32; j < 160; j++) cr_assert_eq(y[j], 0.f, "j=%d", j);
    /* TQ2_0: d = 1; byte 0 = 0b10_01_00_10: elements 0, 32, 64, 96 = +1, -1, 0, +1 */
    memset(b, 0x55, 64); /* every level 1: zero */
    b[0] = 0x92;
    b[64] = 0x00; b[65] = 0x3c;
    slm_qtraits_get(T_TQ2_0)->dequantize_row(b, y, 256);
    cr_assert_eq(y[0], 1.f); cr_assert_eq(y[32], -1.f); cr_assert_eq(y[64], 0.f); cr_assert_eq(y[96], 1.f);
    for (int j = 1; j < 32; j++) cr_assert_eq(y[j], 0.f);
    /* TQ1_0: d = 2; qs[0] holds trits 2,0,1,1,2 (elements 0, 32, 64, 96, 128):
     * q = 2*81 + 0*27 + 1*9 + 1*3 + 2 = 176, byte ceil(176 * 256 / 243) = 186;
     * qh[1] holds trits 0,2,1,1 (elements 241, 245, 249, 253): q = (0*27+2*9+1*3+1)*3 = 66 -> 70 */
    memset(b, 0, sizeof b);
    for (int j = 0; j < 48; j++) b[j] = 128;     /* trits 1 1 1 1 1: q = 121, ceil(121 * 256 / 243) */
    for (int j = 0; j < 4; j++) b[48 + j] = 127; /* trits 1 1 1 1: q = 40 * 3, ceil(120 * 256 / 243) */
    b[0] = 186;
    b[49] = 70;
    b[52] = 0x00; b[53] = 0x40;
    slm_qtraits_get(T_TQ1_0)->dequantize_row(b, y, 256);
    cr_assert_eq(y[0], 2.f); cr_assert_eq(y[32], -2.f); cr_assert_eq(y[64], 0.f); cr_assert_eq(y[96], 0.f);
    cr_assert_eq(y[128], 2.f);
    cr_assert_eq(y[241], -2.f); cr_assert_eq(y[245], 2.f); cr_assert_eq(y[249], 0.f); cr_assert_eq(y[253], 0.f);
    for (int j = 0; j < 256; j++)
        if (j != 0 && j != 32 && j != 128 && j != 241 && j != 245) cr_assert_eq(y[j], 0.f, "j=%d: %g", j, y[j]);
}

/* Every SIMD set against the scalar kernels: dequantize bit-exact, vec_dot within 1e-5 of
 * the sum of |terms| (exact integer block sums), on quantized rows and on random bytes. */
Test(iquants, simd_matches_scalar)
{
    enum { N = 256 * 8 };
    float *x = malloc(N * 4), *a = malloc(N * 4), *y0 = malloc(N * 4), *y1 = malloc(N * 4);
    unsigned char *qw = malloc(N * 2), *qa = malloc(N * 2);
    tu_rng_state = 77;
    int checked = 0;
    /* the IQ1 types (iq1.c; their own suite is tests/test_iq1.c) go through the same checks */
    static const uint32_t SIMDT[] = { T_IQ4_NL, T_IQ4_XS, T_TQ1_0, T_TQ2_0, 19 /* IQ1_S */, 29 /* IQ1_M */ };
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < N; i++) {
            x[i] = tu_rng_gauss() * (round == 1 && i % 9 == 0 ? 300.f : 1.f);
            a[i] = round == 2 ? (i % 32 == 5 ? 1e4f : tu_rng_gauss() * 1e-3f) : tu_rng_gauss();
            if (round == 3) x[i] = 0;
        }
        for (size_t k = 0; k < sizeof SIMDT / sizeof SIMDT[0]; k++) {
            const slm_qtraits *t = slm_qtraits_get(SIMDT[k]);
            const size_t rb = slm_row_bytes(t->type, N);
            slm_quantize_rows(t->type, x, qw, 1, N, NULL);
            if (round == 4) {
                for (size_t i = 0; i < rb; i++) qw[i] = (unsigned char)tu_rng_next();
                uint16_t *h = (uint16_t *)qw; /* no Inf/NaN scales */
                for (size_t i = 0; i < rb / 2; i++)
                    if ((h[i] & 0x7c00) == 0x7c00) h[i] &= 0xbfff;
                if (t->type == 29) /* IQ1_M: the scale's exponent top bit is bit 6 of the block's last byte */
                    for (size_t i = 0; i < rb / 56; i++) qw[56 * i + 55] &= 0xbf;
            }
            slm_qtraits ks, kk;
            const slm_qtraits *s = slm_qtraits_kernel(t->type, SLM_KERNEL_SCALAR, &ks);
            cr_assert_eq(slm_quantize_act_kernel(t->vec_dot_type, SLM_KERNEL_SCALAR, a, qa, N), 0);
            s->dequantize_row(qw, y0, N);
            float ds;
            s->vec_dot(N, &ds, qw, qa);
            double mag = 0;
            for (int i = 0; i < N; i++) mag += fabs((double)y0[i] * a[i]);
            for (int kern = 1; kern < SLM_KERNEL_COUNT; kern++) {
                const slm_qtraits *v = slm_qtraits_kernel(t->type, kern, &kk);
                if (!v) continue;
                v->dequantize_row(qw, y1, N);
                for (int i = 0; i < N; i++)
                    cr_assert_eq(f2u(y0[i]), f2u(y1[i]), "%s %s dequant i=%d %g vs %g", t->name,
                                 slm_kernel_name(kern), i, y0[i], y1[i]);
                float dv;
                v->vec_dot(N, &dv, qw, qa);
                cr_assert(fabs((double)dv - ds) <= 1e-5 * mag + 1e-30, "%s %s round %d vec_dot %.9g vs %.9g (mag %g)",
                          t->name, slm_kernel_name(kern), round, dv, ds, mag);
                checked++;
            }
            /* and the scalar vec_dot is the dot of the dequantized weights with the activations */
            double ref = 0;
            float *ad = y1;
            slm_qtraits_get(t->vec_dot_type)->dequantize_row(qa, ad, N);
            for (int i = 0; i < N; i++) ref += (double)y0[i] * ad[i];
            cr_assert(fabs(ref - ds) <= 1e-5 * mag + 1e-30, "%s scalar vec_dot %.9g vs %.9g", t->name, ds, ref);
        }
    }
    cr_log_info("%d kernel comparisons", checked);
    free(x); free(a); free(y0); free(y1); free(qw); free(qa);
}

/* Importance: heavily weighted columns come out more accurate than without it. */
Test(iquants, importance_lowers_weighted_error)
{
    enum { N = 256 * 16 };
    float *x = malloc(N * 4), *imp = malloc(N * 4), *y = malloc(N * 4);
    unsigned char *q = malloc(N * 2);
    tu_rng_state = 11;
    for (int i = 0; i < N; i++) { x[i] = tu_rng_gauss(); imp[i] = (i % 7 == 0) ? 50.f : 1.f; }
    for (size_t k = 0; k < NIQT; k++) {
        const slm_qtraits *t = slm_qtraits_get(IQT[k]);
        double e[2];
        for (int u = 0; u < 2; u++) {
            slm_quantize_rows(t->type, x, q, 1, N, u ? imp : NULL);
            t->dequantize_row(q, y, N);
            e[u] = 0;
            for (int i = 0; i < N; i++) e[u] += imp[i] * ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        }
        cr_expect(e[1] < e[0], "%s: weighted error with imp %g, without %g", t->name, e[1], e[0]);
    }
    free(x); free(imp); free(y); free(q);
}

/* Zero, constant, one spike, huge and tiny values: nothing non-finite; zero stays zero. */
Test(iquants, adversarial_blocks)
{
    enum { N = 512 };
    float x[N], y[N];
    unsigned char q[N * 2];
    for (int c = 0; c < 6; c++) {
        for (int i = 0; i < N; i++) {
            switch (c) {
            case 0: x[i] = 0; break;
            case 1: x[i] = 0.75f; break;
            case 2: x[i] = i == 77 ? 1000.f : 0.f; break;
            case 3: x[i] = (i & 1 ? -1 : 1) * 60000.f * (float)(i % 5) / 4; break;
            case 4: x[i] = (i % 3 - 1) * 1e-7f; break;
            case 5: x[i] = i < 256 ? 0.f : -3.f + (float)(i % 16) * 0.01f; break;
            }
        }
        for (size_t k = 0; k < NIQT; k++) {
            const slm_qtraits *t = slm_qtraits_get(IQT[k]);
            slm_quantize_rows(t->type, x, q, 1, N, NULL);
            t->dequantize_row(q, y, N);
            for (int i = 0; i < N; i++) cr_assert(isfinite(y[i]), "%s case %d i %d", t->name, c, i);
            if (c == 0)
                for (int i = 0; i < N; i++) cr_assert_eq(y[i], 0.f, "%s zero block", t->name);
            if (c == 1 && t->type != T_IQ4_XS) /* a constant block is one level times a scale */
                for (int i = 0; i < N; i++) cr_assert(fabsf(y[i] - 0.75f) < 0.75f * 2e-3f, "%s constant: %g", t->name, y[i]);
        }
    }
}

/* A ternary-trained block (values -a, 0, a with a an fp16 number) comes back exactly. */
Test(iquants, ternary_exact)
{
    enum { N = 256 * 4 };
    float x[N], y[N];
    unsigned char q[N];
    tu_rng_state = 3;
    for (int i = 0; i < N; i++) x[i] = 0.0390625f * (float)((int)(tu_rng_next() % 3) - 1) * (i >= 512 ? 4.f : 1.f);
    for (int k = 0; k < 2; k++) {
        const slm_qtraits *t = slm_qtraits_get(k ? T_TQ1_0 : T_TQ2_0);
        slm_quantize_rows(t->type, x, q, 1, N, NULL);
        t->dequantize_row(q, y, N);
        for (int i = 0; i < N; i++) cr_assert_eq(y[i], x[i], "%s i=%d: %g vs %g", t->name, i, y[i], x[i]);
    }
}

/* ---- against llama.cpp's tools ------------------------------------------------------------ */

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

/* Every recipe of the i-quants and ternary types: every tensor's type and the file size equal
 * llama-quantize's (the plan of `slm quantize --dry-run --json`, whose output_bytes is the exact
 * size of the file it would write; three recipes also written and read back), on a Llama-shaped model with GQA 4 (attn_v -> Q5_K for IQ4, Q4_K for the
 * lower types), 8 layers (first-eighth ffn_down bumps, IQ3_XS's middle ffn_gate/up IQ3_XXS) and
 * ffn rows of 640 (fallbacks: IQ4_XS / IQ3 / IQ2 / IQ1 -> IQ4_NL, TQ -> Q4_0, Q5_K -> Q5_1);
 * with the same imatrix given to both where the type needs one (or to see its effect: IQ4_XS
 * twice). `base`: the recipe's base tensor type (IQ2_S's is IQ2_XS, IQ2_M's IQ2_S, IQ3_XS's
 * and IQ3_M's IQ3_S). Then the refusals: without an imatrix both tools refuse the recipes
 * whose tensors need one (slm: exit 3, nothing written). */
Test(iquants, recipes_match_llama_quantize, .timeout = 600)
{
    const char *lq = oracle_llama_tool("llama-quantize");
    if (!lq) return;
    char lqp[4096];
    snprintf(lqp, sizeof lqp, "%s", lq);
    char *dir = tu_tmpdir("iqrec");
    char *hf = tu_path(dir, "hf"), *src = tu_path(dir, "src.gguf"), *imat = tu_path(dir, "imatrix.gguf");
    const char *synth[] = {"bench", "synth", "--shape", "tinyllama-1.1b", "-o", hf, "--layers", "8", "--hidden", "256",
                           "--ff", "640", "--heads", "8", "--kv-heads", "2", "--vocab", "1024", "--dtype", "f16", NULL};
    run_ok("synth", synth, 1);
    const char *conv[] = {"convert", hf, "-o", src, "--outtype", "f16", NULL};
    run_ok("convert", conv, 1);
    const char *im[] = {"imatrix", "-m", src, "-f", tu_corpus("tinystories-calib.txt"), "-o", imat, "-c", "64",
                        "--chunks", "4", NULL};
    run_ok("imatrix", im, 1);
    /* write: also quantized for real (one of each writer family: IQ4 with an imatrix, ternary, an
     * IQ3 grid type; the IQ2 / IQ1 writers are read back by llama.cpp in the iq1 / iq2 suites) */
    static const struct { const char *type, *base; int imatrix, write; } runs[] = {
        {"IQ4_XS", "iq4_xs", 0, 0},  {"IQ4_NL", "iq4_nl", 0, 0},  {"TQ1_0", "tq1_0", 0, 1},   {"TQ2_0", "tq2_0", 0, 0},
        {"IQ4_XS", "iq4_xs", 1, 1},  {"IQ3_S", "iq3_s", 0, 0},    {"IQ3_M", "iq3_s", 0, 0},   {"IQ3_XS", "iq3_s", 1, 0},
        {"IQ3_XXS", "iq3_xxs", 1, 1}, {"IQ2_XXS", "iq2_xxs", 1, 0}, {"IQ2_XS", "iq2_xs", 1, 0}, {"IQ2_S", "iq2_xs", 1, 0},
        {"IQ2_M", "iq2_s", 1, 0},    {"IQ1_S", "iq1_s", 1, 0},    {"IQ1_M", "iq1_m", 1, 0},
    };
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        char *ours = tu_path(dir, "ours.gguf"), *theirs = tu_path(dir, "theirs.gguf");
        const char *lqa[] = {lqp, src, theirs, runs[r].type, "2", NULL};
        const char *lqi[] = {lqp, "--imatrix", imat, src, theirs, runs[r].type, "2", NULL};
        run_ok("llama-quantize", runs[r].imatrix ? lqi : lqa, 0);
        gguf_file *b;
        slm_err err = {0};
        cr_assert_eq(gguf_open(theirs, &b, &err), 0, "%s", err.msg);
        const char *tag = runs[r].imatrix ? " +imatrix" : "";
        /* the plan: --dry-run --json gives every tensor's type and the exact file size */
        char *o = NULL, *e = NULL;
        const char *qd[] = {"quantize", src, ours, runs[r].type, "-t", "2", "--dry-run", "--json",
                            runs[r].imatrix ? "--imatrix" : NULL, imat, NULL};
        cr_assert_eq(tu_run_slm(&o, &e, qd), 0, "slm quantize --dry-run %s: %s", runs[r].type, e);
        cJSON *j = cJSON_Parse(o);
        cr_assert(j, "slm quantize --dry-run --json %s: not JSON", runs[r].type);
        cJSON *ts = cJSON_GetObjectItem(j, "tensors");
        cr_assert_eq((uint64_t)cJSON_GetArraySize(ts), b->n_tensors);
        int n_base = 0, n_other = 0;
        const slm_qtraits *base = slm_qtraits_by_name(runs[r].base);
        for (uint64_t i = 0; i < b->n_tensors; i++) {
            const char *want = slm_type_name(b->tensors[i].type), *got = NULL;
            const cJSON *t;
            cJSON_ArrayForEach(t, ts)
            {
                if (!strcmp(cJSON_GetObjectItem(t, "name")->valuestring, b->tensors[i].name))
                    got = cJSON_GetObjectItem(t, "to")->valuestring;
            }
            cr_assert(got, "%s%s: %s missing from the plan", runs[r].type, tag, b->tensors[i].name);
            cr_assert_str_eq(got, want, "%s%s: %s is %s, llama-quantize %s", runs[r].type, tag, b->tensors[i].name,
                             got, want);
            if (b->tensors[i].type == base->type) n_base++;
            else if (b->tensors[i].type != SLM_TYPE_F32) n_other++;
        }
        cr_assert_gt(n_base, 0, "%s: no tensor of the type", runs[r].type);
        cr_assert_gt(n_other, 0, "%s: no bumped or fallback tensor", runs[r].type);
        const long planned = (long)cJSON_GetObjectItem(j, "output_bytes")->valuedouble;
        cr_assert_eq(planned, file_size(theirs), "%s%s: %ld bytes planned, llama-quantize %ld", runs[r].type, tag,
                     planned, file_size(theirs));
        cr_assert(!tu_exists(ours), "--dry-run wrote %s", ours);
        cJSON_Delete(j);
        free(o); free(e);
        /* written for real where the row says so: the file holds what the plan said */
        if (runs[r].write) {
            const char *q[] = {"quantize", src, ours, runs[r].type, "-t", "2", runs[r].imatrix ? "--imatrix" : NULL, imat, NULL};
            run_ok("slm quantize", q, 1);
            gguf_file *a;
            cr_assert_eq(gguf_open(ours, &a, &err), 0, "%s", err.msg);
            cr_assert_eq(a->n_tensors, b->n_tensors);
            for (uint64_t i = 0; i < b->n_tensors; i++) {
                int64_t k = gguf_find_tensor(a, b->tensors[i].name);
                cr_assert_geq(k, 0, "%s missing", b->tensors[i].name);
                cr_assert_eq(a->tensors[k].type, b->tensors[i].type, "%s%s: %s is %s, llama-quantize %s", runs[r].type,
                             tag, b->tensors[i].name, slm_type_name(a->tensors[k].type),
                             slm_type_name(b->tensors[i].type));
            }
            gguf_close(a);
            cr_assert_eq(file_size(ours), file_size(theirs), "%s%s: %ld bytes, llama-quantize %ld", runs[r].type, tag,
                         file_size(ours), file_size(theirs));
            unlink(ours);
        }
        gguf_close(b);
        free(ours);
        free(theirs);
    }
    static const char *const need_imatrix[] = {"IQ3_XS", "IQ2_XXS", "IQ1_S"};
    for (size_t r = 0; r < sizeof need_imatrix / sizeof need_imatrix[0]; r++) {
        char *ours = tu_path(dir, "no.gguf"), *theirs = tu_path(dir, "no-l.gguf");
        char *o = NULL, *e = NULL;
        const char *q[] = {"quantize", src, ours, need_imatrix[r], "-t", "2", NULL};
        const int rc = tu_run_slm(&o, &e, q);
        cr_assert_eq(rc, 3, "slm quantize %s without an imatrix: exit %d (%s)", need_imatrix[r], rc, e);
        cr_assert(strstr(e, "importance matrix"), "%s", e);
        cr_assert(!tu_exists(ours), "a refused quantize left %s", ours);
        free(o); free(e);
        o = e = NULL;
        const char *lqa[] = {lqp, src, theirs, need_imatrix[r], "2", NULL};
        cr_assert_neq(tu_run(&o, &e, lqa), 0, "llama-quantize wrote %s without an imatrix", need_imatrix[r]);
        free(o); free(e);
        free(ours); free(theirs);
    }
    tu_rmtree(dir);
    free(dir); free(hf); free(src); free(imat);
}

static char *f32_model(const char *dir)
{
    char *path = tu_path(dir, "f32.gguf");
    const char *conv[] = {"convert", tu_model("stories-llama256"), "-o", path, "--outtype", "f32", NULL};
    run_ok("slm convert", conv, 1);
    return path;
}

/* Our quantizers beat llama.cpp's on its own ground: every tensor llama-quantize --pure
 * writes in the type (stories-llama256, F32, rows of 256), quantized again by
 * slm_quantize_rows; the summed squared error of ours is below the tool's. */
Test(iquants, sse_below_llama_quantize, .timeout = 240)
{
    const char *lq = oracle_llama_tool("llama-quantize");
    if (!lq) return;
    char lqp[4096];
    snprintf(lqp, sizeof lqp, "%s", lq);
    char *dir = tu_tmpdir("iqsse"), *f32 = f32_model(dir), *theirs = tu_path(dir, "theirs.gguf");
    static const char *const names[NIQT] = {"IQ4_NL", "IQ4_XS", "TQ1_0", "TQ2_0"};
    gguf_file *src = NULL;
    slm_err err = {0};
    cr_assert_eq(gguf_open(f32, &src, &err), 0, "%s", err.msg);
    for (size_t k = 0; k < NIQT; k++) {
        const char *qa[] = {lqp, "--pure", f32, theirs, names[k], "2", NULL};
        run_ok("llama-quantize --pure", qa, 0);
        gguf_file *q = NULL;
        cr_assert_eq(gguf_open(theirs, &q, &err), 0, "%s", err.msg);
        const slm_qtraits *t = slm_qtraits_get(IQT[k]);
        double ours = 0, tool = 0;
        int n = 0;
        for (uint64_t i = 0; i < q->n_tensors; i++) {
            const gguf_tensor *qt = &q->tensors[i];
            if (qt->type != t->type) continue;
            const gguf_tensor *st = &src->tensors[gguf_find_tensor(src, qt->name)];
            const int64_t nc = st->ne[0], rows = (int64_t)(st->n_elems / (uint64_t)nc);
            const size_t rb = slm_row_bytes(t->type, nc);
            cr_assert_eq(qt->nbytes, rb * (size_t)rows);
            unsigned char *mine = malloc(rb * (size_t)rows);
            float *ya = malloc(sizeof(float) * (size_t)nc), *yb = malloc(sizeof(float) * (size_t)nc);
            cr_assert_eq(slm_quantize_rows(t->type, st->data, mine, rows, nc, NULL), rb * (size_t)rows);
            const float *x = st->data;
            for (int64_t r = 0; r < rows; r++) {
                t->dequantize_row(mine + (size_t)r * rb, ya, nc);
                t->dequantize_row((const unsigned char *)qt->data + (size_t)r * rb, yb, nc);
                for (int64_t j = 0; j < nc; j++) {
                    const double xv = x[r * nc + j];
                    ours += (xv - ya[j]) * (xv - ya[j]);
                    tool += (xv - yb[j]) * (xv - yb[j]);
                }
            }
            free(mine); free(ya); free(yb);
            n++;
        }
        gguf_close(q);
        cr_log_info("%-6s sse ours %.6g  llama-quantize %.6g  ratio %.4f (%d tensors)", t->name, ours, tool, ours / tool, n);
        cr_expect_geq(n, 14, "%s: llama-quantize --pure wrote %d tensors of the type", t->name, n);
        cr_expect(ours < tool, "%s: squared error ours %.6g, llama.cpp's %.6g", t->name, ours, tool);
    }
    gguf_close(src);
    tu_rmtree(dir);
    free(f32); free(theirs); free(dir);
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

/* llama.cpp runs our files, we run its files, with the same perplexity within 1 %: wrong
 * block layouts, level tables or trit orders on either side would break the agreement.
 * llama.cpp's side: tests/interop/perplexity.mjs (node-llama-cpp: llama.cpp's kernels,
 * llama-perplexity's method), one process for every file; -c 128, 8 chunks of the eval
 * text. (llama-perplexity itself gave the same figures, but on a loaded machine its
 * asynchronous logger lost the estimate in three runs out of three.) */
Test(iquants, perplexity_agrees_with_llamacpp, .timeout = 240)
{
    const char *lq = oracle_llama_tool("llama-quantize");
    if (!lq) return;
    char lqp[4096];
    snprintf(lqp, sizeof lqp, "%s", lq);
    const char *script = oracle_script("perplexity.mjs");
    if (!script) return;
    char *dir = tu_tmpdir("iqppl"), *f32 = f32_model(dir);
    enum { NF = 6 };
    static const char *const names[NF] = {"IQ4_XS", "IQ4_NL", "TQ2_0", "TQ1_0", "IQ4_XS", "IQ4_NL"};
    char *files[NF];
    const char *node[5 + NF + 1] = {"node", script, tu_corpus("tinystories-eval.txt"), "128", "8"};
    for (int k = 0; k < NF; k++) {
        char fn[64];
        snprintf(fn, sizeof fn, "%s-%s.gguf", k < 4 ? "slm" : "llama", names[k]);
        files[k] = tu_path(dir, fn);
        node[5 + k] = files[k];
        if (k < 4) {
            const char *q[] = {"quantize", f32, files[k], names[k], "-t", "2", NULL};
            run_ok("slm quantize", q, 1);
        } else {
            const char *q[] = {lqp, f32, files[k], names[k], "2", NULL};
            run_ok("llama-quantize", q, 0);
        }
    }
    node[5 + NF] = NULL;
    char *o = NULL, *e = NULL;
    cr_assert_eq(tu_run(&o, &e, node), 0, "llama.cpp could not score the files: %s", e);
    const double f32_ppl = slm_ppl(f32);
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
        const char *by = k < 4 ? "slm" : "llama-quantize";
        cr_log_info("%s file by %s: llama.cpp %.4f, slm %.4f (%+.3f %%; F32 %.4f)", names[k], by, theirs, ours,
                    100 * (ours / theirs - 1), f32_ppl);
        cr_assert(fabs(ours / theirs - 1) < 0.01, "%s (%s's file): slm PPL %.4f vs llama.cpp %.4f", names[k], by, ours,
                  theirs);
        /* and the file is a sensible model: IQ4 within 5 % of F32, ternary within 2x */
        cr_assert(ours < f32_ppl * (k == 2 || k == 3 ? 2.0 : 1.05), "%s: PPL %.4f vs F32 %.4f", names[k], ours, f32_ppl);
        free(files[k]);
    }
    free(o);
    free(e);
    tu_rmtree(dir);
    free(f32); free(dir);
}

/* ---- GPTQ on these grids ---------------------------------------------------------------- */

/* decode -> the level of every dequantized value -> re-pack gives the same block */
static float iq_level(uint32_t type, int c, int zero)
{
    return type == T_IQ4_NL || type == T_IQ4_XS ? (float)KV[c] : (float)(c - zero);
}

/* scramble the levels first: pack must write every one */
static void iq_scramble(uint32_t type, unsigned char *bp)
{
    memset(bp + (type == T_TQ1_0 || type == T_TQ2_0 ? 0 : type == T_IQ4_NL ? 2 : 8), 0x5a,
           type == T_TQ1_0 ? 52 : type == T_TQ2_0 ? 64 : type == T_IQ4_NL ? 16 : 128);
}

Test(iquants, qgrid_pack_reproduces_quantizer_blocks)
{
    enum { N = 1024 };
    float x[N], imp[N], y0[N], y1[N];
    tu_rng_state = 21;
    for (int i = 0; i < N; i++) { x[i] = tu_rng_gauss() * (i % 97 == 0 ? 8.0f : 1.0f); imp[i] = (float)tu_rng_unif() + 0.01f; }
    for (size_t k = 0; k < NIQT; k++) {
        const slm_qtraits *q = slm_qtraits_get(IQT[k]);
        cr_assert(slm_qgrid_supported(q->type), "%s", q->name);
        unsigned char buf[2048], rep[2048];
        for (int pass = 0; pass < 2; pass++) {
            q->quantize_row(x, buf, N, pass ? imp : NULL);
            q->dequantize_row(buf, y0, N);
            memcpy(rep, buf, slm_row_bytes(q->type, N));
            for (int blk = 0; blk < N / q->blck; blk++) {
                const char *why = tu_qgrid_repack(q->type, rep + (size_t)blk * q->bytes, y0 + blk * q->blck,
                                                  iq_level, iq_scramble, NULL, NULL);
                cr_assert_null(why, "%s", why);
            }
            q->dequantize_row(rep, y1, N);
            cr_expect(memcmp(y0, y1, sizeof y0) == 0, "%s: re-packed block dequantizes differently", q->name);
        }
    }
}

/* GPTQ lowers the output error ||X (W - Wq)^T||^2 against the type's own importance-weighted
 * rounding, on activations with correlated columns (a low-rank mix plus noise). */
Test(iquants, gptq_lowers_output_error_vs_rounding, .timeout = 60)
{
    enum { T = 512, n = 512, rows = 32, R = 8 };
    float *X = malloc(sizeof(float) * T * n), *W = malloc(sizeof(float) * rows * n), *H = calloc(n * n, sizeof(float));
    float *Wq = malloc(sizeof(float) * rows * n), *imp = malloc(sizeof(float) * n);
    unsigned char *buf = malloc((size_t)rows * n);
    tu_rng_state = 5;
    tu_gptq_problem(T, n, rows, R, tu_rng_gauss, X, W, H, imp);
    for (size_t k = 0; k < NIQT; k++) {
        const slm_qtraits *q = slm_qtraits_get(IQT[k]);
        double e[2];
        for (int g = 0; g < 2; g++) {
            e[g] = tu_quant_output_error(q->type, g, T, n, rows, X, W, H, imp, buf, Wq);
            cr_assert_geq(e[g], 0, "%s: GPTQ failed", q->name);
        }
        cr_log_info("%s: output error GPTQ %.4g, rounding %.4g (%.3fx)", q->name, e[1], e[0], e[1] / e[0]);
        cr_expect(e[1] < 0.8 * e[0], "%s: GPTQ output error %.4g vs rounding %.4g", q->name, e[1], e[0]);
    }
    free(X); free(W); free(H); free(Wq); free(imp); free(buf);
}

/* x8 decode layouts of the i-quants (issue 19, bar 3; rows.c, iquants_x86.inc): packing is a
 * byte shuffle (the packed dequantization equals the row dequantization bit for bit), and
 * every set's x8 kernel equals the scalar vec_dot per row within 1e-5 of the sum of |terms|:
 * gaussian weights, outliers, random bytes (every level and scale bit, finite fp16 scales)
 * and saturated blocks (every byte 0xFF, scales 1000); more than 256 blocks of 32 (the
 * kernels' activation chunk); one group and three; nothing written past the groups. */
static const uint32_t X8IQ[] = { T_IQ4_NL, T_IQ4_XS, 18 /* IQ3_XXS */, 21 /* IQ3_S */ };

Test(iquants, x8_layouts_match_scalar, .timeout = 120)
{
    enum { N = 256 * 33, R = 24 };
    float *x = malloc(sizeof(float) * N * R), *a = malloc(sizeof(float) * N), *d0 = malloc(sizeof(float) * N * 8),
          *d1 = malloc(sizeof(float) * N * 8);
    unsigned char *qw = malloc((size_t)N * R), *pk = malloc((size_t)N * R + 4096), *qa = malloc((size_t)N * 2);
    tu_rng_state = 9191;
    int kernels_checked = 0;
    for (size_t k = 0; k < sizeof X8IQ / sizeof X8IQ[0]; k++) {
        const slm_qtraits *t = slm_qtraits_get(X8IQ[k]);
        const size_t rb = slm_row_bytes(t->type, N), gb = slm_x8_group_bytes(t->type, N);
        cr_assert_eq(gb, 8 * rb, "%s: x8 group bytes", t->name); /* no padding */
        for (int round = 0; round < 4; round++) {
            for (int i = 0; i < N * R; i++) x[i] = tu_rng_gauss() * (round == 1 && i % 13 == 0 ? 40.f : 1.f);
            for (int i = 0; i < N; i++) a[i] = tu_rng_gauss() * (round == 1 && i % 29 == 0 ? 50.f : 1.f);
            cr_assert_eq(slm_quantize_rows(t->type, x, qw, R, N, NULL), rb * R);
            if (round >= 2) { /* 2: random bytes; 3: every bit set */
                for (size_t i = 0; i < rb * R; i++) qw[i] = round == 2 ? (unsigned char)tu_rng_next() : 0xFF;
                for (size_t o = 0; o < rb * R; o += t->bytes) { /* finite fp16 d (first field of every block) */
                    uint16_t h;
                    memcpy(&h, qw + o, 2);
                    h = round == 2 ? (uint16_t)(h & 0x3bff) : 0x63d0; /* 0x63d0 = 1000 */
                    memcpy(qw + o, &h, 2);
                }
            }
            memset(pk, 0xAB, gb * (R / 8));
            cr_assert_eq(slm_x8_pack(t->type, qw, pk, R, N), gb * (R / 8), "%s", t->name);
            cr_assert_eq(slm_x8_pack(t->type, qw, pk, R - 1, N), 0u); /* not a multiple of 8 rows */
            for (int g = 0; g < R / 8; g++) {
                slm_x8_dequant_group(t->type, pk, g, N, d1);
                for (int r = 0; r < 8; r++) t->dequantize_row(qw + (8 * g + r) * rb, d0 + (size_t)r * N, N);
                for (int i = 0; i < 8 * N; i++)
                    cr_assert_eq(f2u(d0[i]), f2u(d1[i]), "%s round %d group %d i %d: %g vs %g", t->name, round, g, i,
                                 d0[i], d1[i]);
            }
            cr_assert_null(slm_x8_kernel(t->type, SLM_KERNEL_SCALAR));
            cr_assert_null(slm_x8_kernel(t->type, SLM_KERNEL_AVX2)); /* AVX-512 VNNI only */
            if (slm_cpu_has(SLM_KERNEL_AVX512))
                cr_assert_not_null(slm_x8_kernel(t->type, SLM_KERNEL_AVX512), "%s: no x8 kernel", t->name);
            cr_assert_eq(slm_quantize_act(t->vec_dot_type, a, qa, N), 0);
            slm_qtraits ks;
            const slm_qtraits *sc = slm_qtraits_kernel(t->type, SLM_KERNEL_SCALAR, &ks);
            for (int kern = 1; kern < SLM_KERNEL_COUNT; kern++) {
                slm_x8_fn f = slm_x8_kernel(t->type, kern);
                if (!f) continue;
                kernels_checked++;
                const char *why = tu_x8_check(f, sc->vec_dot, t->dequantize_row, N, R, pk, qw, rb, a, qa, d0);
                cr_assert_null(why, "%s %s round %d: %s", t->name, slm_kernel_name(kern), round, why);
            }
        }
    }
    free(x); free(a); free(d0); free(d1); free(qw); free(pk); free(qa);
    if (!kernels_checked)
        cr_skip_test("SKIPPED: no set with i-quant x8 kernels on this CPU (layouts checked, kernels not run)");
    else
        cr_assert_geq(kernels_checked, (int)(4 * (sizeof X8IQ / sizeof X8IQ[0])));
}
