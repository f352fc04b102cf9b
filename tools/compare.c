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
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "runtime.h"

#define CMD "compare"

const char help_compare[] =
    "usage: slm compare MODEL_DIR_OR_GGUF -f EVAL.txt [options]\n"
    "\n"
    "Quantize a model to each type and measure, side by side: file size, bits per weight,\n"
    "perplexity, KL-divergence against the base (mean, 99th percentile, same top token),\n"
    "prompt (pp) and generation (tg) speed. A Hugging Face directory is first converted to\n"
    "an F32 GGUF, which is the base; a GGUF input is the base itself.\n"
    "\n"
    "options:\n"
    "  -f, --file EVAL.txt   evaluation text (required)\n"
    "      --types LIST      default Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q4_0,Q3_K_M,Q2_K\n"
    "      --imatrix FILE    importance matrix passed to slm quantize\n"
    "  -c, --ctx N           perplexity chunk length (default 128)\n"
    "      --chunks N        perplexity chunks (default: all)\n"
    "  -t, --threads N       threads (default: physical cores)\n"
    "  -p N, -n N            speed tests: pp N and tg N tokens (default 64 and 32; 0 skips)\n"
    "  -d, --dir DIR         work directory for the files and results (default compare-<model>)\n"
    "  -o, --output FMT      md (default) | json | csv | svg\n"
    "      --svg FILE        also write the chart (quality vs size, Pareto front) to FILE\n"
    "\n"
    "Quality numbers are deterministic (same input, same numbers); speeds are measured.\n"
    "Rows already in DIR/results.jsonl with the same settings are not measured again.\n"
    "Exit codes: 0 ok, 2 usage, 3 bad input, 4 I/O, 6 internal.\n";

/* Run this binary with args; stdout to out_path (or /dev/null), stderr appended to log_path. */
static int run_self(char *const *args, const char *out_path, const char *log_path)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int o = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int l = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (o < 0 || l < 0)
            _exit(127);
        dup2(o, 1);
        dup2(l, 2);
        execv("/proc/self/exe", args);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static cJSON *read_json_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return cJSON_Parse(buf);
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
    const char *model = NULL, *eval = NULL, *types_s = "Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q4_0,Q3_K_M,Q2_K", *imatrix = NULL,
               *dir = NULL, *fmt = "md", *svg_path = NULL;
    long long ctx = 128, chunks = 0, threads = cli_default_threads(), pp = 64, tg = 32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(s, l) (!strcmp(a, s) || !strcmp(a, l))
        if (a[0] != '-') {
            if (model)
                return cli_usage(CMD, "unexpected argument '%s' (one model)", a);
            model = a;
            continue;
        }
        if (!v)
            return cli_usage(CMD, "option '%s' needs a value (or is unknown)", a);
        i++;
        if (OPT("-f", "--file"))
            eval = v;
        else if (OPT("--types", "--types"))
            types_s = v;
        else if (OPT("--imatrix", "--imatrix"))
            imatrix = v;
        else if (OPT("-d", "--dir"))
            dir = v;
        else if (OPT("-o", "--output"))
            fmt = v;
        else if (OPT("--svg", "--svg"))
            svg_path = v;
        else if (OPT("-c", "--ctx")) {
            if (cli_parse_int(v, 8, 1 << 20, &ctx))
                return cli_usage(CMD, "-c: '%s' is not a context length (8..)", v);
        } else if (OPT("--chunks", "--chunks")) {
            if (cli_parse_int(v, 1, 1 << 20, &chunks))
                return cli_usage(CMD, "--chunks: '%s' is not a count", v);
        } else if (OPT("-t", "--threads")) {
            if (cli_parse_int(v, 1, 1024, &threads))
                return cli_usage(CMD, "-t: '%s' is not a thread count (1..1024)", v);
        } else if (OPT("-p", "--n-prompt")) {
            if (cli_parse_int(v, 0, 1 << 16, &pp))
                return cli_usage(CMD, "-p: '%s' is not a token count", v);
        } else if (OPT("-n", "--n-gen")) {
            if (cli_parse_int(v, 0, 1 << 16, &tg))
                return cli_usage(CMD, "-n: '%s' is not a token count", v);
        } else
            return cli_usage(CMD, "unknown option '%s'", a);
#undef OPT
    }
    if (!model)
        return cli_usage(CMD, "MODEL_DIR_OR_GGUF is required");
    if (!eval)
        return cli_usage(CMD, "-f EVAL.txt is required");
    if (strcmp(fmt, "md") && strcmp(fmt, "json") && strcmp(fmt, "csv") && strcmp(fmt, "svg"))
        return cli_usage(CMD, "-o: unknown format '%s' (md, json, csv, svg)", fmt);
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
            char *args[] = {"slm", "convert", (char *)model, "-o", base, "--outtype", "f32", "-t", thr_s, NULL};
            if (run_self(args, NULL, log))
                return fail_step("slm convert", log);
        }
    } else {
        snprintf(base, sizeof base, "%s", model);
    }

    int n_total = nt + 1, rc = SLM_OK;
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
            char *qargs[12] = {"slm", "quantize", base, path, (char *)label, "-t", thr_s};
            int na = 7;
            if (imatrix) {
                qargs[na++] = "--imatrix";
                qargs[na++] = (char *)imatrix;
            }
            qargs[na] = NULL;
            if (run_self(qargs, NULL, log)) {
                rc = fail_step("slm quantize", log);
                break;
            }
        }
        fprintf(stderr, "compare: %s: perplexity%s\n", label, i ? " and KL-divergence" : " (base log-probabilities)");
        char *pargs[20] = {"slm", "perplexity", "-m", path, "-f", (char *)eval, "-c", ctx_s, "-t", thr_s,
                           "--json", "--kl-divergence-base", kld};
        int na = 13;
        if (chunks > 0) {
            pargs[na++] = "--chunks";
            pargs[na++] = chunks_s;
        }
        if (i > 0)
            pargs[na++] = "--kl-divergence";
        pargs[na] = NULL;
        if (run_self(pargs, out, log)) {
            rc = fail_step("slm perplexity", log);
            break;
        }
        cJSON *pj = read_json_file(out);
        if (!pj) {
            rc = fail_step("reading slm perplexity's JSON", log);
            break;
        }
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "key", key);
        cJSON_AddStringToObject(row, "type", label);
        cJSON_AddStringToObject(row, "path", path);
        struct stat fst;
        cJSON_AddNumberToObject(row, "file_bytes", stat(path, &fst) == 0 ? (double)fst.st_size : 0);
        bench_compare_quality(row, pj);
        cJSON_Delete(pj);
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
    unlink(out);
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
