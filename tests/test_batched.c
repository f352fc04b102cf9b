/* tests/test_batched.c — the multi-sequence decode step (slm_decode_multi): B sequences, each
 * with its own KV cache and position, one new token each, every weight matrix run once for all.
 * Its logits must be those of B separate one-token slm_decode calls, bit for bit, per family
 * (bench synth shapes of llama, qwen2 and gemma3 with its sliding window) and per weight type
 * (stories-llama256 at F32, F16, Q8_0, Q4_K_M), with sequences of different lengths that join
 * and leave between steps, and a work context that is or is not one of the sequences. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "testutil.h"

enum { NSEQ = 5, NSTEP = 12 };

static int argmax(const float *v, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b])
            b = i;
    return b;
}

/* Which sequences step at step k: they join at different steps (after a prompt of their own
 * length) and leave at different steps; k = 5 runs one sequence alone. */
static int active(int s, int k)
{
    static const int join[NSEQ] = {0, 0, 2, 3, 6}, leave[NSEQ] = {NSTEP, 7, NSTEP, 9, NSTEP};
    if (k == 5)
        return s == 2;
    return k >= join[s] && k < leave[s];
}

static void check_model(const char *what, const char *gguf, int work_is_seq)
{
    slm_model *m = NULL;
    slm_err err = {0};
    cr_assert_eq(slm_model_load(gguf, &m, &err), 0, "%s: %s", what, err.msg);
    const int V = slm_model_hparams(m)->n_vocab;
    slm_ctx *seq[NSEQ], *ref[NSEQ], *work = NULL;
    for (int s = 0; s < NSEQ; s++) {
        /* sequences and references decode their prompts alike (one thread: a prompt's sgemm
         * may round differently when its rows are split otherwise); the work context that runs
         * the batched steps has 2 threads: a step must not depend on how the rows are split */
        cr_assert_eq(slm_ctx_new(m, 64, 0, 1, &seq[s], &err), 0, "%s", err.msg);
        cr_assert_eq(slm_ctx_new(m, 64, 0, 1, &ref[s], &err), 0, "%s", err.msg);
    }
    if (work_is_seq)
        work = seq[0];
    else
        cr_assert_eq(slm_ctx_new(m, 64, 0, 2, &work, &err), 0, "%s", err.msg);
    int32_t next[NSEQ] = {0};
    int joined[NSEQ] = {0};
    for (int k = 0; k < NSTEP; k++) {
        slm_ctx *bs[NSEQ];
        int32_t bt[NSEQ];
        int who[NSEQ], n = 0;
        for (int s = 0; s < NSEQ; s++) {
            if (!active(s, k))
                continue;
            if (!joined[s]) { /* prompt of 3 + 4 s tokens (crosses gemma3's window of 8) */
                int32_t p[32];
                int np = 3 + 4 * s;
                for (int i = 0; i < np; i++)
                    p[i] = (int32_t)((7 + 31 * i + 101 * s) % V);
                cr_assert_eq(slm_decode(seq[s], p, np, 0, &err), 0, "%s", err.msg);
                cr_assert_eq(slm_decode(ref[s], p, np, 0, &err), 0, "%s", err.msg);
                next[s] = argmax(slm_ctx_logits(ref[s], 0), V);
                joined[s] = 1;
            }
            bs[n] = seq[s];
            bt[n] = next[s];
            who[n++] = s;
        }
        if (!n)
            continue;
        cr_assert_eq(slm_decode_multi(work, bs, bt, n, &err), 0, "%s step %d: %s", what, k, err.msg);
        for (int i = 0; i < n; i++) {
            int s = who[i];
            cr_assert_eq(slm_decode(ref[s], &bt[i], 1, 0, &err), 0, "%s", err.msg);
            const float *a = slm_ctx_logits(seq[s], 0), *b = slm_ctx_logits(ref[s], 0);
            cr_assert(a && b);
            cr_assert_eq(slm_ctx_n_past(seq[s]), slm_ctx_n_past(ref[s]), "%s: positions differ", what);
            int bad = -1;
            for (int v = 0; v < V && bad < 0; v++)
                if (memcmp(&a[v], &b[v], sizeof(float)))
                    bad = v;
            cr_assert_eq(bad, -1, "%s (work %s): step %d, sequence %d (%d tokens), %d in a batch of %d: logit %d is %.9g, "
                         "alone %.9g", what, work_is_seq ? "= sequence 0" : "apart", k, s, slm_ctx_n_past(ref[s]), i, n,
                         bad, bad >= 0 ? a[bad] : 0.0, bad >= 0 ? b[bad] : 0.0);
            next[s] = argmax(b, V);
        }
    }
    for (int s = 0; s < NSEQ; s++) {
        slm_ctx_free(seq[s]);
        slm_ctx_free(ref[s]);
    }
    if (!work_is_seq)
        slm_ctx_free(work);
    slm_model_free(m);
}

