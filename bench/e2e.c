/* bench/e2e.c — end-to-end model speed with llama-bench's tests: pp (a prompt in
 * one batch), tg (tokens one by one), pg (both); one warm-up run, then timed runs.
 * t/s statistics are llama-bench's: the mean and standard deviation of the
 * per-run tokens / second. */
#include "bench.h"
#include "formats.h"
#include "bench_internal.h"
#include "runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp's names of general.file_type values (llama_model_ftype_name) */
static const char *ftype_label(int64_t ft)
{
    switch (ft) {
    case 0: return "all F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K - Medium";
    case 11: return "Q3_K - Small";
    case 12: return "Q3_K - Medium";
    case 13: return "Q3_K - Large";
    case 14: return "Q4_K - Small";
    case 15: return "Q4_K - Medium";
    case 16: return "Q5_K - Small";
    case 17: return "Q5_K - Medium";
    case 18: return "Q6_K";
    case 32: return "BF16";
    case 25: return "IQ4_NL - 4.5 bpw";
    case 30: return "IQ4_XS - 4.25 bpw";
    case 36: return "TQ1_0 - 1.69 bpw ternary";
    case 37: return "TQ2_0 - 2.06 bpw ternary";
    case 22: return "IQ3_XS - 3.3 bpw";
    case 23: return "IQ3_XXS - 3.0625 bpw";
    case 26: return "IQ3_S - 3.4375 bpw";
    case 27: return "IQ3_S mix - 3.66 bpw";
    case 24: return "IQ1_S - 1.5625 bpw";
    case 31: return "IQ1_M - 1.75 bpw";
    default: return "?";
    }
}

int bench_model_info_get(const slm_model *m, double load_ms, bench_model_info *out)
{
    memset(out, 0, sizeof *out);
    const gguf_file *f = slm_model_gguf(m);
    const slm_hparams *hp = slm_model_hparams(m);
    snprintf(out->arch, sizeof out->arch, "%s", hp->arch_name);
    int64_t ft = -1;
    if (gguf_get_int(f, "general.file_type", &ft) != 0)
        ft = -1;
    snprintf(out->ftype, sizeof out->ftype, "%s", ftype_label(ft));
    for (uint64_t i = 0; i < f->n_tensors; i++)
        out->n_params += f->tensors[i].n_elems;
    out->size_bytes = slm_model_weight_bytes(m);
    /* llama.cpp's size classes: "135M", "1B", ... from the parameter count */
    char sz[32];
    double p = (double)out->n_params;
    if (p >= 1e9)
        snprintf(sz, sizeof sz, "%.0fB", p / 1e9);
    else
        snprintf(sz, sizeof sz, "%.0fM", p / 1e6);
    snprintf(out->type_label, sizeof out->type_label, "%s %s %s", out->arch, sz, out->ftype);
    out->load_ms = load_ms;
    return SLM_OK;
}

void bench_e2e_result_free(bench_e2e_result *r)
{
    if (r) {
        free(r->samples_ns);
        r->samples_ns = NULL;
    }
}

static int run_once(slm_ctx *c, const int32_t *toks, bench_e2e_test t, slm_err *err)
{
    slm_ctx_clear(c);
    int rc = SLM_OK;
    if (t.n_prompt > 0)
        rc = slm_decode(c, toks, t.n_prompt, 0, err);
    for (int i = 0; rc == SLM_OK && i < t.n_gen; i++)
        rc = slm_decode(c, &toks[t.n_prompt + i], 1, 0, err);
    return rc;
}

int bench_e2e_run(const slm_model *m, bench_e2e_test t, int n_threads, int reps, bench_e2e_result *res,
                  slm_err *err)
{
    memset(res, 0, sizeof *res);
    const slm_hparams *hp = slm_model_hparams(m);
    if (t.n_prompt < 0 || t.n_gen < 0 || t.n_prompt + t.n_gen < 1 || reps < 1 || reps > 1000)
        return slm_err_set(err, SLM_EINPUT, "bench test pp%d tg%d x %d runs is out of range", t.n_prompt, t.n_gen,
                           reps);
    int n_ctx = t.n_prompt + t.n_gen;
    if (n_ctx > hp->n_ctx_train)
        return slm_err_set(err, SLM_EINPUT, "bench test needs %d positions, the model has %d", n_ctx, hp->n_ctx_train);
    slm_ctx *c;
    int n_batch = t.n_prompt > 0 ? t.n_prompt : 1;
    if (n_batch > 512)
        n_batch = 512;
    int rc = slm_ctx_new_kv(m, n_ctx, n_batch, n_threads, t.type_k, t.type_v, &c, err);
    if (rc)
        return rc;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)n_ctx);
    res->samples_ns = malloc(sizeof(double) * (size_t)reps);
    if (!toks || !res->samples_ns) {
        free(toks);
        slm_ctx_free(c);
        bench_e2e_result_free(res);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    uint64_t s = 1234;
    for (int i = 0; i < n_ctx; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((s >> 33) % (uint64_t)hp->n_vocab);
    }
    /* warm-up, as llama-bench: a prompt batch and/or one generated token */
    bench_e2e_test warm = {t.n_prompt, t.n_gen > 0 ? 1 : 0, t.type_k, t.type_v};
    rc = run_once(c, toks, warm, err);
    double sum_ts = 0, sum_ts2 = 0, sum_ns = 0, sum_ns2 = 0;
    for (int r = 0; rc == SLM_OK && r < reps; r++) {
        double t0 = bench_now();
        rc = run_once(c, toks, t, err);
        double ns = (bench_now() - t0) * 1e9;
        res->samples_ns[r] = ns;
        double ts = (t.n_prompt + t.n_gen) * 1e9 / ns;
        sum_ts += ts;
        sum_ts2 += ts * ts;
        sum_ns += ns;
        sum_ns2 += ns * ns;
    }
    free(toks);
    slm_ctx_free(c);
    if (rc) {
        bench_e2e_result_free(res);
        return rc;
    }
    res->test = t;
    res->n_threads = n_threads;
    res->reps = reps;
    res->avg_ns = sum_ns / reps;
    res->avg_ts = sum_ts / reps;
    res->stddev_ns = reps > 1 ? sqrt(fmax(0, (sum_ns2 - sum_ns * sum_ns / reps) / (reps - 1))) : 0;
    res->stddev_ts = reps > 1 ? sqrt(fmax(0, (sum_ts2 - sum_ts * sum_ts / reps) / (reps - 1))) : 0;
    return SLM_OK;
}
