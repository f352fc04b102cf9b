/* tests/test_runtime.c — the runtime: matmul kernels against the scalar
 * reference, the thread pool, the sampler, forward passes against known
 * greedy continuations (llama.cpp's own GGUF and files `slm convert` writes),
 * logits against llama.cpp itself, and `slm run` on bad input. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "interop.h"
#include "runtime.h"
#include "rt_internal.h"
#include "testutil.h"

#define LLAMACPP_GGUF "gguf/stories260K.gguf"
#define WANT_260K ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball."
#define WANT_GPT2 ", there was a little girl named Lily. She loved to play with her mom."
#define WANT_L256 ", there was a little boy named Tim. Tim loved to play with his toys. One day, he found a big, red ball. He wanted"

/* slm convert MODEL -> dir/MODEL-TYPE.gguf (malloc'd path) */
static char *convert(const char *dir, const char *model, const char *outtype)
{
    char name[128];
    snprintf(name, sizeof name, "%s-%s.gguf", model, outtype);
    char *out = tu_path(dir, name);
    char *o = NULL, *e = NULL;
    const char *args[] = {"convert", tu_model(model), "-o", out, "--outtype", outtype, NULL};
    int rc = tu_run_slm(&o, &e, args);
    cr_assert_eq(rc, 0, "slm convert %s failed: %s", model, e);
    free(o);
    free(e);
    return out;
}

static char *run_greedy(const char *model, int n, int *rc_out, char **err_out)
{
    char nb[16];
    snprintf(nb, sizeof nb, "%d", n);
    char *o = NULL, *e = NULL;
    const char *args[] = {"run", "-m", model, "-p", "Once upon a time", "-n", nb, "--temp", "0", "-t", "2", NULL};
    int rc = tu_run_slm(&o, &e, args);
    if (rc_out)
        *rc_out = rc;
    if (err_out)
        *err_out = e;
    else
        free(e);
    return o;
}

/* ---- matmul --------------------------------------------------------------------- */

static float frand(uint64_t st[4]) { return (float)(slm_rng_uniform(st) * 2 - 1); }

static void check_matmul(uint32_t type, int n_in, int n_out, int n_tokens, int threads)
{
    uint64_t st[4];
    slm_rng_seed(st, 42 + type);
    size_t rb = slm_type_row_bytes(type, (uint64_t)n_in);
    uint8_t *w = malloc(rb * (size_t)n_out);
    float *x = malloc(sizeof(float) * (size_t)n_in * n_tokens);
    float *got = malloc(sizeof(float) * (size_t)n_out * n_tokens);
    float *want = malloc(sizeof(float) * (size_t)n_out * n_tokens);
    float *wf = malloc(sizeof(float) * (size_t)n_in * n_out);
    for (size_t i = 0; i < (size_t)n_in * n_out; i++)
        wf[i] = frand(st);
    int quant = type != SLM_TYPE_F32 && type != SLM_TYPE_F16 && type != SLM_TYPE_BF16;
    if (quant)
        cr_assert_eq(slm_quantize_rows(type, wf, w, n_out, n_in, NULL), rb * n_out);
    for (size_t i = 0; !quant && i < (size_t)n_in * n_out; i++) {
        float v = wf[i];
        if (type == SLM_TYPE_F32)
            ((float *)w)[i] = v;
        else if (type == SLM_TYPE_F16)
            ((uint16_t *)w)[i] = slm_fp32_to_fp16(v);
        else
            ((uint16_t *)w)[i] = slm_fp32_to_bf16(v);
    }
    for (size_t i = 0; i < (size_t)n_in * n_tokens; i++)
        x[i] = frand(st);
    gguf_tensor W = {.name = "w", .type = type, .n_dims = 2, .ne = {n_in, n_out, 1, 1},
                     .n_elems = (uint64_t)n_in * n_out, .nbytes = rb * n_out, .data = w};
    slm_pool *pool;
    slm_err err;
    cr_assert_eq(slm_pool_new(threads, &pool, &err), 0);
    slm_matmul(pool, got, &W, x, n_tokens);
    slm_matmul_ref(want, &W, x, n_tokens);
    float *low = malloc(sizeof(float) * (size_t)n_out * n_tokens);
    slm_matmul_nomem(low, &W, x, n_tokens);
    for (size_t i = 0; i < (size_t)n_out * n_tokens; i++)
        cr_assert(fabsf(low[i] - want[i]) <= 1e-4f * (1 + fabsf(want[i])), "low-memory path: out[%zu] = %g, want %g",
                  i, low[i], want[i]);
    free(low);
    /* quantized types with few tokens quantize the activations too (vec_dot_type);
     * F16 decode with a set that has an F16-activation product (AVX-512, SVE, fhm) rounds
     * them to F16 (error <= 2^-11 of sum |w x| per row) */
    float tol = quant && n_tokens < 8 ? 0.05f : 1e-4f;
    int f16x = type == SLM_TYPE_F16 && n_tokens == 1 && slm_gemv_f16x_kernel(slm_kernel_active()) != NULL;
    for (size_t i = 0; i < (size_t)n_out * n_tokens; i++) {
        float bound = tol * (1 + fabsf(want[i]));
        if (f16x) {
            float sabs = 0;
            for (int c = 0; c < n_in; c++)
                sabs += fabsf(wf[(i % n_out) * n_in + c] * x[c]);
            bound += sabs * (1.0f / 2048);
        }
        cr_assert(fabsf(got[i] - want[i]) <= bound,
                  "type %u %dx%d, %d tokens, %d threads: out[%zu] = %g, reference %g", type, n_out, n_in, n_tokens,
                  threads, i, got[i], want[i]);
    }
    slm_pool_free(pool);
    free(w);
    free(wf);
    free(x);
    free(got);
    free(want);
}