static void slm_ok(const char *const *args)
{
    char *o = NULL, *e = NULL;
    int rc = tu_run_slm(&o, &e, args);
    cr_assert_eq(rc, 0, "slm %s %s: %s", args[0], args[1], e ? e : "");
    free(o);
    free(e);
}

/* stories-llama256 converted once per test process, then quantized */
static char *g_dir;

static char *llama256(const char *type)
{
    if (!g_dir)
        g_dir = tu_tmpdir("batched");
    char name[64];
    snprintf(name, sizeof name, "l256-%s.gguf", type);
    char *out = tu_path(g_dir, name);
    if (tu_exists(out))
        return out;
    char *f32 = tu_path(g_dir, "l256-F32.gguf");
    if (!tu_exists(f32))
        slm_ok((const char *[]){"convert", tu_model("stories-llama256"), "-o", f32, "--outtype", "f32", NULL});
    if (strcmp(type, "F32") == 0) {
        free(f32);
        return out;
    }
    if (strcmp(type, "F16") == 0)
        slm_ok((const char *[]){"convert", tu_model("stories-llama256"), "-o", out, "--outtype", "f16", NULL});
    else
        slm_ok((const char *[]){"quantize", f32, out, type, NULL});
    free(f32);
    return out;
}

static void llama256_type(const char *type)
{
    char *g = llama256(type);
    char what[64];
    snprintf(what, sizeof what, "stories-llama256 %s", type);
    check_model(what, g, 0);
    check_model(what, g, 1);
    free(g);
}

Test(batched, llama256_f32) { llama256_type("F32"); }
Test(batched, llama256_f16) { llama256_type("F16"); }
Test(batched, llama256_q8_0) { llama256_type("Q8_0"); }
Test(batched, llama256_q4_k_m) { llama256_type("Q4_K_M"); }

/* a bench synth shape, shrunk (3 layers, width 64, sliding window 8, vocabulary 512) */
static void synth_family(const char *shape, const char *type)
{
    char *dir = tu_tmpdir("batched-fam");
    char *hf = tu_path(dir, "hf"), *g = tu_path(dir, "m.gguf"), *q = tu_path(dir, "q.gguf");
    slm_ok((const char *[]){"bench", "synth", "--shape", shape, "-o", hf, "--dtype", "f32", "--layers", "3",
                            "--hidden", "64", "--ff", "128", "--heads", "4", "--kv-heads", "2", "--head-dim", "16",
                            "--window", "8", "--vocab", "512", NULL});
    slm_ok((const char *[]){"convert", hf, "-o", g, "--outtype", "f32", NULL});
    if (strcmp(type, "F32"))
        slm_ok((const char *[]){"quantize", g, q, type, NULL});
    char what[96];
    snprintf(what, sizeof what, "%s %s", shape, type);
    check_model(what, strcmp(type, "F32") ? q : g, 0);
    free(hf), free(g), free(q);
    tu_rmtree(dir);
    free(dir);
}

Test(batched, llama32_shape) { synth_family("llama-3.2-1b", "F32"); }
Test(batched, qwen25_shape) { synth_family("qwen2.5-0.5b", "F32"); }
Test(batched, gemma3_shape) { synth_family("gemma-3-270m", "F32"); }
Test(batched, gemma3_shape_q8_0) { synth_family("gemma-3-270m", "Q8_0"); }

/* refusals leave every sequence as it was */
Test(batched, refusals)
{
    char *g = llama256("F32");
    slm_model *m = NULL;
    slm_err err = {0};
    cr_assert_eq(slm_model_load(g, &m, &err), 0, "%s", err.msg);
    slm_ctx *a = NULL, *b = NULL;
    cr_assert_eq(slm_ctx_new(m, 4, 0, 1, &a, &err), 0);
    cr_assert_eq(slm_ctx_new(m, 4, 0, 1, &b, &err), 0);
    int32_t t2[2] = {1, 2}, bad[2] = {1, -1};
    slm_ctx *twice[2] = {a, a}, *ab[2] = {a, b};
    cr_assert_eq(slm_decode_multi(a, twice, t2, 2, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "again"), "%s", err.msg);
    cr_assert_eq(slm_decode_multi(a, ab, bad, 2, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "vocabulary"), "%s", err.msg);
    cr_assert_eq(slm_decode_multi(a, ab, t2, 0, &err), SLM_EINPUT);
    int32_t fill[4] = {1, 2, 3, 4};
    cr_assert_eq(slm_decode(b, fill, 4, 0, &err), 0);
    cr_assert_eq(slm_decode_multi(a, ab, t2, 2, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "full"), "%s", err.msg);
    cr_assert_eq(slm_ctx_n_past(a), 0, "a refused step decoded nothing");
    cr_assert_eq(slm_ctx_n_past(b), 4);
    slm_ctx_free(a);
    slm_ctx_free(b);
    slm_model_free(m);
    free(g);
}
