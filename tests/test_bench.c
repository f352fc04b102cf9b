/* tests/test_bench.c — suite "bench": `slm bench -m` output formats (JSON, JSONL,
 * CSV, SQL, SVG, md), `slm bench kernels`, `slm compare` on stories-llama256 (table,
 * JSON, SVG, resume), and the SVG / Pareto helpers. Speeds are never asserted. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "formats.h"
#include "libquant.h"
#include "testutil.h"

/* A tiny well-formedness check: every tag closed in order, attributes quoted,
 * '&' only as an entity, exactly one root element. Returns NULL or a reason. */
static const char *xml_check(const char *s)
{
    static char why[128];
    char stack[64][32];
    int depth = 0, roots = 0;
    for (const char *p = s; *p;) {
        if (*p == '&') {
            const char *e = strchr(p, ';');
            if (!e || e - p > 8 || e == p + 1)
                return "bare '&'";
            p = e + 1;
            continue;
        }
        if (*p != '<') {
            p++;
            continue;
        }
        if (p[1] == '?') {
            const char *e = strstr(p, "?>");
            if (!e)
                return "unterminated <?";
            p = e + 2;
            continue;
        }
        int closing = p[1] == '/';
        const char *n = p + 1 + closing;
        size_t nl = 0;
        while (isalnum((unsigned char)n[nl]) || n[nl] == '-' || n[nl] == ':' || n[nl] == '_')
            nl++;
        if (!nl || nl >= 32)
            return "bad tag name";
        const char *q = n + nl;
        while (*q && *q != '>') { /* attributes: name="value" */
            if (*q == '"') {
                const char *e = strchr(q + 1, '"');
                if (!e)
                    return "unterminated attribute";
                if (memchr(q + 1, '<', (size_t)(e - q - 1)))
                    return "'<' in an attribute";
                q = e + 1;
                continue;
            }
            if (*q == '=' && q[1] != '"')
                return "unquoted attribute";
            q++;
        }
        if (!*q)
            return "unterminated tag";
        int self = q[-1] == '/';
        if (closing) {
            if (!depth || strncmp(stack[depth - 1], n, nl) || stack[depth - 1][nl]) {
                snprintf(why, sizeof why, "mismatched </%.*s>", (int)nl, n);
                return why;
            }
            depth--;
        } else if (!self) {
            if (depth == 0)
                roots++;
            if (depth >= 64)
                return "too deep";
            memcpy(stack[depth], n, nl);
            stack[depth][nl] = 0;
            depth++;
        } else if (depth == 0) {
            roots++;
        }
        p = q + 1;
    }
    if (depth)
        return "unclosed element";
    if (roots != 1)
        return "not exactly one root element";
    return NULL;
}

static char *g_dir, *g_gguf;

/* One small GGUF for the end-to-end benches: stories-llama256 converted to F16. */
static void setup_model(void)
{
    g_dir = tu_tmpdir("bench");
    g_gguf = tu_path(g_dir, "m.gguf");
    const char *args[] = {"convert", tu_model("stories-llama256"), "-o", g_gguf, "--outtype", "f16", NULL};
    char *out = NULL, *err = NULL;
    int rc = tu_run_slm(&out, &err, args);
    cr_assert_eq(rc, 0, "convert: %s", err ? err : "");
    free(out);
    free(err);
}
static void teardown_model(void)
{
    tu_rmtree(g_dir);
    free(g_dir);
    free(g_gguf);
}

static char *bench_out(const char *fmt)
{
    const char *args[] = {"bench", "-m", g_gguf, "-p", "16", "-n", "4", "-pg", "8,4", "-t", "1", "-r", "2", "-o", fmt,
                          NULL};
    char *out = NULL, *err = NULL;
    int rc = tu_run_slm(&out, &err, args);
    cr_assert_eq(rc, 0, "bench -o %s: %s", fmt, err ? err : "");
    free(err);
    cr_assert_not_null(out);
    return out;
}

