/* tests/test_perplexity.c — `slm perplexity` against the reference figures of
 * ../shared/models/SOURCES.md (llama.cpp's method, float64 references; llama.cpp's
 * llama-perplexity gives the same), its output format, KL-divergence, and bad input. */
#include <criterion/criterion.h>

#include <math.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "formats.h"
#include "testutil.h"

#define EVAL "tinystories-eval.txt"

static char *convert_f32(const char *dir, const char *model)
{
    char name[128];
    snprintf(name, sizeof name, "%s.gguf", model);
    char *out = tu_path(dir, name);
    char *o = NULL, *e = NULL;
    const char *args[] = {"convert", tu_model(model), "-o", out, "--outtype", "f32", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, args), 0, "slm convert %s: %s", model, e);
    free(o);
    free(e);
    return out;
}

/* Run slm perplexity --json; returns the parsed object (caller deletes). */
static cJSON *ppl_json(const char *model, const char *ctx, const char *const *extra, char **err_out)
{
    const char *args[32] = {"perplexity", "-m", model, "-f", tu_corpus(EVAL), "-c", ctx, "-t", "2", "--json"};
    int n = 10;
    for (int i = 0; extra && extra[i]; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    char *o = NULL, *e = NULL;
    int rc = tu_run_slm(&o, &e, args);
    cr_assert_eq(rc, 0, "slm perplexity %s -c %s: exit %d: %s", model, ctx, rc, e);
    cJSON *j = cJSON_Parse(o);
    cr_assert_not_null(j, "stdout is not one JSON object: %s", o);
    free(o);
    if (err_out)
        *err_out = e;
    else
        free(e);
    return j;
}

static double num(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(j, key);
    cr_assert(cJSON_IsNumber(v), "no number '%s'", key);
    return v->valuedouble;
}

static void expect_ppl(const char *model, const char *ctx, double want)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cJSON *j = ppl_json(model, ctx, NULL, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double wall = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    double got = num(j, "ppl");
    cr_assert(fabs(got - want) <= 1e-3 * want, "%s -c %s: PPL %.6f, reference %.6f", model, ctx, got, want);
    cr_assert(num(j, "ppl_stderr") > 0 && num(j, "ppl_stderr") < 0.05 * got);
    cr_assert_eq((int)num(j, "n_ctx"), atoi(ctx));
    cr_assert_eq((int)num(j, "chunks"), (int)num(j, "tokens") / atoi(ctx));
    /* "seconds" is the time of the evaluation in seconds: some work was timed, and no more than
     * the whole run took (a unit or clock mix-up gives 0, or 1000x the wall time) */
    cr_assert(num(j, "seconds") > 0 && num(j, "seconds") <= wall, "seconds %g, wall time of the run %g",
              num(j, "seconds"), wall);
    cJSON_Delete(j);
}

Test(perplexity, llamacpp_gguf_stories260k, .timeout = 120)
{
    expect_ppl(tu_model("gguf/stories260K.gguf"), "128", 4.317002);
    expect_ppl(tu_model("gguf/stories260K.gguf"), "256", 4.213718);
}

Test(perplexity, converted_stories260k, .timeout = 120)
{
    char *dir = tu_tmpdir("ppl-260k");
    char *m = convert_f32(dir, "stories260k");
    expect_ppl(m, "128", 4.317002);
    free(m);
    tu_rmtree(dir);
    free(dir);
}

Test(perplexity, converted_tinystories_gpt2_no_bos, .timeout = 180)
{
    char *dir = tu_tmpdir("ppl-gpt2");
    char *m = convert_f32(dir, "tinystories-gpt2");
    expect_ppl(m, "128", 32.056021);
    expect_ppl(m, "256", 31.098946);
    free(m);
    tu_rmtree(dir);
    free(dir);
}

Test(perplexity, converted_stories_llama256, .timeout = 300)
{
    char *dir = tu_tmpdir("ppl-l256");
    char *m = convert_f32(dir, "stories-llama256");
    expect_ppl(m, "128", 4.615686);
    expect_ppl(m, "256", 4.556960);
    free(m);
    tu_rmtree(dir);
    free(dir);
}

/* the text format: progress [1]x,[2]y,... on stderr, the final line on stdout;
 * --chunks limits the chunks; the first chunk's estimate is the ppl of 1 chunk */
Test(perplexity, text_output_and_chunks, .timeout = 60)
{
    const char *m = tu_model("gguf/stories260K.gguf");
    char *o = NULL, *e = NULL;
    const char *args[] = {"perplexity", "-m", m, "-f", tu_corpus(EVAL), "-c", "128", "--chunks", "3", "-b", "32", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, args), 0, "%s", e);
    cr_assert(strncmp(e, "[1]", 3) == 0 && strstr(e, ",[2]") && strstr(e, ",[3]") && !strstr(e, "[4]"),
              "progress: %s", e);
    cr_assert(strstr(o, "Final estimate: PPL = "), "%s", o);
    double p3 = 0, err3 = 0;
    cr_assert_eq(sscanf(strstr(o, "Final estimate: PPL = "), "Final estimate: PPL = %lf +/- %lf", &p3, &err3), 2);
    double last = atof(strstr(e, "[3]") + 3);
    cr_assert(fabs(last - p3) < 1e-4, "progress %.4f vs final %.4f", last, p3);
    free(o);
    free(e);
    /* -b smaller than -c (several batches per chunk) gives the same answer as one batch */
    const char *extra[] = {"--chunks", "3", NULL};
    cJSON *j = ppl_json(m, "128", extra, NULL);
    cr_assert(fabs(num(j, "ppl") - p3) < 1e-4, "-b 32: %.5f, one batch: %.5f", p3, num(j, "ppl"));
    cr_assert_eq((int)num(j, "chunks"), 3);
    cJSON_Delete(j);
}

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

