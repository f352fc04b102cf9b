/* tools/compare.c — `slm compare`: the quantization sweep an ML engineer runs.
 * For each type: quantize (slm quantize), measure file size and bits per weight,
 * perplexity and KL-divergence against the base (slm perplexity), prompt and
 * generation speed (in process, bench/); then one table and an SVG chart of
 * quality vs size with the Pareto front marked.
 *
 * The steps run as child processes of this same binary (so each is exactly what
 * the corresponding command does) with their output in the work directory.
 * Resumable: every finished row is appended to DIR/results.jsonl with the settings
 * it was measured with; a rerun with the same settings skips it. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "pipeline.h"

#define CMD "compare"

typedef struct compare_args {
    const char *eval, *types, *imatrix, *dir, *svg;
    int fmt, ctx, chunks, threads, pp, tg;
} compare_args;

static const char *const compare_fmts[] = {"md", "json", "csv", "svg", NULL};

static const slm_opt compare_opts[] = {
    OPT_PATH('f', "file", compare_args, eval, "EVAL.txt", "evaluation text (required)"),
    OPT_STRING(0, "types", compare_args, types, "LIST", "default Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q4_0,Q3_K_M,Q2_K"),
    OPT_PATH(0, "imatrix", compare_args, imatrix, "FILE", "importance matrix passed to slm quantize"),
    OPT_INT('c', "ctx", compare_args, ctx, "N", 8, 1 << 20, "perplexity chunk length (default 128)"),
    OPT_INT(0, "chunks", compare_args, chunks, "N", 1, 1 << 20, "perplexity chunks (default: all)"),
    OPT_INCLUDE(cli_threads_table, compare_args, threads),
    OPT_INT('p', "n-prompt", compare_args, pp, "N", 0, 1 << 16, "speed test: pp N tokens (default 64; 0 skips)"),
    OPT_INT('n', "n-gen", compare_args, tg, "N", 0, 1 << 16, "speed test: tg N tokens (default 32; 0 skips)"),
    OPT_DIR('d', "dir", compare_args, dir, "DIR", "work directory for the files and results (default compare-<model>)"),
    OPT_ENUM('o', "output", compare_args, fmt, "FMT", compare_fmts, "md (default) | json | csv | svg"),
    OPT_PATH(0, "svg", compare_args, svg, "FILE", "also write the chart (quality vs size, Pareto front) to FILE"),
    OPT_END(),
};

const slm_cmd_doc doc_compare = {
    .usage =
        "slm compare MODEL_DIR_OR_GGUF -f EVAL.txt [options]",
    .description =
        "Quantize a model to each type and measure, side by side: file size, bits per weight,\n"
        "perplexity, KL-divergence against the base (mean, 99th percentile, same top token),\n"
        "prompt (pp) and generation (tg) speed. A Hugging Face directory is first converted to\n"
        "an F32 GGUF, which is the base; a GGUF input is the base itself.\n",
    .opts = compare_opts,
    .notes =
        "Quality numbers are deterministic (same input, same numbers); speeds are measured.\n"
        "Rows already in DIR/results.jsonl with the same settings are not measured again.\n",
    .exit_codes =
        "0 ok, 2 usage, 3 bad input, 4 I/O, 6 internal.",
    .examples = "slm compare ./SmolLM-135M -f wiki.test.txt --types Q8_0,Q4_K_M,Q4_0 --svg chart.svg",
};

/* Append "slm CMD: KIND: MSG" to the log (what the step would have printed on stderr). */
static void log_line(const char *log, const char *cmd, const char *kind, const char *msg)
{
    FILE *f = fopen(log, "a");
    if (f) {
        fprintf(f, "slm %s: %s: %s\n", cmd, kind, msg);
        fclose(f);
    }
}

static void quant_note(void *user, int warning, const char *msg)
{
    log_line(user, "quantize", warning ? "warning" : "note", msg);
}