static void check_row(const cJSON *o, const char *test, int n_tokens)
{
    cr_assert_str_eq(cJSON_GetObjectItem(o, "test")->valuestring, test);
    static const char *str_fields[] = {"build_commit", "cpu_info", "kernel", "model_filename", "model_type"};
    for (size_t i = 0; i < sizeof str_fields / sizeof str_fields[0]; i++)
        cr_assert(cJSON_IsString(cJSON_GetObjectItem(o, str_fields[i])), "field %s", str_fields[i]);
    cr_assert_not_null(strstr(cJSON_GetObjectItem(o, "model_type")->valuestring, "llama"));
    static const char *num_fields[] = {"model_size", "model_n_params", "n_threads", "avg_ns", "stddev_ns", "avg_ts",
                                       "stddev_ts", "load_ms", "peak_rss_kb"};
    for (size_t i = 0; i < sizeof num_fields / sizeof num_fields[0]; i++)
        cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(o, num_fields[i])), "field %s", num_fields[i]);
    cr_assert_gt(cJSON_GetObjectItem(o, "model_size")->valuedouble, 1e6);
    cr_assert_gt(cJSON_GetObjectItem(o, "model_n_params")->valuedouble, 1e6);
    cr_assert_gt(cJSON_GetObjectItem(o, "peak_rss_kb")->valuedouble, 0);
    const cJSON *ns = cJSON_GetObjectItem(o, "samples_ns"), *ts = cJSON_GetObjectItem(o, "samples_ts");
    cr_assert_eq(cJSON_GetArraySize(ns), 2);
    cr_assert_eq(cJSON_GetArraySize(ts), 2);
    /* llama-bench's definitions: t/s per run = tokens / time; avg_ts their mean */
    double mean = 0;
    for (int i = 0; i < 2; i++) {
        double t = n_tokens * 1e9 / cJSON_GetArrayItem(ns, i)->valuedouble;
        cr_assert(fabs(t - cJSON_GetArrayItem(ts, i)->valuedouble) <= 1e-3 * t);
        mean += t / 2;
    }
    double avg = cJSON_GetObjectItem(o, "avg_ts")->valuedouble;
    cr_assert(fabs(avg - mean) <= 1e-3 * mean, "avg_ts %g vs mean %g", avg, mean);
}

TestSuite(bench, .init = setup_model, .fini = teardown_model, .timeout = 120);

Test(bench, json_and_jsonl_fields)
{
    char *out = bench_out("json");
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "invalid JSON:\n%s", out);
    cr_assert(cJSON_IsArray(j));
    cr_assert_eq(cJSON_GetArraySize(j), 3);
    check_row(cJSON_GetArrayItem(j, 0), "pp16", 16);
    check_row(cJSON_GetArrayItem(j, 1), "tg4", 4);
    check_row(cJSON_GetArrayItem(j, 2), "pp8+tg4", 12);
    cJSON_Delete(j);
    free(out);

    out = bench_out("jsonl");
    cr_assert_eq(tu_count_lines(out), 3);
    char *save = NULL, *line = strtok_r(out, "\n", &save);
    for (int i = 0; i < 3; i++, line = strtok_r(NULL, "\n", &save)) {
        cr_assert_not_null(line);
        cJSON *o = cJSON_Parse(line);
        cr_assert_not_null(o, "invalid JSONL line %d", i);
        check_row(o, i == 0 ? "pp16" : i == 1 ? "tg4" : "pp8+tg4", i == 0 ? 16 : i == 1 ? 4 : 12);
        cJSON_Delete(o);
    }
    free(out);
}

static int count_fields(const char *line) /* CSV fields, quotes respected */
{
    int n = 1, q = 0;
    for (const char *p = line; *p && *p != '\n'; p++) {
        if (*p == '"')
            q = !q;
        else if (*p == ',' && !q)
            n++;
    }
    return n;
}

Test(bench, csv_sql_md_svg)
{
    char *out = bench_out("csv");
    cr_assert_eq(tu_count_lines(out), 4);
    int cols = count_fields(out);
    cr_assert_geq(cols, 15);
    cr_assert_not_null(strstr(out, "avg_ts"));
    for (const char *p = strchr(out, '\n'); p && p[1]; p = strchr(p + 1, '\n'))
        cr_assert_eq(count_fields(p + 1), cols, "row with another column count: %s", p + 1);
    free(out);

    out = bench_out("sql");
    cr_assert_not_null(strstr(out, "CREATE TABLE"));
    int inserts = 0;
    for (const char *p = out; (p = strstr(p, "INSERT INTO")); p++)
        inserts++;
    cr_assert_eq(inserts, 3);
    free(out);

    out = bench_out("md");
    cr_assert_not_null(strstr(out, "| model |"));
    cr_assert_not_null(strstr(out, "| pp16 |"));
    cr_assert_not_null(strstr(out, "| tg4 |"));
    free(out);

    out = bench_out("svg");
    const char *why = xml_check(out);
    cr_assert_null(why, "SVG not well-formed: %s", why);
    cr_assert_not_null(strstr(out, "<svg"));
    cr_assert_not_null(strstr(out, "id=\"y-label\""));
    cr_assert_not_null(strstr(out, "t/s"));
    free(out);
}

