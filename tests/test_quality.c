/* tests/test_quality.c — quantization quality end to end (issue 5, bars 1 and 2).
 *
 * interop: llama.cpp itself (node-llama-cpp, tests/interop/perplexity.mjs, llama-perplexity's
 * method) scores our quantized stories-llama256 files; its perplexity must agree with
 * `slm perplexity` on the same file within 1 % over the first 8 chunks of the eval text
 * (-c 128). Wrong block layouts or kernels on either side would break the agreement.
 *
 * regression: mean KL-divergence against F32 of our flag-free Q4_K_M, Q3_K_M, Q4_0 and Q2_K files
 * over the first chunks of the eval text stays below 0.90x what llama.cpp's own quantizer
 * (llama-quantize) reaches on the same chunks (issue 19, bar 2). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "interop.h"
#include "testutil.h"

/* F32 conversion of stories-llama256 into dir; returns the malloc'd path. */
static char *f32_model(const char *dir)
{
    char *path = tu_path(dir, "f32.gguf");
    char *o = NULL, *e = NULL;
    const char *conv[] = {"convert", tu_model("stories-llama256"), "-o", path, "--outtype", "f32", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, conv), 0, "slm convert: %s", e);
    free(o);
    free(e);
    return path;
}

/* slm quantize f32 -> DIR/TYPE[tag].gguf; extra args (NULL-terminated, or NULL) appended */
static char *quantize_x(const char *dir, const char *f32, const char *type, const char *tag, const char *const *extra)
{
    char name[96];
    snprintf(name, sizeof name, "%s%s.gguf", type, tag);
    char *path = tu_path(dir, name);
    char *o = NULL, *e = NULL;
    const char *q[16] = {"quantize", f32, path, type, "-t", "2"};
    int n = 6;
    for (int i = 0; extra && extra[i] && n < 15; i++) q[n++] = extra[i];
    q[n] = NULL;
    cr_assert_eq(tu_run_slm(&o, &e, q), 0, "slm quantize %s: %s", type, e);
    free(o);
    free(e);
    return path;
}

static char *quantize(const char *dir, const char *f32, const char *type)
{
    return quantize_x(dir, f32, type, "", NULL);
}

static double json_num(const cJSON *j, const char *key, const char *what)
{
    const cJSON *v = cJSON_GetObjectItem(j, key);
    cr_assert(cJSON_IsNumber(v), "%s: no number '%s'", what, key);
    return v->valuedouble;
}

/* `slm perplexity` JSON over `chunks` chunks of the eval text, -c 128; extra args appended. */
static cJSON *slm_ppl(const char *model, const char *chunks, const char *const *extra)
{
    const char *args[16] = {"perplexity", "-m", model, "-f", tu_corpus("tinystories-eval.txt"), "-c", "128",
                            "--chunks", chunks, "-t", "2", "--json"};
    int n = 12;
    for (int i = 0; extra && extra[i] && n < 15; i++) args[n++] = extra[i];
    args[n] = NULL;
    char *o = NULL, *e = NULL;
    int rc = tu_run_slm(&o, &e, args);
    cr_assert_eq(rc, 0, "slm perplexity %s: %s", model, e);
    cJSON *j = cJSON_Parse(o);
    cr_assert_not_null(j, "slm perplexity output: %s", o);
    free(o);
    free(e);
    return j;
}