Test(runtime, matmul_matches_scalar_reference)
{
    uint32_t types[] = {SLM_TYPE_F32, SLM_TYPE_F16, SLM_TYPE_BF16};
    for (int t = 0; t < 3; t++) {
        check_matmul(types[t], 64, 48, 1, 1);
        check_matmul(types[t], 96, 131, 1, 3);   /* rows not a multiple of the thread slice */
        check_matmul(types[t], 128, 70, 7, 2);
        check_matmul(types[t], 32, 5, 3, 4);     /* more threads than row slices */
        check_matmul(types[t], 45, 17, 1, 2);    /* row length not a multiple of 8 (SIMD tails) */
        check_matmul(types[t], 200, 19, 1, 1);
        check_matmul(types[t], 576, 37, 1, 2);   /* F16/BF16 decode: 16-row blocks, remainder rows */
        check_matmul(types[t], 576, 70, 25, 2);  /* F16/BF16 batches: 32-row panels, 12-token tiles, tails */
    }
    /* the same with SIMD kernels disabled (the portable paths) */
    int was = slm_kernel_active();
    slm_kernel_force(SLM_KERNEL_SCALAR);
    for (int t = 0; t < 3; t++) {
        check_matmul(types[t], 45, 17, 1, 2);
        check_matmul(types[t], 64, 48, 1, 1);
    }
    slm_kernel_force(was);
    /* quantized weights through libquant's traits: vec_dot (1 token), dequantized tiles (batches) */
    uint32_t qtypes[] = {SLM_TYPE_Q8_0, SLM_TYPE_Q4_0, SLM_TYPE_Q4_K, SLM_TYPE_Q6_K};
    for (int t = 0; t < 4; t++) {
        cr_assert(slm_matmul_supported(qtypes[t]), "type %u should be usable through libquant's traits", qtypes[t]);
        check_matmul(qtypes[t], 256, 40, 1, 2);
        check_matmul(qtypes[t], 512, 33, 9, 3);
    }
}

static void count_task(void *arg, int ith, int nth)
{
    atomic_int *hits = arg;
    atomic_fetch_add(&hits[ith], 1);
    atomic_fetch_add(&hits[64], nth);
}

Test(runtime, pool_runs_every_thread_once_per_job)
{
    slm_pool *p;
    slm_err err;
    cr_assert_eq(slm_pool_new(4, &p, &err), 0);
    atomic_int hits[65] = {0};
    for (int r = 0; r < 500; r++)
        slm_pool_run(p, count_task, hits);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(atomic_load(&hits[i]), 500, "thread %d ran %d times", i, atomic_load(&hits[i]));
    cr_assert_eq(atomic_load(&hits[64]), 500 * 4 * 4);
    slm_pool_free(p);
    cr_assert_neq(slm_pool_new(0, &p, &err), 0);
}

/* ---- sampler ------------------------------------------------------------------- */

Test(runtime, sampler_greedy_topk_and_seed)
{
    float logits[8] = {0.5f, 2.0f, -1.0f, 1.9f, 0.0f, 1.0f, -3.0f, 1.8f};
    slm_sampler_params p;
    slm_sampler_defaults(&p);
    p.temp = 0;
    slm_sampler *s = slm_sampler_new(&p, 8);
    cr_assert_eq(slm_sampler_sample(s, logits), 1);
    slm_sampler_free(s);

    /* repetition penalty: token 1 was just seen, so 3 wins (2.0/1.5 < 1.9) */
    p.repeat_penalty = 1.5f;
    s = slm_sampler_new(&p, 8);
    slm_sampler_accept(s, 1);
    cr_assert_eq(slm_sampler_sample(s, logits), 3);
    slm_sampler_free(s);

    /* top-k 1 at any temperature is greedy */
    slm_sampler_defaults(&p);
    p.temp = 5;
    p.top_k = 1;
    s = slm_sampler_new(&p, 8);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(slm_sampler_sample(s, logits), 1);
    slm_sampler_free(s);

    /* min-p 0.9 keeps only tokens within 10% of the top probability: 1, 3 and 7 are close */
    slm_sampler_defaults(&p);
    p.temp = 1;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0.85f;
    s = slm_sampler_new(&p, 8);
    int seen[8] = {0};
    for (int i = 0; i < 300; i++)
        seen[slm_sampler_sample(s, logits)]++;
    slm_sampler_free(s);
    cr_assert(seen[1] && seen[3], "min-p dropped a near-top token");
    cr_assert(!seen[0] && !seen[2] && !seen[4] && !seen[5] && !seen[6], "min-p kept a far token");

    /* a seed gives one sequence; another seed another */
    int a[64], b[64], c[64];
    uint64_t seeds[3] = {7, 7, 8};
    int *dst[3] = {a, b, c};
    for (int k = 0; k < 3; k++) {
        slm_sampler_defaults(&p);
        p.temp = 1.5f;
        p.top_k = 0;
        p.top_p = 1;
        p.min_p = 0;
        p.seed = seeds[k];
        s = slm_sampler_new(&p, 8);
        for (int i = 0; i < 64; i++)
            dst[k][i] = slm_sampler_sample(s, logits);
        slm_sampler_free(s);
    }
    cr_assert(memcmp(a, b, sizeof a) == 0, "same seed, different tokens");
    cr_assert(memcmp(a, c, sizeof a) != 0, "different seeds, same 64 tokens");
}

