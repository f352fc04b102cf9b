/* bench/report.c — the rows and the report of `slm compare`, shared with `slm sweep merge`
 * (factored out of tools/compare.c so both commands print the very same table, JSON, CSV and
 * SVG). A row is a cJSON object: type, path, file_bytes (set by the caller), the quality
 * figures of `slm perplexity --json` (bench_compare_quality), and size and speed
 * (bench_compare_speed). Never prints: the report comes back as a malloc'd string. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "runtime.h"

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

void bench_compare_quality(cJSON *row, const cJSON *pj)
{
    cJSON_AddNumberToObject(row, "ppl", jnum(pj, "ppl"));
    cJSON_AddNumberToObject(row, "ppl_stderr", jnum(pj, "ppl_stderr"));
    const cJSON *kj = cJSON_GetObjectItemCaseSensitive(pj, "kld");
    cJSON_AddNumberToObject(row, "kld_mean", kj ? jnum(kj, "mean") : 0);
    cJSON_AddNumberToObject(row, "kld_p99", kj ? jnum(kj, "p99") : 0);
    cJSON_AddNumberToObject(row, "same_top", kj ? jnum(kj, "same_top") : 1);
    cJSON_AddNumberToObject(row, "ppl_ratio", kj ? jnum(kj, "ppl_ratio") : 1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int bench_compare_speed(const char *path, int threads, int pp, int tg, cJSON *row, slm_err *err)
{
    slm_model *m;
    double t0 = now_s();
    int rc = slm_model_load(path, &m, err);
    if (rc)
        return rc;
    bench_model_info info;
    bench_model_info_get(m, (now_s() - t0) * 1e3, &info);
    cJSON_AddNumberToObject(row, "weight_bytes", (double)info.size_bytes);
    cJSON_AddNumberToObject(row, "n_params", (double)info.n_params);
    cJSON_AddNumberToObject(row, "bpw", info.n_params ? info.size_bytes * 8.0 / info.n_params : 0);
    for (int k = 0; k < 2 && rc == SLM_OK; k++) {
        bench_e2e_test t = {.n_prompt = k == 0 ? pp : 0, .n_gen = k == 1 ? tg : 0};
        if (t.n_prompt + t.n_gen == 0)
            continue;
        if (t.n_prompt + t.n_gen > slm_model_hparams(m)->n_ctx_train)
            continue;
        bench_e2e_result r;
        rc = bench_e2e_run(m, t, threads, 3, &r, err);
        if (rc == SLM_OK)
            cJSON_AddNumberToObject(row, k == 0 ? "pp_ts" : "tg_ts", r.avg_ts);
        bench_e2e_result_free(&r);
    }
    slm_model_free(m);
    return rc;
}

/* Pareto flags per row (the base row is never on the front) and the chart. */
typedef struct report_pts {
    bench_point *pts;
    char (*labels)[64];
    int np, nf, front[64];
} report_pts;

static int collect_points(const cJSON *rows, report_pts *rp)
{
    int n = cJSON_GetArraySize(rows);
    rp->pts = calloc((size_t)n + 1, sizeof *rp->pts);
    rp->labels = calloc((size_t)n + 1, sizeof *rp->labels);
    rp->np = rp->nf = 0;
    if (!rp->pts || !rp->labels)
        return -1;
    const cJSON *o;
    cJSON_ArrayForEach(o, rows) {
        if (!strcmp(jstr(o, "type"), "base"))
            continue;
        bench_point *p = &rp->pts[rp->np];
        p->x = jnum(o, "bpw");
        p->y = jnum(o, "kld_mean");
        /* the speed next to the name: the chart shows quality, size and speed */
        double tg_ts = jnum(o, "tg_ts");
        if (tg_ts > 0)
            snprintf(rp->labels[rp->np], sizeof rp->labels[0], "%s (tg %.0f t/s)", jstr(o, "type"), tg_ts);
        else
            snprintf(rp->labels[rp->np], sizeof rp->labels[0], "%s", jstr(o, "type"));
        p->label = rp->labels[rp->np];
        rp->np++;
    }
    rp->nf = rp->np <= 64 ? bench_pareto(rp->pts, rp->np, rp->front) : 0;
    return 0;
}

static int on_front(const report_pts *rp, int k)
{
    int on = 0;
    for (int f = 0; f < rp->nf; f++)
        on |= rp->front[f] == k;
    return on;
}

char *bench_compare_format(const cJSON *rows, const char *fmt, int pp, int tg, const char *svg_title)
{
    report_pts rp;
    char *out = NULL;
    if (collect_points(rows, &rp) != 0)
        goto done;
    if (!strcmp(fmt, "svg")) {
        out = bench_svg_scatter(svg_title ? svg_title : "slm compare: quality vs size (and generation speed)",
                                "bits per weight", "mean KL-divergence vs base (log scale)", rp.pts, rp.np, 1, 1);
        goto done;
    }
    if (!strcmp(fmt, "json")) {
        cJSON *copy = cJSON_Duplicate(rows, 1);
        if (!copy)
            goto done;
        int k = 0;
        cJSON *o;
        cJSON_ArrayForEach(o, copy) {
            cJSON_DeleteItemFromObject(o, "key");
            int on = 0;
            if (strcmp(jstr(o, "type"), "base"))
                on = on_front(&rp, k++);
            cJSON_AddBoolToObject(o, "pareto", on);
        }
        char *s = cJSON_Print(copy);
        cJSON_Delete(copy);
        if (s) {
            size_t l = strlen(s);
            out = malloc(l + 2);
            if (out)
                memcpy(out, s, l), out[l] = '\n', out[l + 1] = 0;
            free(s);
        }
        goto done;
    }
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        goto done;
    int csv = !strcmp(fmt, "csv");
    if (csv)
        fprintf(f, "type,file_bytes,bpw,ppl,ppl_stderr,ppl_ratio,kld_mean,kld_p99,same_top,pp_ts,tg_ts,pareto\n");
    else
        fprintf(f, "| type | size MiB | bits/weight | PPL | PPL ratio | mean KLD | KLD p99 | same top | pp%d t/s | "
                   "tg%d t/s | Pareto |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|\n",
                pp, tg);
    int k = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, rows) {
        int is_base = !strcmp(jstr(o, "type"), "base"), on = 0;
        if (!is_base)
            on = on_front(&rp, k++);
        if (csv)
            fprintf(f, "%s,%.0f,%.4f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.2f,%.2f,%d\n", jstr(o, "type"),
                    jnum(o, "file_bytes"), jnum(o, "bpw"), jnum(o, "ppl"), jnum(o, "ppl_stderr"), jnum(o, "ppl_ratio"),
                    jnum(o, "kld_mean"), jnum(o, "kld_p99"), jnum(o, "same_top"), jnum(o, "pp_ts"), jnum(o, "tg_ts"), on);
        else
            fprintf(f, "| %s | %.2f | %.3f | %.4f ± %.4f | %.4f | %.5f | %.4f | %.1f %% | %.1f | %.1f | %s |\n",
                    jstr(o, "type"), jnum(o, "file_bytes") / 1048576.0, jnum(o, "bpw"), jnum(o, "ppl"),
                    jnum(o, "ppl_stderr"), jnum(o, "ppl_ratio"), jnum(o, "kld_mean"), jnum(o, "kld_p99"),
                    100 * jnum(o, "same_top"), jnum(o, "pp_ts"), jnum(o, "tg_ts"), is_base ? "" : on ? "yes" : "");
    }
    if (fclose(f) != 0) {
        free(out);
        out = NULL;
    }
done:
    free(rp.pts);
    free(rp.labels);
    return out;
}