/* The cache types are columns of every row format, as llama-bench's type_k / type_v. */
Test(bench, cache_types_in_csv_and_sql)
{
    const char *args[] = {"bench", "-m", g_gguf, "-p", "8", "-n", "0", "-t", "1", "-r", "1", "-ctk", "f16", "-ctv",
                          "bf16", "-o", "csv", NULL};
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_run_slm(&out, &err, args), 0, "bench -o csv -ctk f16: %s", err);
    cr_assert_not_null(strstr(out, ",n_threads,type_k,type_v,n_prompt,"), "csv header: %s", out);
    cr_assert_not_null(strstr(out, ",1,f16,bf16,8,0,pp8,"), "csv row: %s", out);
    free(out), free(err);
    args[16] = "sql";
    cr_assert_eq(tu_run_slm(&out, &err, args), 0, "bench -o sql -ctk f16: %s", err);
    cr_assert_not_null(strstr(out, "type_k TEXT, type_v TEXT"), "sql table: %s", out);
    cr_assert_not_null(strstr(out, ", 1, 'f16', 'bf16', 8, 0, 'pp8',"), "sql row: %s", out);
    free(out), free(err);
}

Test(bench, bad_arguments)
{
    const char *a1[] = {"bench", "-m", g_gguf, "-o", "xml", NULL};
    const char *a2[] = {"bench", "-m", "/nonexistent.gguf", "-n", "1", "-p", "0", NULL};
    const char *a3[] = {"bench", "kernels", "--types", "q9_9", NULL};
    const char *a4[] = {"bench", "kernels", "--kernel", "gpu", NULL};
    const char *a5[] = {"bench", "-m", g_gguf, "-t", "0", NULL};
    char *out, *err;
    cr_assert_eq(tu_run_slm(&out, &err, a1), 2);
    free(out), free(err);
    /* a clean refusal: exit 4 (I/O) with the one-line message naming the file, never a crash */
    cr_assert_eq(tu_run_slm(&out, &err, a2), SLM_EIO, "exit code (want 4): %s", err ? err : "");
    cr_assert(err && strstr(err, "error") && strstr(err, "/nonexistent.gguf"), "stderr: %s", err ? err : "");
    cr_assert_eq(tu_count_lines(err), 1, "stderr: %s", err);
    free(out), free(err);
    cr_assert_eq(tu_run_slm(&out, &err, a3), 2);
    free(out), free(err);
    cr_assert_eq(tu_run_slm(&out, &err, a4), 2);
    free(out), free(err);
    cr_assert_eq(tu_run_slm(&out, &err, a5), 2);
    free(out), free(err);
}

/* The kernel bench: every (type, op, kernel) row, finite speeds, results close to
 * the float reference (quantized activations: ~1 %), the roofline measured. */
Test(bench, kernels_json)
{
    const char *args[] = {"bench", "kernels", "--types", "q4_0,q8_0,q6_K,f16", "--shapes", "64x512", "--seconds", "0",
                          "-b", "4", "-o", "json", NULL};
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_run_slm(&out, &err, args), 0, "%s", err ? err : "");
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "invalid JSON");
    const cJSON *roof = cJSON_GetObjectItem(j, "roofline");
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(roof, "read_gbs")), "roofline.read_gbs missing");
    cr_assert(isfinite(cJSON_GetObjectItem(roof, "read_gbs")->valuedouble));
    const cJSON *res = cJSON_GetObjectItem(j, "results"), *o;
    int nk = 0;
    for (int k = 0; k < 3; k++)
        nk += slm_cpu_has(k);
    cr_assert_eq(cJSON_GetArraySize(res), 4 * 2 * (nk + 1));
    cJSON_ArrayForEach(o, res) {
        const char *type = cJSON_GetObjectItem(o, "type")->valuestring;
        double gbs = cJSON_GetObjectItem(o, "gbs")->valuedouble, err_rel = cJSON_GetObjectItem(o, "max_rel_err")->valuedouble;
        cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(o, "gbs")) && isfinite(gbs), "%s gbs %g", type, gbs);
        cr_assert_lt(err_rel, 0.05, "%s %s %s: relative error %g", type, cJSON_GetObjectItem(o, "kernel")->valuestring,
                     cJSON_GetObjectItem(o, "op")->valuestring, err_rel);
    }
    cJSON_Delete(j);
    free(out);
    free(err);
}