Test(runtime, rng_is_xoshiro256starstar)
{
    /* splitmix64 seeding then xoshiro256**: the first output for seed 0 is fixed
     * by the algorithms, so the sequence is the same on every machine */
    uint64_t st[4];
    slm_rng_seed(st, 0);
    cr_assert_eq(st[0], 0xe220a8397b1dcdafULL);
    double u = slm_rng_uniform(st);
    cr_assert(u >= 0 && u < 1);
}

/* ---- forward pass ------------------------------------------------------------------- */

Test(runtime, llamacpp_gguf_greedy_from_explicit_ids)
{
    /* llama.cpp's ids for "Once upon a time" (BOS 1 first) */
    const int32_t ids[] = {1, 403, 407, 261, 378};
    slm_model *m;
    slm_ctx *c;
    slm_tokenizer *t;
    slm_err err = {0};
    cr_assert_eq(slm_model_load(tu_model(LLAMACPP_GGUF), &m, &err), 0, "%s", err.msg);
    const slm_hparams *hp = slm_model_hparams(m);
    cr_assert_eq(hp->arch, SLM_ARCH_LLAMA);
    cr_assert_eq(hp->n_head_kv, 4); /* GQA: 8 query heads, 4 kv heads */
    cr_assert_float_eq(hp->rope_freq_base, 10000.0f, 0); /* key absent: default */
    cr_assert_eq(slm_tokenizer_from_gguf(slm_model_gguf(m), &t, &err), 0, "%s", err.msg);
    cr_assert_eq(slm_ctx_new(m, 64, 0, 2, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(slm_decode(c, ids, 5, 0, &err), 0, "%s", err.msg);
    int32_t out[40];
    for (int k = 0; k < 40; k++) {
        const float *l = slm_ctx_logits(c, 0);
        int best = 0;
        for (int i = 1; i < hp->n_vocab; i++)
            if (l[i] > l[best])
                best = i;
        out[k] = best;
        cr_assert_eq(slm_decode(c, &out[k], 1, 0, &err), 0, "%s", err.msg);
    }
    char *text = slm_detokenize(t, out, 40, 0);
    cr_assert_str_eq(text, WANT_260K);
    free(text);
    /* the cache is full after 64 positions */
    int32_t more[30] = {0};
    cr_assert_eq(slm_decode(c, more, 30, 0, &err), SLM_EINPUT);
    int32_t bad = 512;
    slm_ctx_clear(c);
    cr_assert_eq(slm_decode(c, &bad, 1, 0, &err), SLM_EINPUT);
    slm_ctx_free(c);
    slm_tokenizer_free(t);
    slm_model_free(m);
}

/* Batched prompt processing and one-token-at-a-time decoding give the same logits
 * (within tol: F16 weights decode with F16-rounded activations on AVX-512, as
 * llama.cpp does, while batches multiply F32 activations). */
static void batch_equals_incremental(const char *path, float tol)
{
    slm_model *m;
    slm_ctx *a, *b;
    slm_err err = {0};
    cr_assert_eq(slm_model_load(path, &m, &err), 0, "%s", err.msg);
    int V = slm_model_hparams(m)->n_vocab;
    cr_assert_eq(slm_ctx_new(m, 32, 16, 2, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(slm_ctx_new(m, 32, 16, 1, &b, &err), 0, "%s", err.msg);
    int32_t ids[12];
    for (int i = 0; i < 12; i++)
        ids[i] = (i * 37 + 5) % V;
    cr_assert_eq(slm_decode(a, ids, 12, 1, &err), 0, "%s", err.msg);
    for (int i = 0; i < 12; i++) {
        cr_assert_eq(slm_decode(b, &ids[i], 1, 0, &err), 0, "%s", err.msg);
        const float *la = slm_ctx_logits(a, i), *lb = slm_ctx_logits(b, 0);
        for (int k = 0; k < V; k++)
            cr_assert(fabsf(la[k] - lb[k]) <= tol * (1 + fabsf(lb[k])), "%s: pos %d logit %d: %g vs %g", path, i, k,
                      la[k], lb[k]);
    }
    slm_ctx_free(a);
    slm_ctx_free(b);
    slm_model_free(m);
}

Test(runtime, batch_equals_incremental, .timeout = 60)
{
    char *dir = tu_tmpdir("rt-batch");
    batch_equals_incremental(tu_model(LLAMACPP_GGUF), 1e-4f);
    char *g = convert(dir, "tiny-random-gpt2", "f16");
    batch_equals_incremental(g, 2e-3f);
    free(g);
    tu_rmtree(dir);
    free(dir);
}

Test(runtime, run_llamacpp_gguf_greedy, .timeout = 60)
{
    int rc;
    char *err;
    char *out = run_greedy(tu_model(LLAMACPP_GGUF), 40, &rc, &err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_str_eq(out, WANT_260K "\n");
    cr_assert(strstr(err, "t/s") && strstr(err, "peak RSS"), "no stats on stderr: %s", err);
    free(out);
    free(err);
}

Test(runtime, run_converted_models_greedy, .timeout = 120)
{
    char *dir = tu_tmpdir("rt-run");
    struct { const char *model, *type, *want; } cases[] = {
        {"stories260k", "f16", WANT_260K},
        {"stories260k", "bf16", ", there was a little girl named Lily."},
        {"tinystories-gpt2", "f16", WANT_GPT2},
        {"stories-llama256", "f16", WANT_L256},
        {"stories-llama256", "f32", WANT_L256},
        {"stories-llama256", "q8_0", WANT_L256},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = convert(dir, cases[i].model, cases[i].type);
        int rc;
        char *err;
        char *out = run_greedy(path, 40, &rc, &err);
        cr_assert_eq(rc, 0, "%s: %s", path, err);
        cr_assert(strncmp(out, cases[i].want, strlen(cases[i].want)) == 0, "%s (%s) wrote \"%s\", want \"%s\"",
                  cases[i].model, cases[i].type, out, cases[i].want);
        free(out);
        free(err);
        free(path);
    }
    tu_rmtree(dir);
    free(dir);
}

Test(runtime, run_json_and_sampling, .timeout = 60)
{
    const char *m = tu_model(LLAMACPP_GGUF);
    char *o = NULL, *e = NULL;
    const char *a1[] = {"run", "-m", m, "-p", "Once upon a time", "-n", "40", "--temp", "0", "--json", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, a1), 0, "%s", e);
    cJSON *j = cJSON_Parse(o);
    cr_assert_not_null(j, "not one JSON object: %s", o);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "text")->valuestring, WANT_260K);
    const char *keys[] = {"load_ms", "prompt_tps", "gen_tps", "peak_rss_kb", "prompt_tokens", "generated_tokens"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, keys[k])), "no %s in %s", keys[k], o);
    cr_assert_eq(cJSON_GetObjectItem(j, "prompt_tokens")->valueint, 5);
    cr_assert_eq(cJSON_GetObjectItem(j, "generated_tokens")->valueint, 40);
    cJSON_Delete(j);
    free(o);
    free(e);

    /* sampling: the same seed gives the same text; the text differs from greedy */
    char *t[2];
    for (int k = 0; k < 2; k++) {
        const char *a2[] = {"run", "-m", m, "-p", "Once upon a time", "-n", "30", "--temp", "1.2", "--top-k", "0",
                            "--top-p", "1", "--min-p", "0", "--seed", "1234", "--repeat-penalty", "1.1", NULL};
        cr_assert_eq(tu_run_slm(&t[k], &e, a2), 0, "%s", e);
        free(e);
    }
    cr_assert_str_eq(t[0], t[1]);
    cr_assert_str_neq(t[0], WANT_260K "\n");
    free(t[0]);
    free(t[1]);
}

