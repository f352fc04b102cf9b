/* api/compare.c — `slm compare`'s resumable sweep: for each type quantize the base, measure
 * perplexity and KL-divergence against the base's log-probabilities, size and speed; every
 * finished row is appended to DIR/results.jsonl with the settings it was measured with, and a
 * rerun with the same settings skips it. The steps are function calls (the quantize and
 * perplexity pipelines); their error lines go to DIR/log.txt as the commands would print them.
 * The speed test and the report writer are bench/'s, handed in by the caller (libslm does not
 * hold bench/). Never prints. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "pipeline.h"

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

static void step(const slm_pl_compare_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void step(const slm_pl_compare_opts *o, const char *fmt, ...)
{
    char buf[1600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (o->step)
        o->step(o->user, buf);
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
        .go = {NULL, 512, 0, threads, 0, {0.01f, 128, 0}, NULL, NULL}, .note = quant_note, .note_user = (void *)log,
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

static int fail_step(const char *what, const char *log, slm_err *err)
{
    return slm_err_set(err, SLM_EINPUT, "%s failed (details in %s)", what, log);
}

/* The rows of results.jsonl measured with these settings (key). */
static cJSON *read_rows(const char *results, const char *key)
{
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
    return rows;
}

/* Append the row to results.jsonl. */
static int append_row(const char *results, const cJSON *row, slm_err *err)
{
    char *line = cJSON_PrintUnformatted(row);
    FILE *af = fopen(results, "a");
    int ok = line && af && fprintf(af, "%s\n", line) >= 0;
    if (af && fclose(af) != 0)
        ok = 0;
    free(line);
    return ok ? SLM_OK : slm_err_set(err, SLM_EIO, "%s: cannot append the result", results);
}

/* Write text to path atomically (temp file, fsync, rename): never a partial chart. */
static int write_atomic(const char *path, const char *text, slm_err *err)
{
    slm_afile *af;
    int rc = slm_afile_open(path, &af, err);
    if (rc)
        return rc;
    if ((rc = slm_afile_write(af, text, strlen(text), err))) {
        slm_afile_abort(af);
        return rc;
    }
    return slm_afile_commit(af, err);
}

/* One row: quantize (types), perplexity / KLD, size and speed; appended to results.jsonl. */
static int measure(const slm_pl_compare_opts *o, int i, const char *label, const char *key, const char *base,
                   const char *kld, const char *log, const char *results, char **eval_text, size_t *eval_len,
                   cJSON **out, slm_err *err)
{
    char path[1300];
    if (i == 0) {
        snprintf(path, sizeof path, "%s", base);
    } else {
        snprintf(path, sizeof path, "%s/model-%s.gguf", o->dir, label);
        step(o, "quantizing to %s", label);
        if (step_quantize(base, path, label, o->threads, o->imatrix, log))
            return fail_step("slm quantize", log, err);
    }
    step(o, "%s: perplexity%s", label, i ? " and KL-divergence" : " (base log-probabilities)");
    slm_ppl_result pr;
    slm_kld_result kr;
    if (!*eval_text) {
        slm_err rerr = {0};
        if (slm_read_text_file(o->eval, (size_t)1 << 30, eval_text, eval_len, &rerr)) {
            log_line(log, "perplexity", "error", rerr.msg);
            return fail_step("slm perplexity", log, err);
        }
    }
    if (step_perplexity(path, *eval_text, *eval_len, o->ctx, o->chunks, o->threads, kld, i > 0, &pr, &kr, log))
        return fail_step("slm perplexity", log, err);
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
    step(o, "%s: speed", label);
    int rc = o->speed(path, o->threads, o->pp, o->tg, row, err);
    if (!rc)
        rc = append_row(results, row, err);
    if (rc) {
        cJSON_Delete(row);
        return rc;
    }
    *out = row;
    return SLM_OK;
}