/* slm compare on stories-llama256, 2 types x 2 chunks: the table, JSON with the
 * quality ordering that must hold (Q8_0 closer to the base than Q4_0, and bigger),
 * a valid SVG with labelled axes and the Pareto front, and a resumed second run
 * that measures nothing and prints the same quality numbers. */
Test(bench, compare_table_json_svg_resume)
{
    char *wd = tu_path(g_dir, "cmp"), *svg = tu_path(g_dir, "cmp.svg");
    const char *args[] = {"compare", tu_model("stories-llama256"), "-f", tu_corpus("tinystories-eval.txt"), "--types",
                          "Q8_0,Q4_0", "--chunks", "2", "-d", wd, "-t", "1", "-p", "16", "-n", "4", "--svg", svg, NULL};
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_run_slm(&out, &err, args), 0, "%s", err ? err : "");
    cr_assert_not_null(strstr(out, "| type |"));
    cr_assert_not_null(strstr(out, "| base |"));
    cr_assert_not_null(strstr(out, "| Q8_0 |"));
    cr_assert_not_null(strstr(out, "| Q4_0 |"));
    free(out), free(err);

    size_t n;
    char *s = tu_read_file(svg, &n);
    cr_assert_not_null(s);
    const char *why = xml_check(s);
    cr_assert_null(why, "SVG not well-formed: %s", why);
    cr_assert_not_null(strstr(s, "bits per weight"));
    cr_assert_not_null(strstr(s, "KL-divergence"));
    cr_assert_not_null(strstr(s, "pareto-front"));
    free(s);

    const char *args2[] = {"compare", tu_model("stories-llama256"), "-f", tu_corpus("tinystories-eval.txt"), "--types",
                           "Q8_0,Q4_0", "--chunks", "2", "-d", wd, "-t", "1", "-p", "16", "-n", "4", "-o", "json", NULL};
    cr_assert_eq(tu_run_slm(&out, &err, args2), 0, "%s", err ? err : "");
    cr_assert_not_null(strstr(err, "Q8_0: already measured"));
    cr_assert_not_null(strstr(err, "Q4_0: already measured"));
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j);
    cr_assert_eq(cJSON_GetArraySize(j), 3);
    const cJSON *base = cJSON_GetArrayItem(j, 0), *q8 = cJSON_GetArrayItem(j, 1), *q4 = cJSON_GetArrayItem(j, 2);
    cr_assert_str_eq(cJSON_GetObjectItem(base, "type")->valuestring, "base");
    double kq8 = cJSON_GetObjectItem(q8, "kld_mean")->valuedouble, kq4 = cJSON_GetObjectItem(q4, "kld_mean")->valuedouble;
    cr_assert(kq8 > 0 && kq8 < kq4, "KLD Q8_0 %g, Q4_0 %g", kq8, kq4);
    double b8 = cJSON_GetObjectItem(q8, "bpw")->valuedouble, b4 = cJSON_GetObjectItem(q4, "bpw")->valuedouble;
    cr_assert(b8 > 8 && b8 < 9 && b4 > 4 && b4 < b8, "bits/weight Q8_0 %g, Q4_0 %g", b8, b4);
    cr_assert_eq(cJSON_GetObjectItem(base, "kld_mean")->valuedouble, 0);
    /* both are on the front (smaller and better trade places) */
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(q8, "pareto")) && cJSON_IsTrue(cJSON_GetObjectItem(q4, "pareto")));
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(q4, "tg_ts")), "tg_ts missing");
    cJSON_Delete(j);
    free(out), free(err), free(wd), free(svg);
}