Test(perplexity, bad_input, .timeout = 60)
{
    char *dir = tu_tmpdir("ppl-bad");
    const char *m = tu_model("gguf/stories260K.gguf");
    char *shortf = tu_path(dir, "short.txt");
    cr_assert_eq(tu_write_file(shortf, "Once upon a time there was a cat.", 33), 0);
    const char *a1[] = {"perplexity", "-m", m, "-f", shortf, "-c", "128", NULL};
    expect_fail(a1, SLM_EINPUT, "tokens");
    const char *a2[] = {"perplexity", "-m", m, "-f", tu_corpus(EVAL), "-c", "4096", NULL};
    expect_fail(a2, SLM_EINPUT, "context");
    char *nofile = tu_path(dir, "none.txt");
    const char *a3[] = {"perplexity", "-m", m, "-f", nofile, NULL};
    expect_fail(a3, SLM_EIO, "none.txt");
    const char *a4[] = {"perplexity", "-m", m, NULL};
    expect_fail(a4, SLM_EUSAGE, "-f");
    const char *a5[] = {"perplexity", "-m", m, "-f", tu_corpus(EVAL), "--kl-divergence", NULL};
    expect_fail(a5, SLM_EUSAGE, "--kl-divergence-base");
    free(shortf);
    free(nofile);
    tu_rmtree(dir);
    free(dir);
}

/* KL-divergence: base from F32, compared with F16 (small but non-zero) and with
 * itself (zero up to the 16-bit storage); a base from other settings is refused. */
Test(perplexity, kl_divergence, .timeout = 120)
{
    char *dir = tu_tmpdir("ppl-kld");
    char *f32 = convert_f32(dir, "stories260k");
    char *f16 = tu_path(dir, "f16.gguf");
    char *o = NULL, *e = NULL;
    const char *conv[] = {"convert", tu_model("stories260k"), "-o", f16, "--outtype", "f16", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, conv), 0, "%s", e);
    free(o);
    free(e);
    char *base = tu_path(dir, "base.kld");
    const char *save[] = {"--chunks", "40", "--kl-divergence-base", base, NULL};
    cJSON *j = ppl_json(f32, "128", save, NULL);
    double ppl_base = num(j, "ppl");
    cJSON_Delete(j);
    cr_assert(tu_exists(base));
    /* llama.cpp's layout: header, 40*128 tokens, 40*63 rows of (512 + 4) uint16 */
    size_t n;
    char *bytes = tu_read_file(base, &n);
    cr_assert_eq(n, 8 + 12 + 40 * 128 * 4 + (size_t)40 * 63 * 516 * 2);
    cr_assert(memcmp(bytes, "_logits_", 8) == 0);
    free(bytes);

    const char *cmp[] = {"--chunks", "40", "--kl-divergence-base", base, "--kl-divergence", NULL};
    j = ppl_json(f16, "128", cmp, NULL);
    cJSON *k = cJSON_GetObjectItem(j, "kld");
    cr_assert_not_null(k);
    cr_assert(fabs(num(k, "ppl_base") - ppl_base) < 2e-3 * ppl_base, "base ppl %.5f vs %.5f", num(k, "ppl_base"),
              ppl_base);
    cr_assert(num(k, "mean") > 0 && num(k, "mean") < 1e-3, "F16 mean KLD %g", num(k, "mean"));
    cr_assert(num(k, "median") <= num(k, "p99") && num(k, "p99") <= num(k, "max"));
    cr_assert(num(k, "same_top") > 0.98 && num(k, "same_top") <= 1);
    cr_assert(num(k, "rms_dp") > 0 && num(k, "rms_dp") < 0.01);
    cr_assert(fabs(num(k, "dppl")) < 0.01);
    cJSON_Delete(j);

    j = ppl_json(f32, "128", cmp, NULL);
    k = cJSON_GetObjectItem(j, "kld");
    cr_assert(num(k, "mean") < 1e-6, "self KLD %g", num(k, "mean"));
    cr_assert_float_eq(num(k, "same_top"), 1.0, 1e-12);
    cJSON_Delete(j);

    const char *a1[] = {"perplexity", "-m", f16, "-f", tu_corpus(EVAL), "-c", "256", "--chunks", "20",
                        "--kl-divergence-base", base, "--kl-divergence", NULL};
    expect_fail(a1, SLM_EINPUT, "n_ctx");
    char *other = tu_path(dir, "other.txt");
    size_t tn;
    char *txt = tu_read_file(tu_corpus(EVAL), &tn);
    txt[10] = txt[10] == 'x' ? 'y' : 'x';
    cr_assert_eq(tu_write_file(other, txt, tn), 0);
    free(txt);
    const char *a2[] = {"perplexity", "-m", f16, "-f", other, "-c", "128", "--chunks", "40",
                        "--kl-divergence-base", base, "--kl-divergence", NULL};
    expect_fail(a2, SLM_EINPUT, "other text");
    free(other);
    free(base);
    free(f16);
    free(f32);
    tu_rmtree(dir);
    free(dir);
}