int slm_pl_compare(const slm_pl_compare_opts *o0, slm_pl_compare_result *res, slm_err *err)
{
    memset(res, 0, sizeof *res);
    slm_pl_compare_opts o = *o0; /* o.dir: the work directory chosen */
    struct stat st, est;
    if (stat(o.model, &st) != 0)
        return slm_err_set(err, SLM_EIO, "%s: %s", o.model, strerror(errno));
    int is_dir = S_ISDIR(st.st_mode);
    if (stat(o.eval, &est) != 0)
        return slm_err_set(err, SLM_EIO, "%s: %s", o.eval, strerror(errno));
    if (o.imatrix && !file_exists(o.imatrix))
        return slm_err_set(err, SLM_EIO, "%s: no such file", o.imatrix);

    /* the types: recipes llama-quantize knows */
    char tbuf[512], *types[32];
    int nt = 0;
    snprintf(tbuf, sizeof tbuf, "%s", o.types);
    for (char *sv = NULL, *tok = strtok_r(tbuf, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv)) {
        if (slm_recipe_by_name(tok) < 0)
            return slm_err_set(err, SLM_EUSAGE, "--types: unknown type '%s'", tok);
        if (nt >= 32)
            return slm_err_set(err, SLM_EUSAGE, "--types: too many types");
        types[nt++] = tok;
    }

    if (!o.dir) {
        const char *b = strrchr(o.model, '/');
        b = b && b[1] ? b + 1 : o.model;
        snprintf(res->dir, sizeof res->dir, "compare-%s", b);
        size_t l = strlen(res->dir);
        while (l > 8 && res->dir[l - 1] == '/')
            res->dir[--l] = 0;
    } else {
        snprintf(res->dir, sizeof res->dir, "%s", o.dir);
    }
    o.dir = res->dir;
    if (mkdir(o.dir, 0755) != 0 && errno != EEXIST)
        return slm_err_set(err, SLM_EIO, "%s: cannot create: %s", o.dir, strerror(errno));
    char log[1200], results[1200], kld[1200];
    snprintf(log, sizeof log, "%s/log.txt", o.dir);
    snprintf(results, sizeof results, "%s/results.jsonl", o.dir);
    snprintf(kld, sizeof kld, "%s/base.kld", o.dir);
    /* what every row depends on (not the thread count: the numbers do not) */
    char key[2048];
    snprintf(key, sizeof key, "model=%s|mtime=%lld|eval=%s|esize=%lld|emtime=%lld|c=%d|chunks=%d|imatrix=%s|pp=%d|tg=%d",
             o.model, (long long)st.st_mtime, o.eval, (long long)est.st_size, (long long)est.st_mtime, o.ctx, o.chunks,
             o.imatrix ? o.imatrix : "", o.pp, o.tg);
    cJSON *rows = read_rows(results, key);

    /* base model */
    if (is_dir) {
        snprintf(res->base, sizeof res->base, "%s/base-f32.gguf", o.dir);
        if (!file_exists(res->base)) {
            step(&o, "converting %s to F32", o.model);
            slm_err cerr = {0};
            slm_pl_convert_info ci;
            if (slm_pl_convert(o.model, res->base, SLM_TYPE_F32, o.threads, NULL, NULL, &ci, &cerr)) {
                log_line(log, "convert", "error", cerr.msg);
                cJSON_Delete(rows);
                return fail_step("slm convert", log, err);
            }
        }
    } else {
        snprintf(res->base, sizeof res->base, "%s", o.model);
    }

    int n_total = nt + 1, rc = SLM_OK;
    char *eval_text = NULL;
    size_t eval_len = 0;
    for (int i = 0; i < n_total && rc == SLM_OK; i++) {
        const char *label = i == 0 ? "base" : types[i - 1];
        int have = 0;
        cJSON *r;
        cJSON_ArrayForEach(r, rows) have |= !strcasecmp(jstr(r, "type"), label);
        if (have && (i > 0 || file_exists(kld))) {
            step(&o, "%s: already measured (skipped)", label);
            continue;
        }
        cJSON *row = NULL;
        rc = measure(&o, i, label, key, res->base, kld, log, results, &eval_text, &eval_len, &row, err);
        if (rc)
            break;
        /* the base row replaces an older one (the kld file was remade) */
        int idx = 0, del = -1;
        cJSON_ArrayForEach(r, rows) {
            if (!strcasecmp(jstr(r, "type"), label))
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

    /* the report in the order asked: base first */
    cJSON *ordered = cJSON_CreateArray();
    for (int i = 0; i < n_total; i++) {
        const char *label = i == 0 ? "base" : types[i - 1];
        cJSON *r;
        cJSON_ArrayForEach(r, rows) if (!strcasecmp(jstr(r, "type"), label))
        {
            cJSON_AddItemToArray(ordered, cJSON_Duplicate(r, 1));
            break;
        }
    }
    cJSON_Delete(rows);
    int want_svg = !strcmp(o.fmt, "svg");
    char *svg = o.svg_path || want_svg ? o.format(ordered, "svg", o.pp, o.tg, NULL) : NULL;
    if (o.svg_path && svg)
        rc = write_atomic(o.svg_path, svg, err);
    if (rc == SLM_OK) {
        res->report = want_svg ? svg : o.format(ordered, o.fmt, o.pp, o.tg, NULL);
        if (want_svg)
            svg = NULL;
        if (!res->report)
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    free(svg);
    cJSON_Delete(ordered);
    return rc;
}

void slm_pl_compare_result_free(slm_pl_compare_result *r)
{
    free(r->report);
    r->report = NULL;
}