Test(bench, svg_escapes_and_pareto)
{
    bench_point pts[] = {{1, 5, "a<b"}, {2, 3, "c&d"}, {3, 4, "dominated \"e\""}, {4, 1, "f"}, {2, 3.5, "g"}};
    int idx[5];
    int nf = bench_pareto(pts, 5, idx);
    cr_assert_eq(nf, 3);
    cr_assert_eq(idx[0], 0);
    cr_assert_eq(idx[1], 1);
    cr_assert_eq(idx[2], 3);
    char *s = bench_svg_scatter("t <1>", "x & y", "z", pts, 5, 1, 1);
    cr_assert_not_null(s);
    const char *why = xml_check(s);
    cr_assert_null(why, "%s", why);
    cr_assert_not_null(strstr(s, "a&lt;b"));
    cr_assert_not_null(strstr(s, "x &amp; y"));
    free(s);
    s = bench_svg_bars("bars", "t/s", pts, 5);
    cr_assert_null(xml_check(s));
    free(s);
    cr_assert_not_null(xml_check("<a><b></a></b>"));  /* the checker can fail */
    cr_assert_not_null(xml_check("<a x=1></a>"));
}

/* The decode fast paths (x8 repacked weights of Q4_0 .. Q8_0 and Q2_K .. Q6_K, multi-row
 * kernels, AVX-512 F16) inside a whole model: logits of a quantized stories-llama256
 * decoded token by token with the best kernel agree with the scalar kernels (no
 * repacking) up to float summation order (and the activation roundings it can flip); a
 * batch of 8 (int8 GEMM, on the repacked copy where there is one) agrees with the
 * token-by-token decode the same way; F16 to 1e-3 (decode: activations rounded to F16). */