Test(quality, llamacpp_perplexity_agrees_on_our_quants, .timeout = 240)
{
    const char *script = oracle_script("perplexity.mjs");
    char *dir = tu_tmpdir("quality");
    char *f32 = f32_model(dir);
    enum { NT = 5 };
    static const char *types[NT] = {"Q8_0", "Q4_0", "Q4_K_M", "Q6_K", "Q2_K"};
    char *files[NT];
    const char *node[6 + NT] = {"node", script, tu_corpus("tinystories-eval.txt"), "128", "8"};
    for (int t = 0; t < NT; t++) node[5 + t] = files[t] = quantize(dir, f32, types[t]);
    node[5 + NT] = NULL;
    /* one oracle process for all files: llama.cpp's backend loads once */
    char *o = NULL, *e = NULL;
    int rc = tu_run(&o, &e, node);
    cr_assert_eq(rc, 0, "llama.cpp could not score our files: %s", e);
    char *line = o;
    for (int t = 0; t < NT; t++) {
        char *nl = line ? strchr(line, '\n') : NULL;
        cr_assert_not_null(nl, "oracle printed %d lines, want %d: %s", t, NT, o);
        *nl = 0;
        cJSON *ref = cJSON_Parse(line);
        cr_assert_not_null(ref, "oracle output: %s", line);
        line = nl + 1;
        cJSON *ours = slm_ppl(files[t], "8", NULL);
        double p_ref = json_num(ref, "ppl", "oracle"), p = json_num(ours, "ppl", "slm");
        cr_assert_eq(json_num(ref, "scored", "oracle"), json_num(ours, "scored", "slm"), "%s: scored counts differ",
                     types[t]);
        cr_assert(p_ref > 1 && p_ref < 20, "%s: llama.cpp's PPL %g is implausible", types[t], p_ref);
        cr_assert(fabs(p / p_ref - 1) < 0.01, "%s: slm PPL %.6f vs llama.cpp %.6f (%+.3f %%)", types[t], p, p_ref,
                  100 * (p / p_ref - 1));
        cr_log_info("%s: llama.cpp PPL %.6f, slm %.6f (%+.3f %%)", types[t], p_ref, p, 100 * (p / p_ref - 1));
        cJSON_Delete(ref);
        cJSON_Delete(ours);
        free(files[t]);
    }
    free(o);
    free(e);
    free(f32);
    tu_rmtree(dir);
    free(dir);
}

/* Mean KLD against F32 over the first 40 chunks of the eval text (-c 128). llama.cpp's
 * llama-quantize (de3ff81) files give 0.003923 (Q4_K_M) and 0.06251 (Q2_K) on these chunks,
 * measured with the same `slm perplexity` (since its batches of k-quants run on the int8
 * GEMM with quantized activations, as llama.cpp's do); the bounds and our figures are at each
 * test below. A floor at 0.5x llama.cpp's catches a broken measurement (e.g. no quantization). */
static void kld_below_x(const char *type, double llama, double bound, const char *const *extra)
{
    char *dir = tu_tmpdir("quality");
    char *f32 = f32_model(dir);
    char *base = tu_path(dir, "base.kld");
    char *file = quantize_x(dir, f32, type, "", extra);
    const char *mk[] = {"--kl-divergence-base", base, NULL};
    cJSON_Delete(slm_ppl(f32, "40", mk));
    const char *cmp[] = {"--kl-divergence-base", base, "--kl-divergence", NULL};
    cJSON *j = slm_ppl(file, "40", cmp);
    const cJSON *k = cJSON_GetObjectItem(j, "kld");
    cr_assert(cJSON_IsObject(k), "no kld object in slm perplexity's JSON");
    double kld = json_num(k, "mean", "kld");
    cr_log_info("%s%s: mean KLD %.6f (bound %.6f, llama.cpp %.6f, ratio %.3f)", type, extra ? " self-calibrated" : "", kld,
                bound, llama, kld / llama);
    cr_assert(kld < bound, "%s: mean KLD %.6f regressed above %.6f (llama.cpp's quantizer: %.6f)", type, kld, bound,
              llama);
    cr_assert(kld > 0.5 * llama, "%s: mean KLD %.6f is implausibly low (llama.cpp: %.6f)", type, kld, llama);
    cJSON_Delete(j);
    free(file);
    free(base);
    free(f32);
    tu_rmtree(dir);
    free(dir);
}

static void kld_below(const char *type, double llama, double bound)
{
    kld_below_x(type, llama, bound, NULL);
}