/* slm quantize BASE PATH TYPE -t THREADS [--imatrix FILE], as a call */
static int step_quantize(const char *base, const char *path, const char *type, int threads, const char *imatrix,
                         const char *log)
{
    slm_err err = {0};
    int ftype = slm_recipe_by_name(type);
    if (ftype < 0) {
        slm_err_set(&err, SLM_EUSAGE, "unknown quantization type '%s'", type);
        log_line(log, "quantize", "error", err.msg);
        return err.code;
    }
    slm_pl_quant_opts qo = {
        .in = base, .out = path, .ftype = ftype, .threads = threads, .ro = {0, -1, -1, NULL, 0}, .imatrix = imatrix,
        .go = {NULL, 512, 0, threads, 0, {0.01f, 128, 0}, 0, NULL, NULL}, .note = quant_note, .note_user = (void *)log,
    };
    slm_pl_quant_result res;
    int rc = slm_pl_quantize(&qo, &res, &err);
    if (rc)
        log_line(log, "quantize", "error", err.msg);
    else
        slm_pl_quant_result_free(&res);
    return rc;
}

/* slm perplexity -m PATH -c CTX [--chunks N] -t THREADS --kl-divergence-base KLD [--kl-divergence], as a call */
static int step_perplexity(const char *path, const char *text, size_t len, int ctx, int chunks, int threads,
                           const char *kld, int compare, slm_ppl_result *r, slm_kld_result *kr, const char *log)
{
    slm_err err = {0};
    slm_lm *m = NULL;
    int rc = slm_pl_load(path, &m, &err);
    if (!rc) {
        m->n_threads = threads;
        slm_ppl_params pp = {.n_ctx = ctx, .n_chunks = chunks, .kld_base_out = compare ? NULL : kld,
                             .kld_base_in = compare ? kld : NULL};
        memset(kr, 0, sizeof *kr);
        rc = slm_pl_perplexity(m, text, len, &pp, 0, r, compare ? kr : NULL, &err);
    }
    slm_lm_close(m);
    if (rc)
        log_line(log, "perplexity", "error", err.msg);
    return rc;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

typedef struct settings {
    char key[1024]; /* everything a row depends on */
} settings;

static int fail_step(const char *what, const char *log)
{
    return cli_fail(CMD, SLM_EINPUT, "%s failed (details in %s)", what, log);
}

/* Measure one model file: speed and size (in process; bench/report.c). */
static int measure_speed(const char *path, int threads, int pp, int tg, cJSON *row)
{
    slm_err err = {0};
    return bench_compare_speed(path, threads, pp, tg, row, &err) ? cli_fail_err(CMD, &err) : SLM_OK;
}

int cmd_compare(int argc, char **argv)
{
    compare_args a = {.types = "Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q4_0,Q3_K_M,Q2_K", .ctx = 128,
                      .threads = cli_default_threads(), .pp = 64, .tg = 32};
    int ai = slm_opt_parse(CMD, compare_opts, argc, argv, &a);
    if (ai < 0)
        return -ai;
    if (argc - ai > 1)
        return cli_usage(CMD, "unexpected argument '%s' (one model)", argv[ai + 1]);
    const char *model = ai < argc ? argv[ai] : NULL, *eval = a.eval, *types_s = a.types, *imatrix = a.imatrix,
               *dir = a.dir, *fmt = compare_fmts[a.fmt], *svg_path = a.svg;
    long long ctx = a.ctx, chunks = a.chunks, threads = a.threads, pp = a.pp, tg = a.tg;
    if (!model)
        return cli_usage(CMD, "MODEL_DIR_OR_GGUF is required");
    if (!eval)
        return cli_usage(CMD, "-f EVAL.txt is required");
    struct stat st;
    if (stat(model, &st) != 0)
        return cli_fail(CMD, SLM_EIO, "%s: %s", model, strerror(errno));
    int is_dir = S_ISDIR(st.st_mode);
    struct stat est;
    if (stat(eval, &est) != 0)
        return cli_fail(CMD, SLM_EIO, "%s: %s", eval, strerror(errno));
    if (imatrix && !file_exists(imatrix))
        return cli_fail(CMD, SLM_EIO, "%s: no such file", imatrix);

    /* the types: recipes llama-quantize knows */
    char tbuf[512], *types[32];
    int nt = 0;
    snprintf(tbuf, sizeof tbuf, "%s", types_s);
    for (char *sv = NULL, *tok = strtok_r(tbuf, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv)) {
        if (slm_recipe_by_name(tok) < 0)
            return cli_usage(CMD, "--types: unknown type '%s'", tok);
        if (nt >= 32)
            return cli_usage(CMD, "--types: too many types");
        types[nt++] = tok;
    }

    char dbuf[1024];
    if (!dir) {
        const char *b = strrchr(model, '/');
        b = b && b[1] ? b + 1 : model;
        snprintf(dbuf, sizeof dbuf, "compare-%s", b);
        size_t l = strlen(dbuf);
        while (l > 8 && dbuf[l - 1] == '/')
            dbuf[--l] = 0;
        dir = dbuf;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return cli_fail(CMD, SLM_EIO, "%s: cannot create: %s", dir, strerror(errno));
    char log[1200], results[1200], base[1200], kld[1200], out[1200];
    snprintf(log, sizeof log, "%s/log.txt", dir);
    snprintf(results, sizeof results, "%s/results.jsonl", dir);
    snprintf(kld, sizeof kld, "%s/base.kld", dir);
    snprintf(out, sizeof out, "%s/step.json", dir);
    char ctx_s[32], chunks_s[32], thr_s[32];
    snprintf(ctx_s, sizeof ctx_s, "%lld", ctx);
    snprintf(chunks_s, sizeof chunks_s, "%lld", chunks);
    snprintf(thr_s, sizeof thr_s, "%lld", threads);
    /* what every row depends on (not the thread count: the numbers do not) */
    char key[2048];
    snprintf(key, sizeof key, "model=%s|mtime=%lld|eval=%s|esize=%lld|emtime=%lld|c=%lld|chunks=%lld|imatrix=%s|pp=%lld|tg=%lld",
             model, (long long)st.st_mtime, eval, (long long)est.st_size, (long long)est.st_mtime, ctx, chunks,
             imatrix ? imatrix : "", pp, tg);

    /* previous rows */
    cJSON *rows = cJSON_CreateArray();
    FILE *rf = fopen(results, "r");
    if (rf) {
        char line[16384];
        while (fgets(line, sizeof line, rf)) {
            cJSON *o = cJSON_Parse(line);
            if (o && !strcmp(jstr(o, "key"), key))
                cJSON_AddItemToArray(rows, o);
            else
                cJSON_Delete(o);
        }
        fclose(rf);
    }

    /* base model */
    if (is_dir) {
        snprintf(base, sizeof base, "%s/base-f32.gguf", dir);
        if (!file_exists(base)) {
            fprintf(stderr, "compare: converting %s to F32\n", model);
            slm_err cerr = {0};
            slm_pl_convert_info ci;
            if (slm_pl_convert(model, base, SLM_TYPE_F32, (int)threads, NULL, NULL, &ci, &cerr)) {
                log_line(log, "convert", "error", cerr.msg);
                return fail_step("slm convert", log);
            }
        }
    } else {
        snprintf(base, sizeof base, "%s", model);
    }

    int n_total = nt + 1, rc = SLM_OK;
    char *eval_text = NULL;
    size_t eval_len = 0;
    for (int i = 0; i < n_total && rc == SLM_OK; i++) {
        const char *label = i == 0 ? "base" : types[i - 1];
        int have = 0;
        cJSON *o;
        cJSON_ArrayForEach(o, rows) have |= !strcasecmp(jstr(o, "type"), label);
        if (have && (i > 0 || file_exists(kld))) {
            fprintf(stderr, "compare: %s: already measured (skipped)\n", label);
            continue;
        }
        char path[1300];
        if (i == 0) {
            snprintf(path, sizeof path, "%s", base);
        } else {
            snprintf(path, sizeof path, "%s/model-%s.gguf", dir, label);
            fprintf(stderr, "compare: quantizing to %s\n", label);
            if (step_quantize(base, path, label, (int)threads, imatrix, log)) {
                rc = fail_step("slm quantize", log);
                break;
            }
        }
        fprintf(stderr, "compare: %s: perplexity%s\n", label, i ? " and KL-divergence" : " (base log-probabilities)");
        slm_ppl_result pr;
        slm_kld_result kr;
        if (!eval_text) {
            slm_err rerr = {0};
            if (slm_read_text_file(eval, (size_t)1 << 30, &eval_text, &eval_len, &rerr)) {
                log_line(log, "perplexity", "error", rerr.msg);
                rc = fail_step("slm perplexity", log);
                break;
            }
        }
        if (step_perplexity(path, eval_text, eval_len, (int)ctx, (int)chunks, (int)threads, kld, i > 0, &pr, &kr,
                            log)) {
            rc = fail_step("slm perplexity", log);
            break;
        }
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "key", key);
        cJSON_AddStringToObject(row, "type", label);
        cJSON_AddStringToObject(row, "path", path);
        struct stat fst;
        cJSON_AddNumberToObject(row, "file_bytes", stat(path, &fst) == 0 ? (double)fst.st_size : 0);
        cJSON_AddNumberToObject(row, "ppl", pr.ppl);
        cJSON_AddNumberToObject(row, "ppl_stderr", pr.ppl_stderr);
        cJSON_AddNumberToObject(row, "kld_mean", i > 0 ? kr.kld_mean : 0);
        cJSON_AddNumberToObject(row, "kld_p99", i > 0 ? kr.kld_p99 : 0);
        cJSON_AddNumberToObject(row, "same_top", i > 0 ? kr.same_top : 1);
        cJSON_AddNumberToObject(row, "ppl_ratio", i > 0 ? kr.ppl_ratio : 1);
        fprintf(stderr, "compare: %s: speed\n", label);
        rc = measure_speed(path, (int)threads, (int)pp, (int)tg, row);
        if (rc) {
            cJSON_Delete(row);
            break;
        }
        char *line = cJSON_PrintUnformatted(row);
        FILE *af = fopen(results, "a");
        if (!line || !af || fprintf(af, "%s\n", line) < 0 || fclose(af) != 0) {
            rc = cli_fail(CMD, SLM_EIO, "%s: cannot append the result", results);
            if (af && !line)
                fclose(af);
            free(line);
            cJSON_Delete(row);
            break;
        }
        free(line);
        /* the base row replaces an older one (the kld file was remade) */
        cJSON *old;
        int idx = 0, del = -1;
        cJSON_ArrayForEach(old, rows) {
            if (!strcasecmp(jstr(old, "type"), label))
                del = idx;
            idx++;
        }
        if (del >= 0)
            cJSON_DeleteItemFromArray(rows, del);
        cJSON_AddItemToArray(rows, row);
    }
    free(eval_text);
    if (rc) {
        cJSON_Delete(rows);
        return rc;
    }

    /* table in the order asked: base first */
    cJSON *ordered = cJSON_CreateArray();
    for (int i = 0; i < n_total; i++) {
        const char *label = i == 0 ? "base" : types[i - 1];
        cJSON *o;
        cJSON_ArrayForEach(o, rows) if (!strcasecmp(jstr(o, "type"), label))
        {
            cJSON_AddItemToArray(ordered, cJSON_Duplicate(o, 1));
            break;
        }
    }
    cJSON_Delete(rows);
    /* the table, JSON, CSV and chart: bench/report.c (the same writers as slm sweep merge) */
    char *svg = svg_path || !strcmp(fmt, "svg") ? bench_compare_format(ordered, "svg", (int)pp, (int)tg, NULL) : NULL;
    if (svg_path && svg) { /* temp file, fsync, rename: never a partial chart */
        slm_afile *af;
        slm_err err = {0};
        if (slm_afile_open(svg_path, &af, &err))
            rc = cli_fail_err(CMD, &err);
        else if (slm_afile_write(af, svg, strlen(svg), &err)) {
            slm_afile_abort(af);
            rc = cli_fail_err(CMD, &err);
        } else if (slm_afile_commit(af, &err))
            rc = cli_fail_err(CMD, &err);
    }
    char *text = rc == SLM_OK && strcmp(fmt, "svg") ? bench_compare_format(ordered, fmt, (int)pp, (int)tg, NULL) : NULL;
    if (rc == SLM_OK && !(strcmp(fmt, "svg") ? text : svg))
        rc = cli_fail(CMD, SLM_EINTERNAL, "out of memory");
    else if (rc == SLM_OK) {
        fputs(strcmp(fmt, "svg") ? text : svg, stdout);
        if (!strcmp(fmt, "md"))
            printf("\nbase: %s; eval: %s, -c %lld%s; files and results.jsonl in %s\n", base, eval, ctx,
                   chunks ? ", chunks limited" : "", dir);
    }
    free(text);
    free(svg);
    cJSON_Delete(ordered);
    return rc;
}
