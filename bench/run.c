/* bench/run.c — the runs behind `slm bench`: the model tests (`slm bench -m`: every model x
 * thread count x test, llama-bench's rows in its output modes), the kernel table next to the
 * roofline (`slm bench kernels`) and the kernel self-check (`--check`). Never prints: the
 * output goes, piece by piece as it is measured, to the caller's emit callback. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "bench.h"
#include "bench_internal.h"
#include "runtime.h"

/* emit printf-style text (one line or a table row: short; longer text is emitted whole) */
static void emitf(bench_emit_fn emit, void *user, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void emitf(bench_emit_fn emit, void *user, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof buf) {
        emit(user, buf);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big)
        return;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    emit(user, big);
    free(big);
}

/* cJSON text plus a newline (formatted or not); SLM_EINTERNAL when out of memory */
static int emit_json(cJSON *j, int formatted, bench_emit_fn emit, void *user, slm_err *err)
{
    char *s = j ? (formatted ? cJSON_Print(j) : cJSON_PrintUnformatted(j)) : NULL;
    if (!s)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    emitf(emit, user, "%s\n", s);
    free(s);
    return SLM_OK;
}

void bench_cpu_name(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ')
                    c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(buf, n, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

void bench_test_name(bench_e2e_test t, char *buf, size_t n)
{
    if (t.n_prompt > 0 && t.n_gen > 0)
        snprintf(buf, n, "pp%d+tg%d", t.n_prompt, t.n_gen);
    else if (t.n_prompt > 0)
        snprintf(buf, n, "pp%d", t.n_prompt);
    else
        snprintf(buf, n, "tg%d", t.n_gen);
}

/* ---- slm bench -m: llama-bench's tests and output modes ---------------------------------- */

typedef struct row_out {
    const char *model_path, *build, *cpu;
    bench_model_info info;
    bench_e2e_result res;
    long peak_rss_kb;
} row_out;

static cJSON *row_json(const row_out *r)
{
    char tn[64];
    bench_test_name(r->res.test, tn, sizeof tn);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "build_commit", r->build);
    cJSON_AddStringToObject(o, "cpu_info", r->cpu);
    cJSON_AddStringToObject(o, "backends", "CPU");
    cJSON_AddStringToObject(o, "kernel", slm_kernel_name(slm_kernel_active()));
    cJSON_AddStringToObject(o, "model_filename", r->model_path);
    cJSON_AddStringToObject(o, "model_type", r->info.type_label);
    cJSON_AddNumberToObject(o, "model_size", (double)r->info.size_bytes);
    cJSON_AddNumberToObject(o, "model_n_params", (double)r->info.n_params);
    cJSON_AddNumberToObject(o, "n_threads", r->res.n_threads);
    cJSON_AddStringToObject(o, "type_k", slm_kv_type_name(r->res.test.type_k));
    cJSON_AddStringToObject(o, "type_v", slm_kv_type_name(r->res.test.type_v));
    cJSON_AddNumberToObject(o, "n_prompt", r->res.test.n_prompt);
    cJSON_AddNumberToObject(o, "n_gen", r->res.test.n_gen);
    cJSON_AddStringToObject(o, "test", tn);
    cJSON_AddNumberToObject(o, "avg_ns", r->res.avg_ns);
    cJSON_AddNumberToObject(o, "stddev_ns", r->res.stddev_ns);
    cJSON_AddNumberToObject(o, "avg_ts", r->res.avg_ts);
    cJSON_AddNumberToObject(o, "stddev_ts", r->res.stddev_ts);
    cJSON *sn = cJSON_AddArrayToObject(o, "samples_ns"), *st = cJSON_AddArrayToObject(o, "samples_ts");
    for (int i = 0; i < r->res.reps; i++) {
        cJSON_AddItemToArray(sn, cJSON_CreateNumber(round(r->res.samples_ns[i])));
        cJSON_AddItemToArray(st, cJSON_CreateNumber((r->res.test.n_prompt + r->res.test.n_gen) * 1e9 /
                                                    r->res.samples_ns[i]));
    }
    cJSON_AddNumberToObject(o, "load_ms", r->info.load_ms);
    cJSON_AddNumberToObject(o, "peak_rss_kb", (double)r->peak_rss_kb);
    return o;
}

static void fmt_size(uint64_t b, char *buf, size_t n)
{
    if (b >= (1ull << 30))
        snprintf(buf, n, "%.2f GiB", b / 1073741824.0);
    else
        snprintf(buf, n, "%.2f MiB", b / 1048576.0);
}

/* The row in the streamed formats (md, csv, sql, jsonl); json and svg come at the end. */
static void emit_row(const row_out *r, const char *fmt, int first, bench_emit_fn emit, void *user)
{
    char tn[64], sz[32];
    const char *kernel = slm_kernel_name(slm_kernel_active());
    bench_test_name(r->res.test, tn, sizeof tn);
    if (!strcmp(fmt, "md")) {
        /* llama-bench's columns type_k / type_v appear when a cache type is not the default */
        const bench_e2e_test *t = &r->res.test;
        int kv = t->type_k != SLM_TYPE_F32 || t->type_v != SLM_TYPE_F32;
        if (first)
            emitf(emit, user,
                  "| model | size | params | backend | kernel | threads |%s test | t/s | load ms | peak RSS MiB |\n"
                  "| --- | ---: | ---: | --- | --- | ---: |%s ---: | ---: | ---: | ---: |\n",
                  kv ? " type_k | type_v |" : "", kv ? " --- | --- |" : "");
        fmt_size(r->info.size_bytes, sz, sizeof sz);
        char kvc[64] = "";
        if (kv)
            snprintf(kvc, sizeof kvc, " %s | %s |", slm_kv_type_name(t->type_k), slm_kv_type_name(t->type_v));
        emitf(emit, user, "| %s | %s | %.2f M | CPU | %s | %d |%s %s | %.2f ± %.2f | %.0f | %.1f |\n",
              r->info.type_label, sz, r->info.n_params / 1e6, kernel, r->res.n_threads, kvc, tn, r->res.avg_ts,
              r->res.stddev_ts, r->info.load_ms, r->peak_rss_kb / 1024.0);
    } else if (!strcmp(fmt, "csv")) {
        if (first)
            emit(user, "build_commit,cpu_info,kernel,model_filename,model_type,model_size,model_n_params,n_threads,"
                       "type_k,type_v,n_prompt,n_gen,test,avg_ns,stddev_ns,avg_ts,stddev_ts,load_ms,peak_rss_kb\n");
        emitf(emit, user, "\"%s\",\"%s\",%s,\"%s\",\"%s\",%llu,%llu,%d,%s,%s,%d,%d,%s,%.0f,%.0f,%.6f,%.6f,%.1f,%ld\n",
              r->build, r->cpu, kernel, r->model_path, r->info.type_label, (unsigned long long)r->info.size_bytes,
              (unsigned long long)r->info.n_params, r->res.n_threads, slm_kv_type_name(r->res.test.type_k),
              slm_kv_type_name(r->res.test.type_v), r->res.test.n_prompt, r->res.test.n_gen, tn,
              r->res.avg_ns, r->res.stddev_ns, r->res.avg_ts, r->res.stddev_ts, r->info.load_ms, r->peak_rss_kb);
    } else if (!strcmp(fmt, "sql")) {
        if (first)
            emit(user, "CREATE TABLE IF NOT EXISTS test (\n  build_commit TEXT, cpu_info TEXT, kernel TEXT, "
                       "model_filename TEXT, model_type TEXT, model_size INTEGER, model_n_params INTEGER,\n"
                       "  n_threads INTEGER, type_k TEXT, type_v TEXT, n_prompt INTEGER, n_gen INTEGER, test TEXT, avg_ns INTEGER, stddev_ns "
                       "INTEGER,\n  avg_ts REAL, stddev_ts REAL, load_ms REAL, peak_rss_kb INTEGER\n);\n");
        /* single quotes doubled for SQL strings */
        const char *strs[4] = {r->cpu, r->model_path, r->info.type_label, r->build};
        char q[4][600];
        for (int k = 0; k < 4; k++) {
            size_t o = 0;
            for (const char *c = strs[k]; *c && o + 3 < sizeof q[k]; c++) {
                if (*c == '\'')
                    q[k][o++] = '\'';
                q[k][o++] = *c;
            }
            q[k][o] = 0;
        }
        emitf(emit, user,
              "INSERT INTO test (build_commit, cpu_info, kernel, model_filename, model_type, model_size, "
              "model_n_params, n_threads, type_k, type_v, n_prompt, n_gen, test, avg_ns, stddev_ns, avg_ts, stddev_ts, "
              "load_ms, peak_rss_kb) VALUES ('%s', '%s', '%s', '%s', '%s', %llu, %llu, %d, '%s', '%s', %d, %d, '%s', "
              "%.0f, %.0f, %.6f, %.6f, %.1f, %ld);\n",
              q[3], q[0], kernel, q[1], q[2], (unsigned long long)r->info.size_bytes,
              (unsigned long long)r->info.n_params, r->res.n_threads, slm_kv_type_name(r->res.test.type_k),
              slm_kv_type_name(r->res.test.type_v), r->res.test.n_prompt, r->res.test.n_gen, tn,
              r->res.avg_ns, r->res.stddev_ns, r->res.avg_ts, r->res.stddev_ts, r->info.load_ms, r->peak_rss_kb);
    } else if (!strcmp(fmt, "jsonl")) {
        cJSON *o = row_json(r);
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (s)
            emitf(emit, user, "%s\n", s);
        free(s);
    }
}

int bench_models_run(const bench_models_opts *o, slm_err *err)
{
    int n_rows = o->n_models * o->n_threads * o->n_tests;
    char cpu[256];
    bench_cpu_name(cpu, sizeof cpu);
    cJSON *jall = cJSON_CreateArray();
    bench_point *bars = calloc((size_t)n_rows + 1, sizeof *bars);
    char (*labels)[160] = calloc((size_t)n_rows + 1, sizeof *labels);
    int nbars = 0, first = 1, rc = SLM_OK;
    if (!jall || !bars || !labels) {
        cJSON_Delete(jall);
        free(bars);
        free(labels);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    for (int mi = 0; mi < o->n_models && rc == SLM_OK; mi++) {
        slm_model *m;
        double t0 = bench_now();
        rc = slm_model_load(o->models[mi], &m, err);
        if (rc)
            break;
        row_out r = {.model_path = o->models[mi], .build = o->build, .cpu = cpu};
        bench_model_info_get(m, (bench_now() - t0) * 1e3, &r.info);
        for (int ti = 0; ti < o->n_threads && rc == SLM_OK; ti++)
            for (int k = 0; k < o->n_tests && rc == SLM_OK; k++) {
                char tn[64];
                bench_test_name(o->tests[k], tn, sizeof tn);
                if (o->start)
                    o->start(o->user, o->models[mi], o->threads[ti], tn, o->reps);
                rc = bench_e2e_run(m, o->tests[k], o->threads[ti], o->reps, &r.res, err);
                if (rc)
                    break;
                struct rusage ru;
                r.peak_rss_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
                emit_row(&r, o->fmt, first, o->emit, o->user);
                first = 0;
                cJSON_AddItemToArray(jall, row_json(&r));
                snprintf(labels[nbars], sizeof labels[nbars], "%s t%d %s", r.info.ftype, o->threads[ti], tn);
                bars[nbars].label = labels[nbars];
                bars[nbars].y = r.res.avg_ts;
                nbars++;
                bench_e2e_result_free(&r.res);
            }
        slm_model_free(m);
    }
    if (rc == SLM_OK && !strcmp(o->fmt, "md"))
        emitf(o->emit, o->user, "\nbuild: %s; cpu: %s\n", o->build, cpu);
    if (rc == SLM_OK && !strcmp(o->fmt, "json")) {
        rc = emit_json(jall, 1, o->emit, o->user, err);
    } else if (rc == SLM_OK && !strcmp(o->fmt, "svg")) {
        char *svg = bench_svg_bars("slm bench: tokens per second", "t/s", bars, nbars);
        if (!svg)
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        else
            o->emit(o->user, svg);
        free(svg);
    }
    cJSON_Delete(jall);
    free(bars);
    free(labels);
    return rc;
}

/* ---- slm bench kernels ----------------------------------------------------------------- */

int bench_kernels_parse(const char *types, const char *kernels, const char *shapes, bench_kernels_spec *s,
                        slm_err *err)
{
    char buf[512];
    memset(s, 0, sizeof *s);
    snprintf(buf, sizeof buf, "%s", types);
    for (char *sv = NULL, *tok = strtok_r(buf, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv)) {
        uint32_t t = UINT32_MAX;
        for (uint32_t k = 0; k < SLM_TYPE_COUNT; k++)
            if (slm_type_name(k) && !strcasecmp(slm_type_name(k), tok))
                t = k;
        if (t == UINT32_MAX || !slm_matmul_supported(t) || t == SLM_TYPE_Q8_K || t == SLM_TYPE_Q8_1)
            return slm_err_set(err, SLM_EUSAGE, "--types: unknown or unsupported type '%s'", tok);
        if (s->n_types >= BENCH_MAX_TYPES)
            return slm_err_set(err, SLM_EUSAGE, "--types: too many types");
        s->types[s->n_types++] = t;
    }
    if (!kernels) {
        for (int k = SLM_KERNEL_SCALAR; k < SLM_KERNEL_COUNT; k++)
            if (slm_cpu_has(k))
                s->kernels[s->n_kernels++] = k;
        s->kernels[s->n_kernels++] = BENCH_KERNEL_BLAS;
    } else {
        snprintf(buf, sizeof buf, "%s", kernels);
        for (char *sv = NULL, *tok = strtok_r(buf, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv)) {
            int k = -1;
            for (int c = 0; c <= BENCH_KERNEL_BLAS; c++)
                if (!strcasecmp(tok, bench_kernel_label(c)))
                    k = c;
            if (k < 0)
                return slm_err_set(err, SLM_EUSAGE,
                                   "--kernel: unknown kernel '%s' (scalar, avx2, avx512, neon, dotprod, i8mm, sve, blas)",
                                   tok);
            if (k != BENCH_KERNEL_BLAS && !slm_cpu_has(k))
                return slm_err_set(err, SLM_EUSAGE, "--kernel: this CPU has no %s kernel", tok);
            if (s->n_kernels >= SLM_KERNEL_COUNT + 1)
                return slm_err_set(err, SLM_EUSAGE, "--kernel: too many kernels");
            s->kernels[s->n_kernels++] = k;
        }
    }
    if (!shapes)
        return SLM_OK;
    snprintf(buf, sizeof buf, "%s", shapes);
    for (char *sv = NULL, *tok = strtok_r(buf, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv)) {
        long long r, c;
        char tail;
        if (s->n_shapes >= BENCH_MAX_SHAPES || sscanf(tok, "%lldx%lld%c", &r, &c, &tail) != 2 || r < 1 || c < 1 ||
            r > (1 << 20) || c > (1 << 20))
            return slm_err_set(err, SLM_EUSAGE, "--shapes: '%s' is not ROWSxCOLS", tok);
        s->shapes[s->n_shapes][0] = r;
        s->shapes[s->n_shapes][1] = c;
        s->n_shapes++;
    }
    return SLM_OK;
}

typedef struct check_ctx {
    int verbose;
    bench_emit_fn emit;
    void *user;
} check_ctx;

static void check_report(void *ctx, int kernel, const char *check, int ok, const char *detail)
{
    const check_ctx *c = ctx;
    if (!ok || c->verbose)
        emitf(c->emit, c->user, "%s %s: %s%s%s\n", ok ? "ok  " : "FAIL", slm_kernel_name(kernel), check,
              ok ? "" : ": ", ok ? "" : detail);
}

int bench_kernels_selfcheck(const bench_kernels_spec *s, int verbose, bench_emit_fn emit, void *user, int *n_fail,
                            slm_err *err)
{
    int pass = 0, fail = 0;
    check_ctx c = {verbose, emit, user};
    emitf(emit, user, "kernel self-check (active set: %s; cpu: %s)\n", slm_kernel_name(slm_kernel_active()),
          slm_cpu_caps_text());
    for (int i = 0; i < s->n_kernels; i++) {
        int k = s->kernels[i];
        if (k == BENCH_KERNEL_BLAS || k == SLM_KERNEL_SCALAR)
            continue;
        int p0 = pass, f0 = fail;
        int rc = bench_kernels_check(k, check_report, &c, &pass, &fail, err);
        if (rc)
            return rc;
        if (k == SLM_KERNEL_SVE) /* vector-length agnostic: say at which length it ran */
            emitf(emit, user, "%s (%d-bit vectors): %d passed, %d failed\n", slm_kernel_name(k), slm_sve_bits(),
                  pass - p0, fail - f0);
        else
            emitf(emit, user, "%s: %d passed, %d failed\n", slm_kernel_name(k), pass - p0, fail - f0);
    }
    emitf(emit, user, "%d passed, %d failed\n", pass, fail);
    *n_fail = fail;
    return SLM_OK;
}

static cJSON *kernel_row_json(const bench_kernel_result *r, const char *tn, const char *kn, int op, int ntok,
                              double pd, double pf, double sp)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", tn);
    cJSON_AddNumberToObject(o, "rows", (double)r->rows);
    cJSON_AddNumberToObject(o, "cols", (double)r->cols);
    cJSON_AddNumberToObject(o, "n_tokens", ntok);
    cJSON_AddStringToObject(o, "op", op == 0 ? "matvec" : "matmul");
    cJSON_AddStringToObject(o, "kernel", kn);
    cJSON_AddNumberToObject(o, "ms_median", r->sec_median * 1e3);
    cJSON_AddNumberToObject(o, "ms_best", r->sec_best * 1e3);
    cJSON_AddNumberToObject(o, "samples", r->samples);
    cJSON_AddNumberToObject(o, "weight_bytes", (double)r->weight_bytes);
    cJSON_AddNumberToObject(o, "gbs", r->gbs);
    cJSON_AddNumberToObject(o, "gflops", r->gflops);
    cJSON_AddNumberToObject(o, "pct_dram", pd);
    if (!isnan(pf))
        cJSON_AddNumberToObject(o, "pct_fma", pf);
    if (!isnan(sp))
        cJSON_AddNumberToObject(o, "speedup_vs_scalar", sp);
    cJSON_AddNumberToObject(o, "max_rel_err", r->max_rel_err);
    return o;
}

int bench_kernels_table(const bench_kernels_spec *s, const bench_kernels_opts *o, bench_emit_fn emit, void *user,
                        slm_err *err)
{
    int out_md = !strcmp(o->fmt, "md"), out_json = !strcmp(o->fmt, "json"), out_csv = !strcmp(o->fmt, "csv");
    if (!out_md && !out_json && !out_csv)
        return slm_err_set(err, SLM_EUSAGE, "--output: unknown format '%s' (md, json, csv)", o->fmt);
    int threads = o->threads;
    bench_roofline roof;
    int rc = bench_roofline_measure(threads, &roof, err);
    if (rc)
        return rc;
    char cpu[256];
    bench_cpu_name(cpu, sizeof cpu);
    cJSON *jroot = cJSON_CreateObject(), *jres = cJSON_AddArrayToObject(jroot, "results");
    cJSON_AddStringToObject(jroot, "build_commit", o->build);
    cJSON_AddStringToObject(jroot, "cpu_info", cpu);
    cJSON_AddNumberToObject(jroot, "n_threads", threads);
    cJSON *jr = cJSON_AddObjectToObject(jroot, "roofline");
    cJSON_AddNumberToObject(jr, "read_gbs", roof.read_gbs);
    cJSON_AddNumberToObject(jr, "read_gbs_best", roof.read_gbs_best);
    cJSON_AddNumberToObject(jr, "fma_gflops", roof.fma_gflops);
    cJSON_AddStringToObject(jr, "isa", roof.isa);
    if (out_md) {
        emitf(emit, user,
              "roofline (%d thread%s, %s): DRAM read %.1f GB/s (median step; best %.1f), FP32 FMA peak %.1f "
              "GFLOP/s\n", threads, threads > 1 ? "s" : "", roof.isa, roof.read_gbs, roof.read_gbs_best,
              roof.fma_gflops);
        emitf(emit, user, "cpu: %s; build %s\n\n", cpu, o->build);
        emit(user, "| type | shape | op | kernel | ms | GB/s | % of DRAM | GFLOP/s | % of FMA | speed-up vs scalar | "
                   "max rel err |\n|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    } else if (out_csv) {
        emit(user, "type,rows,cols,n_tokens,kernel,threads,ms,gbs,pct_dram,gflops,pct_fma,speedup_vs_scalar,"
                   "max_rel_err,read_gbs,fma_gflops\n");
    }
    for (int si = 0; si < s->n_shapes; si++)
        for (int ti = 0; ti < s->n_types; ti++)
            for (int op = 0; op < 2; op++) {
                if ((op == 0 && !o->matvec) || (op == 1 && !o->matmul))
                    continue;
                int ntok = op == 0 ? 1 : o->batch;
                double scalar_t = 0;
                for (int ki = 0; ki < s->n_kernels; ki++) {
                    bench_kernel_result r;
                    rc = bench_kernel_run(s->types[ti], s->kernels[ki], s->shapes[si][0], s->shapes[si][1], ntok,
                                          threads, o->seconds, &r, err);
                    if (rc) {
                        cJSON_Delete(jroot);
                        return rc;
                    }
                    if (s->kernels[ki] == SLM_KERNEL_SCALAR)
                        scalar_t = r.sec_median;
                    double sp = scalar_t > 0 ? scalar_t / r.sec_median : NAN;
                    double pd = 100 * r.gbs / roof.read_gbs,
                           pf = roof.fma_gflops > 0 ? 100 * r.gflops / roof.fma_gflops : NAN;
                    const char *tn = slm_type_name(s->types[ti]), *kn = bench_kernel_label(s->kernels[ki]);
                    if (out_md) {
                        emitf(emit, user, "| %s | %lldx%lld | %s | %s | %.3f | %.1f | %.0f%% | %.1f | %.0f%% | ", tn,
                              (long long)r.rows, (long long)r.cols, op == 0 ? "matvec" : "matmul", kn,
                              r.sec_median * 1e3, r.gbs, pd, r.gflops, pf);
                        if (isnan(sp))
                            emitf(emit, user, "- | %.1e |\n", r.max_rel_err);
                        else
                            emitf(emit, user, "%.1fx | %.1e |\n", sp, r.max_rel_err);
                    } else if (out_csv) {
                        emitf(emit, user, "%s,%lld,%lld,%d,%s,%d,%.6f,%.3f,%.1f,%.3f,%.1f,%.3f,%.3e,%.3f,%.3f\n", tn,
                              (long long)r.rows, (long long)r.cols, ntok, kn, threads, r.sec_median * 1e3, r.gbs, pd,
                              r.gflops, pf, isnan(sp) ? 0.0 : sp, r.max_rel_err, roof.read_gbs, roof.fma_gflops);
                    }
                    cJSON_AddItemToArray(jres, kernel_row_json(&r, tn, kn, op, ntok, pd, pf, sp));
                }
            }
    rc = out_json ? emit_json(jroot, 1, emit, user, err) : SLM_OK;
    cJSON_Delete(jroot);
    return rc;
}