/* Issue 19 bar 2: the flag-free default (GPTQ with the data-free H of api/qfree.c) at <= 0.90x
 * llama-quantize's KLD on these 40 chunks (llama-quantize: Q4_K_M 0.003923, Q3_K_M 0.012859,
 * Q2_K 0.06251, Q4_0 0.006093). Ours when the bounds were set: 0.003429, 0.009667, 0.050373,
 * 0.004499; the default before it (diagonal importance for Q3_K_M only) gave 0.003852, 0.012197,
 * 0.058107, 0.005529: above every bound. */
Test(quality, q4_K_M_kld_below_llamacpp, .timeout = 120)
{
    kld_below("Q4_K_M", 0.003923, 0.00353);
}

Test(quality, q3_K_M_kld_below_llamacpp, .timeout = 120)
{
    kld_below("Q3_K_M", 0.012859, 0.01157);
}

Test(quality, q4_0_kld_below_llamacpp, .timeout = 120)
{
    kld_below("Q4_0", 0.006093, 0.00548);
}

/* The data-free importance and H are computed in a fixed order and GPTQ's bytes do not depend on
 * the thread count: -t 1 and -t 2 give the same bytes. */
Test(quality, data_free_importance_deterministic, .timeout = 120)
{
    char *dir = tu_tmpdir("quality");
    char *f32 = f32_model(dir);
    static const char *const types[] = {"Q4_K_M", "Q3_K_M", "Q4_0"};
    const char *t1[] = {"-t", "1", NULL};
    for (int k = 0; k < 3; k++) {
        char *a = quantize_x(dir, f32, types[k], "-t1", t1), *b = quantize(dir, f32, types[k]);
        size_t na, nb;
        char *da = tu_read_file(a, &na), *db = tu_read_file(b, &nb);
        cr_assert(da && db);
        cr_assert(na == nb && !memcmp(da, db, na), "%s: -t 1 and -t 2 give different bytes", types[k]);
        free(da); free(db); free(a); free(b);
    }
    free(f32);
    tu_rmtree(dir);
    free(dir);
}

Test(quality, q2_K_kld_below_llamacpp, .timeout = 120)
{
    kld_below("Q2_K", 0.06251, 0.0563);
}

/* Without calibration data, --self-calibrate N (GPTQ on N chunks the model samples itself)
 * must reach <= 0.90x llama-quantize's KLD (issue 19: 0.00353 / 0.0563); same 40 eval chunks
 * as above. Ours gave 0.002977 / 0.04746 (0.76x / 0.76x) when the bounds were set. */
static const char *const self16[] = {"--self-calibrate", "16", NULL};

Test(quality, q4_K_M_self_calibrated_kld_090x_llamacpp, .timeout = 180)
{
    kld_below_x("Q4_K_M", 0.003923, 0.00315, self16);
}

Test(quality, q2_K_self_calibrated_kld_090x_llamacpp, .timeout = 180)
{
    kld_below_x("Q2_K", 0.06251, 0.0495, self16);
}

/* The generated text is seeded: the same bytes for any thread count, other bytes for another seed. */
Test(quality, self_calibrate_deterministic, .timeout = 180)
{
    char *dir = tu_tmpdir("quality");
    char *f32 = f32_model(dir);
    const char *t1[] = {"--self-calibrate", "4", "-t", "1", NULL};
    const char *t2[] = {"--self-calibrate", "4", NULL};
    const char *s2[] = {"--self-calibrate", "4", "--self-seed", "2", NULL};
    char *a = quantize_x(dir, f32, "Q4_K_M", "-t1", t1), *b = quantize_x(dir, f32, "Q4_K_M", "-t2", t2),
         *c = quantize_x(dir, f32, "Q4_K_M", "-seed2", s2), *p = quantize(dir, f32, "Q4_K_M");
    size_t na, nb, nc, np;
    char *da = tu_read_file(a, &na), *db = tu_read_file(b, &nb), *dc = tu_read_file(c, &nc),
         *dp = tu_read_file(p, &np);
    cr_assert(da && db && dc && dp);
    cr_assert(na == nb && !memcmp(da, db, na), "--self-calibrate: -t 1 and -t 2 give different bytes");
    cr_assert(na == nc && memcmp(da, dc, na), "--self-seed 2 gave the same bytes as seed 1 (or another size)");
    cr_assert(na == np && memcmp(da, dp, na), "--self-calibrate changed nothing (or the size)");
    /* usage: -f and --self-calibrate exclude each other */
    char *o = NULL, *e = NULL;
    const char *bad[] = {"quantize", f32, a, "Q4_K_M", "--self-calibrate", "4", "-f", tu_corpus("tinystories-calib.txt"), NULL};
    cr_assert_eq(tu_run_slm(&o, &e, bad), 2, "--self-calibrate with -f: %s", e);
    free(o); free(e);
    free(da); free(db); free(dc); free(dp);
    free(a); free(b); free(c); free(p);
    free(f32);
    tu_rmtree(dir);
    free(dir);
}