/* ---- bad input: one line on stderr, a meaningful exit code, never a crash ----------- */

static void expect_fail(const char *const *args, int want_rc, const char *needle)
{
    char *o = NULL, *e = NULL;
    int rc = tu_run_slm(&o, &e, args);
    cr_assert_eq(rc, want_rc, "exit %d (want %d): %s", rc, want_rc, e);
    cr_assert(strstr(e, needle), "stderr lacks \"%s\": %s", needle, e);
    cr_assert(tu_count_lines(e) <= 2, "more than a line of error: %s", e);
    free(o);
    free(e);
}

Test(runtime, run_bad_input, .timeout = 60)
{
    char *dir = tu_tmpdir("rt-bad");
    const char *m = tu_model(LLAMACPP_GGUF);
    char *missing = tu_path(dir, "nope.gguf");
    const char *a1[] = {"run", "-m", missing, "-p", "x", NULL};
    expect_fail(a1, SLM_EIO, "nope.gguf");

    /* truncated copy */
    size_t n;
    char *bytes = tu_read_file(m, &n);
    char *trunc = tu_path(dir, "trunc.gguf");
    cr_assert_eq(tu_write_file(trunc, bytes, n / 2), 0);
    const char *a2[] = {"run", "-m", trunc, "-p", "x", NULL};
    expect_fail(a2, SLM_EINPUT, "trunc.gguf");
    /* garbage */
    char *garb = tu_path(dir, "garbage.gguf");
    cr_assert_eq(tu_write_file(garb, "not a gguf file at all, really not", 34), 0);
    const char *a3[] = {"run", "-m", garb, "-p", "x", NULL};
    expect_fail(a3, SLM_EINPUT, "garbage.gguf");
    free(bytes);

    const char *a4[] = {"run", "-m", m, "-p", "x", "-c", "4096", NULL};
    expect_fail(a4, SLM_EINPUT, "context");
    const char *a5[] = {"run", "-m", m, "-p", "Once upon a time there was a girl who liked to play", "-c", "8", NULL};
    expect_fail(a5, SLM_EINPUT, "prompt");
    const char *a6[] = {"run", "-p", "x", NULL};
    expect_fail(a6, SLM_EUSAGE, "model");
    const char *a7[] = {"run", "-m", m, "--temp", "hot", NULL};
    expect_fail(a7, SLM_EUSAGE, "--temp");

    /* an architecture the runtime does not know */
    char *arch = tu_path(dir, "mamba.gguf");
    gguf_writer *w = gguf_writer_new();
    slm_err err = {0};
    cr_assert_eq(gguf_set_str(w, "general.architecture", "mamba"), 0);
    int64_t ne[2] = {4, 4};
    cr_assert(gguf_add_tensor(w, "token_embd.weight", SLM_TYPE_F32, 2, ne) >= 0);
    cr_assert_eq(gguf_writer_begin(w, arch, &err), 0, "%s", err.msg);
    float zeros[16] = {0};
    cr_assert_eq(gguf_writer_write(w, zeros, sizeof zeros, &err), 0, "%s", err.msg);
    cr_assert_eq(gguf_writer_finish(w, &err), 0, "%s", err.msg);
    gguf_writer_free(w);
    const char *a8[] = {"run", "-m", arch, "-p", "x", NULL};
    expect_fail(a8, SLM_EINPUT, "mamba");

    free(missing);
    free(trunc);
    free(garb);
    free(arch);
    tu_rmtree(dir);
    free(dir);
}