#include "runtime.h"
static void decode_logits(const char *path, int kernel, int batch, float *out, int n_out)
{
    int was = slm_kernel_active();
    slm_kernel_force(kernel);
    slm_model *m;
    slm_ctx *c;
    slm_err err = {0};
    cr_assert_eq(slm_model_load(path, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(slm_ctx_new(m, 64, 16, 2, &c, &err), 0, "%s", err.msg);
    int32_t toks[8] = {1, 400, 22, 100, 7, 300, 200, 55};
    int nv = slm_ctx_n_vocab(c);
    cr_assert_leq(nv * 8, n_out);
    if (batch) {
        cr_assert_eq(slm_decode(c, toks, 8, 1, &err), 0, "%s", err.msg);
        for (int t = 0; t < 8; t++)
            memcpy(out + (size_t)t * nv, slm_ctx_logits(c, t), sizeof(float) * nv);
    } else {
        for (int t = 0; t < 8; t++) {
            cr_assert_eq(slm_decode(c, &toks[t], 1, 0, &err), 0, "%s", err.msg);
            memcpy(out + (size_t)t * nv, slm_ctx_logits(c, 0), sizeof(float) * nv);
        }
    }
    slm_ctx_free(c);
    slm_model_free(m);
    slm_kernel_force(was);
}

Test(bench, fast_decode_paths_match_scalar_in_a_model, .timeout = 180)
{
    static const char *types[] = {"Q4_0", "Q5_0", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "F16",
                                  "IQ4_NL", "IQ4_XS", "IQ3_S", "TQ2_0", "Q4_1", "Q5_1"};
    static const uint32_t ids[] = {2, 6, 8, 10, 11, 12, 13, 14, 1, 20, 23, 21, 35, 3, 7};
    enum { CAP = 8 * 40000 };
    /* without AVX-512 both sides would run the scalar kernels: a comparison that cannot fail */
    if (!slm_cpu_has(SLM_KERNEL_AVX512))
        cr_skip_test("SKIPPED: no AVX-512 on this CPU: the fast decode paths cannot be compared with scalar here");
    float *a = malloc(sizeof(float) * CAP), *b = malloc(sizeof(float) * CAP);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        char name[32];
        snprintf(name, sizeof name, "m-%s.gguf", types[k]);
        char *q = tu_path(g_dir, name);
        if (strcmp(types[k], "F16")) {
            const char *args[] = {"quantize", g_gguf, q, types[k], "--pure", NULL};
            char *out = NULL, *err = NULL;
            int rc = tu_run_slm(&out, &err, args);
            cr_assert_eq(rc, 0, "quantize %s: %s", types[k], err ? err : "");
            free(out), free(err);
        } else {
            free(q);
            q = strdup(g_gguf);
        }
        int quant = strcmp(types[k], "F16") != 0, x8 = slm_gemm_kernel(ids[k], SLM_KERNEL_AVX512) != NULL;
        for (int batch = 0; batch < 2; batch++) {
            decode_logits(q, SLM_KERNEL_AVX512, batch, a, CAP);
            /* quantized: the batch (int8 GEMM on quantized activations, as llama.cpp)
             * against the token-by-token decode; else against the scalar kernels */
            decode_logits(q, x8 && batch ? SLM_KERNEL_AVX512 : SLM_KERNEL_SCALAR, x8 ? 0 : batch, b, CAP);
            slm_model *m;
            slm_err err = {0};
            cr_assert_eq(slm_model_load(q, &m, &err), 0);
            int nv = slm_model_hparams(m)->n_vocab;
            slm_model_free(m);
            for (int t = 0; t < 8; t++) {
                double mx = 0, md = 0;
                for (int i = 0; i < nv; i++) {
                    mx = fmax(mx, fabs(b[(size_t)t * nv + i]));
                    md = fmax(md, fabs((double)a[(size_t)t * nv + i] - b[(size_t)t * nv + i]));
                }
                /* quantized activations: a float-order difference can flip one activation's
                 * rounding in a later layer, so allow 2 % of the largest logit (a layout or
                 * kernel bug gives errors of the order of the logits themselves) */
                /* F16 decode on AVX-512 rounds the activations to F16 (2^-11 relative) */
                double tol = quant && (x8 || !batch) ? 2e-2 : !quant && !batch ? 1e-3 : 1e-4;
                cr_assert(md <= tol * mx, "%s %s token %d: max |diff| %g, max |logit| %g", types[k],
                          batch ? "batch" : "decode", t, md, mx);
            }
        }
        free(q);
    }
    free(a);
    free(b);
}

/* The K-quant x8 decode inside slm_matmul_packed (what a model context does): one
 * token, rows split over 1..3 threads (48 and 80 rows: slices of 16 / 32 rows, a
 * remainder slice), equal to the float reference within the quantized-activation
 * error and bit-identical whatever the thread count (each group is one kernel call). */
#include "rt_internal.h" /* slm_matmul_ref: the scalar float reference */
Test(bench, decode_x8_kquants_threads)
{
    static const uint32_t types[] = {10, 11, 12, 13, 14};
    enum { N = 512 };
    float *src = malloc(sizeof(float) * N * 80), *x = malloc(sizeof(float) * N);
    float out[3][80], ref[80];
    unsigned char *q = malloc((size_t)N * 80 * 2);
    uint64_t st = 5;
    for (int i = 0; i < N * 80; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        src[i] = ((float)(st >> 40) / (float)(1 << 24) - 0.5f) * (i % 97 == 0 ? 8.f : 1.f);
    }
    for (int i = 0; i < N; i++) x[i] = sinf(0.37f * (float)i) + 0.1f;
    int was = slm_kernel_active();
    slm_kernel_force(SLM_KERNEL_AVX512);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
        for (int rows = 48; rows <= 80; rows += 32) {
            size_t rb = slm_row_bytes(types[k], N);
            cr_assert_eq(slm_quantize_rows(types[k], src, q, rows, N, NULL), rb * rows);
            gguf_tensor W = {.name = "w", .type = types[k], .n_dims = 2, .ne = {N, rows, 1, 1},
                             .n_elems = (uint64_t)N * rows, .nbytes = rb * rows, .data = q};
            void *packed = slm_matmul_pack(&W);
            if (slm_kernel_active() == SLM_KERNEL_AVX512)
                cr_assert_not_null(packed, "type %u: no x8 copy", types[k]);
            slm_matmul_ref(ref, &W, x, 1);
            double mx = 0;
            for (int r = 0; r < rows; r++) mx = fmax(mx, fabs(ref[r]));
            for (int nt = 1; nt <= 3; nt++) {
                slm_pool *pool;
                slm_err err = {0};
                cr_assert_eq(slm_pool_new(nt, &pool, &err), 0);
                slm_matmul_packed(pool, out[nt - 1], &W, packed, x, 1);
                slm_pool_free(pool);
                for (int r = 0; r < rows; r++) {
                    cr_assert(fabs(out[nt - 1][r] - ref[r]) <= 2e-2 * mx, "type %u rows %d threads %d row %d: %g vs %g",
                              types[k], rows, nt, r, out[nt - 1][r], ref[r]);
                    cr_assert_eq(out[nt - 1][r], out[0][r], "type %u: thread count changed row %d", types[k], r);
                }
            }
            free(packed);
        }
    slm_kernel_force(was);
    free(src);
    free(x);
    free(q);
}

/* The read roofline with 2 threads: both read (n_threads 2), the median step is no
 * better than the best step, both positive; a bad thread count is refused. */
Test(bench, decode_roofline_two_threads)
{
    bench_roofline r;
    slm_err err = {0};
    cr_assert_eq(bench_roofline_measure(2, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.n_threads, 2);
    /* values, not speed (speed lives in `make bench`): finite, and the best step is no worse
     * than the median one */
    cr_assert(isfinite(r.read_gbs) && isfinite(r.read_gbs_best), "read %g, best %g", r.read_gbs, r.read_gbs_best);
    cr_assert_geq(r.read_gbs_best, r.read_gbs);
    cr_assert_neq(bench_roofline_measure(0, &r, &err), 0);
}

/* The kernel self-check (slm bench kernels --check, the harness of the emulated aarch64
 * runs) passes for every set this CPU runs, checks something for every type, and
 * refuses a set the CPU cannot run; SLM_KERNEL naming such a set is refused by the CLI. */
static int g_check_failed;
static void check_cb(void *ctx, int kernel, const char *check, int ok, const char *detail)
{
    (void)ctx;
    if (!ok) {
        g_check_failed++;
        cr_log_error("%s %s: %s", slm_kernel_name(kernel), check, detail);
    }
}
Test(bench, kernels_self_check)
{
    int sets = 0;
    for (int k = 1; k < SLM_KERNEL_COUNT; k++) {
        slm_err err = {0};
        int pass = 0, fail = 0;
        if (!slm_cpu_has(k)) {
            cr_assert_neq(bench_kernels_check(k, check_cb, NULL, &pass, &fail, &err), 0);
            cr_assert_eq(pass + fail, 0);
            continue;
        }
        sets++;
        cr_assert_eq(bench_kernels_check(k, check_cb, NULL, &pass, &fail, &err), 0, "%s", err.msg);
        cr_assert_eq(fail, 0, "%s: %d checks failed", slm_kernel_name(k), fail);
        cr_assert_geq(pass, 12 * 5, "%s: only %d checks", slm_kernel_name(k), pass);
    }
    cr_assert_eq(g_check_failed, 0);
    if (!sets)
        cr_log_warn("no SIMD kernel set on this CPU: only the refusal was checked");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s bench kernels --check > /dev/null", tu_slm_bin());
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "SLM_KERNEL=no-such-set %s --version > /dev/null 2>&1", tu_slm_bin());
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
}

/* ---- bench/run.c as a library: its output only through the emit callback -------------------- */

typedef struct emit_buf {
    char s[65536];
    size_t n;
    int starts;
} emit_buf;

static void emit_collect(void *user, const char *text)
{
    emit_buf *b = user;
    size_t l = strlen(text);
    cr_assert_lt(b->n + l, sizeof b->s, "more output than expected");
    memcpy(b->s + b->n, text, l + 1);
    b->n += l;
}

static void on_start(void *user, const char *model, int n_threads, const char *test, int reps)
{
    emit_buf *b = user;
    cr_assert_str_eq(model, g_gguf);
    cr_assert_eq(n_threads, 1);
    cr_assert_str_eq(test, "tg2");
    cr_assert_eq(reps, 1);
    b->starts++;
}

/* Run fn with this process's stdout and stderr going to a file; returns what was written there. */
static char *captured(void (*fn)(void *), void *arg)
{
    char *p = tu_path(g_dir, "captured.txt");
    fflush(stdout), fflush(stderr);
    int o = dup(1), e = dup(2), f = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(o >= 0 && e >= 0 && f >= 0);
    dup2(f, 1), dup2(f, 2);
    fn(arg);
    fflush(stdout), fflush(stderr);
    dup2(o, 1), dup2(e, 2);
    close(o), close(e), close(f);
    char *s = tu_read_file(p, NULL);
    free(p);
    return s;
}

typedef struct lib_calls {
    int rc_lists[3], rc_table, rc_models, rc_missing, rc_check, n_fail;
    slm_err err_lists[3], err_missing;
    bench_kernels_spec spec;
    emit_buf table, models, missing, check;
} lib_calls;

static void call_bench_library(void *arg)
{
    lib_calls *c = arg;
    bench_kernels_spec bad;
    c->rc_lists[0] = bench_kernels_parse("q4_0,q9_9", NULL, NULL, &bad, &c->err_lists[0]);
    c->rc_lists[1] = bench_kernels_parse("q4_0", "gpu", NULL, &bad, &c->err_lists[1]);
    c->rc_lists[2] = bench_kernels_parse("q4_0", "scalar", "64y256", &bad, &c->err_lists[2]);
    slm_err err = {0};
    cr_assert_eq(bench_kernels_parse("q4_0,f16", "scalar,blas", "64x256", &c->spec, &err), 0, "%s", err.msg);
    bench_kernels_opts ko = {.threads = 1, .batch = 4, .matvec = 1, .matmul = 0, .seconds = 0, .fmt = "csv",
                             .build = "test-build"};
    c->rc_table = bench_kernels_table(&c->spec, &ko, emit_collect, &c->table, &err);
    c->rc_check = bench_kernels_selfcheck(&c->spec, 0, emit_collect, &c->check, &c->n_fail, &err);
    const char *models[] = {g_gguf}, *missing[] = {"/nonexistent.gguf"};
    bench_e2e_test tests[] = {{.n_gen = 2}};
    int threads[] = {1};
    bench_models_opts mo = {.models = models, .n_models = 1, .tests = tests, .n_tests = 1, .threads = threads,
                            .n_threads = 1, .reps = 1, .fmt = "md", .build = "test-build", .emit = emit_collect,
                            .start = on_start, .user = &c->models};
    c->rc_models = bench_models_run(&mo, &err);
    mo.models = missing;
    mo.start = NULL;
    mo.user = &c->missing;
    c->rc_missing = bench_models_run(&mo, &c->err_missing);
}

Test(bench, run_library_emits_only_through_its_callback)
{
    lib_calls *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    char *printed = captured(call_bench_library, c);
    cr_assert(printed && !*printed, "bench/ printed: %s", printed ? printed : "(nothing readable)");
    free(printed);
    /* the lists: usage errors naming the option and the value */
    static const char *const names[3][2] = {{"--types", "q9_9"}, {"--kernel", "gpu"}, {"--shapes", "64y256"}};
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(c->rc_lists[k], SLM_EUSAGE);
        cr_assert(strstr(c->err_lists[k].msg, names[k][0]) && strstr(c->err_lists[k].msg, names[k][1]), "%s",
                  c->err_lists[k].msg);
    }
    cr_assert(c->spec.n_types == 2 && c->spec.n_kernels == 2 && c->spec.kernels[1] == BENCH_KERNEL_BLAS);
    cr_assert(c->spec.n_shapes == 1 && c->spec.shapes[0][0] == 64 && c->spec.shapes[0][1] == 256);
    /* the table: the CSV header, then 2 types x matvec x 2 kernels */
    cr_assert_eq(c->rc_table, 0);
    cr_assert_eq(tu_count_lines(c->table.s), 5, "%s", c->table.s);
    cr_assert_not_null(strstr(c->table.s, "\nq4_0,64,256,1,scalar,1,"), "%s", c->table.s);
    cr_assert_not_null(strstr(c->table.s, "\nf16,64,256,1,blas,1,"), "%s", c->table.s);
    /* the self-check of scalar and blas: nothing to compare, only the header and the total */
    cr_assert_eq(c->rc_check, 0);
    cr_assert_eq(c->n_fail, 0);
    cr_assert_eq(tu_count_lines(c->check.s), 2, "%s", c->check.s);
    cr_assert_not_null(strstr(c->check.s, "\n0 passed, 0 failed\n"), "%s", c->check.s);
    /* the model test: the start callback, the table row, the footer with the build */
    cr_assert_eq(c->rc_models, 0);
    cr_assert_eq(c->models.starts, 1);
    cr_assert(!strncmp(c->models.s, "| model |", 9), "%s", c->models.s);
    cr_assert_not_null(strstr(c->models.s, "| tg2 |"), "%s", c->models.s);
    cr_assert_not_null(strstr(c->models.s, "\nbuild: test-build; cpu: "), "%s", c->models.s);
    /* a model that cannot be loaded: its status and message, nothing emitted */
    cr_assert_eq(c->rc_missing, SLM_EIO);
    cr_assert_not_null(strstr(c->err_missing.msg, "/nonexistent.gguf"), "%s", c->err_missing.msg);
    cr_assert_eq(c->missing.n, 0, "%s", c->missing.s);
    free(c);
}