/* --self-source uniform / unigram: i.i.d. tokens from a seeded generator, no generation (api/qsample.c).
 * -t 1 and -t 2 give the same bytes; each source other bytes than generate's and than the other
 * source's; --self-source alone is a usage error. */
Test(quality, self_source_deterministic, .timeout = 180)
{
    char *dir = tu_tmpdir("quality");
    char *f32 = f32_model(dir);
    const char *u1[] = {"--self-calibrate", "4", "-c", "64", "--self-source", "uniform", "-t", "1", NULL};
    const char *u2[] = {"--self-calibrate", "4", "-c", "64", "--self-source", "uniform", NULL};
    const char *g1[] = {"--self-calibrate", "4", "-c", "64", "--self-source", "unigram", "-t", "1", NULL};
    const char *g2[] = {"--self-calibrate", "4", "-c", "64", "--self-source", "unigram", NULL};
    const char *gen[] = {"--self-calibrate", "4", "-c", "64", NULL};
    char *a = quantize_x(dir, f32, "Q4_K_M", "-u1", u1), *b = quantize_x(dir, f32, "Q4_K_M", "-u2", u2),
         *c = quantize_x(dir, f32, "Q4_K_M", "-g1", g1), *d = quantize_x(dir, f32, "Q4_K_M", "-g2", g2),
         *g = quantize_x(dir, f32, "Q4_K_M", "-gen", gen);
    size_t na, nb, nc, nd, ng;
    char *da = tu_read_file(a, &na), *db = tu_read_file(b, &nb), *dc = tu_read_file(c, &nc),
         *dd = tu_read_file(d, &nd), *dg = tu_read_file(g, &ng);
    cr_assert(da && db && dc && dd && dg);
    cr_assert(na == nb && !memcmp(da, db, na), "--self-source uniform: -t 1 and -t 2 give different bytes");
    cr_assert(nc == nd && !memcmp(dc, dd, nc), "--self-source unigram: -t 1 and -t 2 give different bytes");
    cr_assert(na == ng && memcmp(da, dg, na), "--self-source uniform gave generate's bytes (or another size)");
    cr_assert(nc == ng && memcmp(dc, dg, nc), "--self-source unigram gave generate's bytes (or another size)");
    cr_assert(memcmp(da, dc, na), "--self-source uniform and unigram gave the same bytes");
    char *o = NULL, *e = NULL;
    const char *bad[] = {"quantize", f32, a, "Q4_K_M", "--self-source", "uniform", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, bad), 2, "--self-source without --self-calibrate: %s", e);
    free(o); free(e);
    const char *bad2[] = {"quantize", f32, a, "Q4_K_M", "--self-calibrate", "4", "--self-source", "text", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, bad2), 2, "--self-source text: %s", e);
    free(o); free(e);
    free(da); free(db); free(dc); free(dd); free(dg);
    free(a); free(b); free(c); free(d); free(g);
    free(f32);
    tu_rmtree(dir);
    free(dir);
}