/* ---- llama.cpp itself as the oracle: logits of the first positions ------------------- */

static void logits_match_llamacpp(const char *path, const char *prompt)
{
    const char *script = oracle_script("logits.mjs");
    slm_model *m;
    slm_tokenizer *t;
    slm_ctx *c;
    slm_err err = {0};
    cr_assert_eq(slm_model_load(path, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(slm_tokenizer_from_gguf(slm_model_gguf(m), &t, &err), 0, "%s", err.msg);
    int32_t *ids;
    size_t n;
    cr_assert_eq(slm_tokenize(t, prompt, strlen(prompt), slm_tokenizer_add_bos(t), 0, &ids, &n, &err), 0);
    cr_assert_eq(slm_ctx_new(m, 64, 0, 2, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(slm_decode(c, ids, (int)n, 1, &err), 0, "%s", err.msg);
    char arg[1024];
    size_t o = snprintf(arg, sizeof arg, "[");
    for (size_t i = 0; i < n; i++)
        o += snprintf(arg + o, sizeof arg - o, "%s%d", i ? "," : "", ids[i]);
    snprintf(arg + o, sizeof arg - o, "]");
    char *out = NULL, *e = NULL;
    const char *argv[] = {"node", script, path, arg, NULL};
    int rc = tu_run(&out, &e, argv);
    cr_assert_eq(rc, 0, "llama.cpp failed on %s: %s", path, e);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j);
    cJSON *rows = cJSON_GetObjectItem(j, "logits");
    cr_assert_eq((size_t)cJSON_GetArraySize(rows), n);
    int V = slm_model_hparams(m)->n_vocab;
    for (size_t i = 0; i < n; i++) {
        cJSON *row = cJSON_GetArrayItem(rows, (int)i);
        cr_assert_eq(cJSON_GetArraySize(row), V);
        const float *ours = slm_ctx_logits(c, (int)i);
        double maxabs = 0, maxdiff = 0;
        for (int k = 0; k < V; k++) {
            double ref = cJSON_GetArrayItem(row, k)->valuedouble;
            maxabs = fmax(maxabs, fabs(ref));
            maxdiff = fmax(maxdiff, fabs(ref - ours[k]));
        }
        cr_assert(maxdiff <= 1e-4 * maxabs, "%s: position %zu: max |logit diff| %g, max |logit| %g (rel %g)", path, i,
                  maxdiff, maxabs, maxdiff / maxabs);
    }
    cJSON_Delete(j);
    free(out);
    free(e);
    free(ids);
    slm_ctx_free(c);
    slm_tokenizer_free(t);
    slm_model_free(m);
}

Test(runtime, logits_match_llamacpp_llama, .timeout = 180)
{
    logits_match_llamacpp(tu_model(LLAMACPP_GGUF), "Once upon a time, there was a little dog");
    char *dir = tu_tmpdir("rt-logits");
    char *p = convert(dir, "stories-llama256", "f32");
    logits_match_llamacpp(p, "Once upon a time, there was a little dog");
    free(p);
    tu_rmtree(dir);
    free(dir);
}

Test(runtime, logits_match_llamacpp_gpt2, .timeout = 180)
{
    char *dir = tu_tmpdir("rt-logits");
    char *p = convert(dir, "tinystories-gpt2", "f32");
    logits_match_llamacpp(p, "Once upon a time, there was a little dog");
    free(p);
    tu_rmtree(dir);
    free(dir);
}

/* ---- Qwen2: NEOX RoPE and q/k/v biases ------------------------------------------------ */

/* An HF Qwen2 directory made from stories260k: HF checkpoints use rotate_half
 * RoPE, which is what llama.cpp's NEOX layout (qwen2) computes on unpermuted
 * rows, so with zero biases it must write stories260k's text; bias_scale adds
 * seeded q/k/v biases. */
static char *make_qwen2(const char *dir, const char *name, float bias_scale)
{
    char *out = tu_path(dir, name);
    cr_assert_eq(mkdir(out, 0755), 0);
    const char *files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "generation_config.json"};
    char rel[256];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(rel, sizeof rel, "stories260k/%s", files[i]);
        size_t n;
        char *b = tu_read_file(tu_model(rel), &n);
        cr_assert_not_null(b);
        char *p = tu_path(out, files[i]);
        cr_assert_eq(tu_write_file(p, b, n), 0);
        free(p);
        free(b);
    }
    char *cfg_text = tu_read_file(tu_model("stories260k/config.json"), NULL);
    cJSON *cfg = cJSON_Parse(cfg_text);
    cJSON *arch = cJSON_CreateArray();
    cJSON_AddItemToArray(arch, cJSON_CreateString("Qwen2ForCausalLM"));
    cJSON_ReplaceItemInObject(cfg, "architectures", arch);
    cJSON_ReplaceItemInObject(cfg, "model_type", cJSON_CreateString("qwen2"));
    char *cfg_out = cJSON_Print(cfg);
    char *p = tu_path(out, "config.json");
    cr_assert_eq(tu_write_file(p, cfg_out, strlen(cfg_out)), 0);
    free(p);
    free(cfg_out);
    cJSON_Delete(cfg);
    free(cfg_text);

    st_model *st;
    slm_err err = {0};
    cr_assert_eq(st_open(tu_model("stories260k"), &st, &err), 0, "%s", err.msg);
    st_writer *w = st_writer_new();
    for (size_t i = 0; i < st_count(st); i++) {
        const st_tensor *t = st_get(st, i);
        cr_assert_eq(st_writer_add(w, t->name, t->dtype, t->n_dims, t->shape), 0);
    }
    const char *proj[3] = {"q", "k", "v"};
    const int64_t dims[3] = {64, 32, 32};
    char bn[128];
    for (int l = 0; l < 5; l++)
        for (int k = 0; k < 3; k++) {
            snprintf(bn, sizeof bn, "model.layers.%d.self_attn.%s_proj.bias", l, proj[k]);
            cr_assert_eq(st_writer_add(w, bn, SLM_TYPE_F32, 1, &dims[k]), 0);
        }
    p = tu_path(out, "model.safetensors");
    cr_assert_eq(st_writer_begin(w, p, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < st_count(st); i++) {
        const st_tensor *t = st_get(st, i);
        cr_assert_eq(st_writer_write(w, t->data, t->nbytes, &err), 0, "%s", err.msg);
    }
    uint64_t rng[4];
    slm_rng_seed(rng, 99);
    for (int l = 0; l < 5; l++)
        for (int k = 0; k < 3; k++) {
            float b[64];
            for (int i = 0; i < dims[k]; i++)
                b[i] = bias_scale * frand(rng);
            cr_assert_eq(st_writer_write(w, b, sizeof(float) * dims[k], &err), 0, "%s", err.msg);
        }
    cr_assert_eq(st_writer_finish(w, &err), 0, "%s", err.msg);
    st_close(st);
    free(p);
    return out;
}

Test(runtime, qwen2_neox_rope_and_biases, .timeout = 180)
{
    char *dir = tu_tmpdir("rt-qwen2");
    char *plain = make_qwen2(dir, "plain", 0);
    char *o = NULL, *e = NULL;
    char *g0 = tu_path(dir, "plain.gguf");
    const char *c0[] = {"convert", plain, "-o", g0, "--outtype", "f32", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, c0), 0, "%s", e);
    free(o);
    free(e);
    slm_model *m;
    slm_err err = {0};
    cr_assert_eq(slm_model_load(g0, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(slm_model_hparams(m)->arch, SLM_ARCH_QWEN2);
    cr_assert_eq(slm_model_hparams(m)->rope_neox, 1);
    slm_model_free(m);
    int rc;
    char *out = run_greedy(g0, 40, &rc, &e);
    cr_assert_eq(rc, 0, "%s", e);
    cr_assert_str_eq(out, WANT_260K "\n");
    free(out);
    free(e);

    char *biased = make_qwen2(dir, "biased", 0.3f);
    char *g1 = tu_path(dir, "biased.gguf");
    const char *c1[] = {"convert", biased, "-o", g1, "--outtype", "f32", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, c1), 0, "%s", e);
    free(o);
    free(e);
    out = run_greedy(g1, 40, &rc, &e);
    cr_assert_eq(rc, 0, "%s", e);
    cr_assert_str_neq(out, WANT_260K "\n", "the biases changed nothing");
    free(out);
    free(e);
    logits_match_llamacpp(g1, "Once upon a time, there was a little dog");
    free(g0);
    free(g1);
    free(plain);
    free(biased);
    tu_rmtree(dir);
    free(dir);
}

/* Batches through libquant's int8 GEMM (AVX-512 VNNI): every output equals the scalar
 * vec_dot on the same quantized activations (within 1e-5 of the sum of |terms|), and the
 * bits do not depend on the thread count nor on whether the x8 copy is used. */
Test(runtime, gemm_batches_match_vec_dot_any_threads)
{
    if (!slm_gemm_kernel(SLM_TYPE_Q8_0, slm_kernel_active()))
        cr_skip_test("no int8 GEMM on this CPU");
    /* the legacy types, the k-quants, then IQ4_NL IQ4_XS IQ3_XXS IQ3_S IQ2_XXS IQ2_XS IQ2_S IQ1_S IQ1_M TQ1_0 TQ2_0 */
    static const uint32_t types[] = {8, 2, 6, 10, 11, 12, 13, 14, 20, 23, 18, 21, 16, 17, 22, 19, 29, 34, 35};
    static const int shapes[][3] = {{512, 48, 8}, {768, 40, 13}, {512, 80, 63}, {256, 32, 17}};
    slm_pool *pools[3];
    slm_err err;
    for (int p = 0; p < 3; p++) cr_assert_eq(slm_pool_new(p + 1, &pools[p], &err), 0);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const uint32_t type = types[ti];
            if (ti >= 8 && !slm_gemm_kernel(type, slm_kernel_active()))
                continue; /* the i-quants' GEMMs: AVX-512 VNNI only (else batches take F32 activations) */
            const int n_in = shapes[si][0], n_out = shapes[si][1], nt = shapes[si][2];
            const slm_qtraits *qt = slm_qtraits_get(type);
            slm_qtraits ks;
            const slm_qtraits *sc = slm_qtraits_kernel(type, SLM_KERNEL_SCALAR, &ks);
            uint64_t st[4];
            slm_rng_seed(st, 7 + type + si);
            size_t rb = slm_type_row_bytes(type, (uint64_t)n_in), yb = slm_row_bytes(qt->vec_dot_type, n_in);
            uint8_t *w = malloc(rb * n_out), *xq = malloc(yb * nt);
            float *wf = malloc(sizeof(float) * n_in * n_out), *x = malloc(sizeof(float) * n_in * nt);
            float *out[4], *dw = malloc(sizeof(float) * n_in), *dy = malloc(sizeof(float) * n_in);
            for (int i = 0; i < 4; i++) out[i] = malloc(sizeof(float) * n_out * nt);
            for (int i = 0; i < n_in * n_out; i++) wf[i] = frand(st) * (i % 11 == 0 ? 8 : 1);
            for (int i = 0; i < n_in * nt; i++) x[i] = frand(st) * (1 + i / n_in);
            cr_assert_eq(slm_quantize_rows(type, wf, w, n_out, n_in, NULL), rb * n_out);
            gguf_tensor W = {.name = "w", .type = type, .n_dims = 2, .ne = {n_in, n_out, 1, 1},
                             .n_elems = (uint64_t)n_in * n_out, .nbytes = rb * n_out, .data = w};
            void *packed = slm_matmul_pack(&W); /* NULL where there is no x8 layout */
            for (int p = 0; p < 3; p++) slm_matmul_packed(pools[p], out[p], &W, packed, x, nt);
            slm_matmul_packed(pools[1], out[3], &W, NULL, x, nt);
            for (int t = 0; t < nt; t++)
                cr_assert_eq(slm_quantize_act(qt->vec_dot_type, x + (size_t)t * n_in, xq + t * yb, n_in), 0);
            for (int r = 0; r < n_out; r++) {
                qt->dequantize_row(w + r * rb, dw, n_in);
                for (int t = 0; t < nt; t++) {
                    float want;
                    sc->vec_dot(n_in, &want, w + r * rb, xq + t * yb);
                    slm_qtraits_get(qt->vec_dot_type)->dequantize_row(xq + t * yb, dy, n_in);
                    double mag = 0;
                    for (int i = 0; i < n_in; i++) mag += fabs((double)dw[i] * dy[i]);
                    size_t o = (size_t)t * n_out + r;
                    cr_assert(fabs((double)out[0][o] - want) <= 1e-5 * mag + 1e-30,
                              "%s %dx%d, %d tokens: row %d token %d: %.9g vs vec_dot %.9g", qt->name, n_out, n_in, nt,
                              r, t, out[0][o], want);
                    for (int p = 1; p < 4; p++)
                        cr_assert_eq(memcmp(&out[0][o], &out[p][o], 4), 0, "%s: %s changes row %d token %d", qt->name,
                                     p < 3 ? "the thread count" : "the plain layout", r, t);
                }
            }
            free(packed);
            free(w), free(xq), free(wf), free(x), free(dw), free(dy);
            for (int i = 0; i < 4; i++) free(out[i]);
        }
    for (int p = 0; p < 3; p++) slm_pool_free(pools[p]);
}

/* forward.c's AVX-512 element-wise loops against the scalar ones: softmax rows (every tail
 * length, windows, large and tiny scores) and SiLU(g) * u (with and without u, aliased). */
Test(runtime, vec_avx512_matches_scalar)
{
#if defined(__x86_64__)
    if (!slm_cpu_has(SLM_KERNEL_AVX512))
        cr_skip_test("no AVX-512 on this CPU: nothing to compare");
    enum { NK = 200 };
    float a[NK], b[NK];
    tu_rng_state = 19;
    for (int n_keys = 1; n_keys <= NK; n_keys += n_keys < 40 ? 1 : 7) {
        for (int win = 0; win <= 32; win += 16) {
            for (int i = 0; i < NK; i++)
                a[i] = b[i] = 8.0f * tu_rng_gauss() + (i == 3 ? 60.0f : 0.0f);
            rt_softmax_row(a, n_keys, NK, win);
            rt_softmax_row_avx512(b, n_keys, NK, win);
            double sum = 0;
            for (int i = 0; i < NK; i++) {
                cr_assert(fabsf(a[i] - b[i]) <= 4e-7f * fabsf(a[i]) + 1e-37f, "softmax n_keys %d win %d [%d]: %g vs %g",
                          n_keys, win, i, a[i], b[i]);
                sum += b[i];
            }
            cr_assert(fabs(sum - 1.0) < 1e-5, "softmax sums to %g", sum);
        }
    }
    enum { N = 1000 };
    static float g[N], u[N], r1[N], r2[N];
    for (int i = 0; i < N; i++) {
        g[i] = (i % 10 == 0 ? 40.0f : 4.0f) * tu_rng_gauss();
        u[i] = tu_rng_gauss();
    }
    for (int len = 1; len <= N; len += len < 40 ? 1 : 97) {
        for (int withu = 0; withu < 2; withu++) {
            rt_silu_mul(r1, g, withu ? u : NULL, (size_t)len);
            rt_silu_mul_avx512(r2, g, withu ? u : NULL, (size_t)len);
            for (int i = 0; i < len; i++)
                cr_assert(fabsf(r1[i] - r2[i]) <= 4e-7f * fabsf(r1[i]) + 1e-37f, "silu len %d [%d] (g %g): %g vs %g", len,
                          i, g[i], r1[i], r2[i]);
        }
    }
    memcpy(r2, u, sizeof u); /* u aliasing the output, as act_mul calls it */
    rt_silu_mul_avx512(r2, g, r2, N);
    rt_silu_mul(r1, g, u, N);
    for (int i = 0; i < N; i++)
        cr_assert(fabsf(r1[i] - r2[i]) <= 4e-7f * fabsf(r1[i]) + 1e-37f, "silu aliased [%d]", i);
#else
    cr_skip_test("not an x86-64 build: no AVX-512 loops");
#endif
}

/* A context moves every matrix a decode step reads into one 2 MiB-aligned arena (forward.c,
 * base/bigmem.c): the x8 layout where the type has one, else the same bytes as the file. */
Test(runtime, decode_weights_in_huge_page_arena, .timeout = 60)
{
    slm_model *m;
    slm_ctx *c;
    slm_err err = {0};
    cr_assert_eq(slm_model_load(tu_model(LLAMACPP_GGUF), &m, &err), 0, "%s", err.msg);
    cr_assert_eq(slm_ctx_new(m, 64, 16, 1, &c, &err), 0, "%s", err.msg);
    const slm_packs *pk = &m->packs;
    cr_assert_not_null(pk->arena);
    cr_assert_eq((uintptr_t)pk->arena % ((uintptr_t)2 << 20), 0, "arena not 2 MiB-aligned");
    int moved = 0;
    for (int l = 0; l < m->hp.n_layer; l++) {
        const gguf_tensor *ws[] = {m->layers[l].wq, m->layers[l].wo, m->layers[l].ffn_down};
        for (int k = 0; k < 3; k++) {
            const gguf_tensor *W = ws[k];
            size_t i = 0;
            while (pk->slot[i].W != W) {
                i++;
                cr_assert_lt(i, pk->cap, "%s has no slot", W->name);
            }
            const uint8_t *a = pk->arena, *d = pk->slot[i].data ? pk->slot[i].data : pk->slot[i].moved.data;
            cr_assert_not_null(d, "%s: no decode copy", W->name);
            cr_assert(d >= a && d < a + pk->arena_bytes, "%s: copy outside the arena", W->name);
            if (pk->slot[i].moved.data) {
                cr_assert_eq(memcmp(pk->slot[i].moved.data, W->data, W->nbytes), 0, "%s: bytes differ", W->name);
                cr_assert_eq(pk->slot[i].moved.nbytes, W->nbytes);
                moved++;
            }
        }
    }
    cr_assert_gt(moved, 0, "no matrix moved (F32 weights have no x8 layout)");
    slm_ctx_free(c);
    slm_model_free(m);
}
