/* sweep/merge.c — every task's result back into `slm compare`'s report (bench/report.c's
 * writers): one table per model x calibration x thread count, the missing tasks listed. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "sweep_internal.h"

/* results/ may hold only this plan's results (and temp files of running tasks). */
static int check_strays(const sweep_plan *p, const char *plan_dir, slm_err *err)
{
    char *dir = sw_join(plan_dir, "results");
    DIR *d = dir ? opendir(dir) : NULL;
    int rc = SLM_OK;
    if (!d) {
        rc = dir ? slm_err_set(err, SLM_EIO, "%s: %s", dir, strerror(errno))
                 : slm_err_set(err, SLM_EINTERNAL, "out of memory");
        free(dir);
        return rc;
    }
    for (struct dirent *e; rc == SLM_OK && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue; /* ".", "..", temp files of tasks at work */
        int ours = 0;
        for (int i = 0; i < p->n_tasks && !ours; i++)
            ours = strlen(e->d_name) == 21 && !strncmp(e->d_name, p->tasks[i].id, 16) &&
                   !strcmp(e->d_name + 16, ".json");
        if (ours)
            continue;
        char *path = sw_join(dir, e->d_name);
        cJSON *j = path ? sw_read_json(path, 1u << 20, err) : NULL;
        const cJSON *plan = j ? cJSON_GetObjectItemCaseSensitive(j, "plan") : NULL;
        if (cJSON_IsString(plan) && strcmp(plan->valuestring, p->id))
            rc = slm_err_set(err, SLM_EINPUT, "%s: a result of another plan (%.12s), not of this one (%.12s)", path,
                             plan->valuestring, p->id);
        else
            rc = slm_err_set(err, SLM_EINPUT, "%s: not the result of any task of this plan", path);
        cJSON_Delete(j);
        free(path);
    }
    closedir(d);
    free(dir);
    return rc;
}

int sweep_merge(const sweep_plan *p, const char *plan_dir, cJSON **report, slm_err *err)
{
    *report = NULL;
    int rc = check_strays(p, plan_dir, err);
    if (rc)
        return rc;
    cJSON **rows = calloc((size_t)p->n_tasks, sizeof *rows);
    if (!rows)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    cJSON *r = cJSON_CreateObject(), *missing = cJSON_CreateArray();
    for (int i = 0; i < p->n_tasks && rc == SLM_OK; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/results/%s.json", plan_dir, p->tasks[i].id);
        struct stat st;
        if (stat(path, &st) == 0) {
            rc = sw_check_result(p, i, plan_dir, path, &rows[i], err);
            continue;
        }
        const sweep_task *t = &p->tasks[i];
        cJSON *m = cJSON_CreateObject();
        cJSON_AddNumberToObject(m, "index", i);
        cJSON_AddStringToObject(m, "id", t->id);
        cJSON_AddStringToObject(m, "model", p->models[t->model].name);
        cJSON_AddStringToObject(m, "type", t->type);
        cJSON_AddStringToObject(m, "calibration", t->calib >= 0 ? p->calibs[t->calib].label : "-");
        cJSON_AddNumberToObject(m, "threads", t->threads);
        cJSON_AddItemToArray(missing, m);
    }
    if (rc == SLM_OK) {
        cJSON_AddStringToObject(r, "plan", p->id);
        cJSON_AddStringToObject(r, "build", p->build);
        cJSON_AddStringToObject(r, "name", p->name);
        cJSON_AddNumberToObject(r, "tasks", p->n_tasks);
        cJSON *groups = cJSON_AddArrayToObject(r, "groups");
        for (int m = 0; m < p->n_models; m++)
            for (int c = 0; c < p->n_calibs; c++)
                for (int th = 0; th < p->n_threads; th++) {
                    cJSON *g = cJSON_CreateObject(), *gr = cJSON_CreateArray();
                    cJSON_AddStringToObject(g, "model", p->models[m].name);
                    cJSON_AddStringToObject(g, "calibration", p->calibs[c].label);
                    cJSON_AddNumberToObject(g, "threads", p->threads[th]);
                    /* base first, then the types in the plan's order: compare's table */
                    for (int i = 0; i < p->n_tasks; i++) {
                        const sweep_task *t = &p->tasks[i];
                        if (t->model == m && t->threads == p->threads[th] && t->calib < 0 && rows[i])
                            cJSON_AddItemToArray(gr, cJSON_Duplicate(rows[i], 1));
                    }
                    for (int y = 0; y < p->n_types; y++)
                        for (int i = 0; i < p->n_tasks; i++) {
                            const sweep_task *t = &p->tasks[i];
                            if (t->model == m && t->calib == c && t->threads == p->threads[th] &&
                                !strcmp(t->type, p->types[y]) && rows[i])
                                cJSON_AddItemToArray(gr, cJSON_Duplicate(rows[i], 1));
                        }
                    cJSON_AddItemToObject(g, "rows", gr);
                    cJSON_AddItemToArray(groups, g);
                }
        cJSON_AddItemToObject(r, "missing", missing);
        missing = NULL;
        *report = r;
        r = NULL;
    }
    for (int i = 0; i < p->n_tasks; i++)
        cJSON_Delete(rows[i]);
    free(rows);
    cJSON_Delete(r);
    cJSON_Delete(missing);
    return rc;
}

static int put(const char *dir, const char *name, const char *text, slm_err *err)
{
    char *path = sw_join(dir, name);
    int rc = path ? sw_write_atomic(path, text, strlen(text), err) : slm_err_set(err, SLM_EINTERNAL, "out of memory");
    free(path);
    return rc;
}

int sweep_report_write(const sweep_plan *p, const cJSON *report, const char *out_dir, char **md_out, slm_err *err)
{
    if (md_out)
        *md_out = NULL;
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return slm_err_set(err, SLM_EIO, "%s: cannot create: %s", out_dir, strerror(errno));
    char *md = NULL;
    size_t mdlen = 0;
    FILE *f = open_memstream(&md, &mdlen);
    cJSON *out = cJSON_Duplicate(report, 1);
    if (!f || !out) {
        if (f)
            fclose(f);
        free(md);
        cJSON_Delete(out);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    int rc = SLM_OK, gi = 0;
    const cJSON *missing = cJSON_GetObjectItemCaseSensitive(report, "missing");
    int n_missing = cJSON_GetArraySize(missing);
    fprintf(f, "# slm sweep %s: plan %.12s, slmkit build %s, %d of %d tasks\n", p->name, p->id, p->build,
            p->n_tasks - n_missing, p->n_tasks);
    cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(out, "groups")) {
        const char *model = cJSON_GetObjectItemCaseSensitive(g, "model")->valuestring,
                   *calib = cJSON_GetObjectItemCaseSensitive(g, "calibration")->valuestring;
        int threads = (int)cJSON_GetObjectItemCaseSensitive(g, "threads")->valuedouble;
        cJSON *rows = cJSON_GetObjectItemCaseSensitive(g, "rows");
        char title[300], name[32];
        snprintf(title, sizeof title, "slm sweep: %s, calibration %s, %d thread%s: quality vs size", model, calib,
                 threads, threads == 1 ? "" : "s");
        snprintf(name, sizeof name, "group-%d.svg", gi++);
        char *table = bench_compare_format(rows, "md", p->pp, p->tg, NULL);
        char *json = bench_compare_format(rows, "json", p->pp, p->tg, NULL);
        char *svg = bench_compare_format(rows, "svg", p->pp, p->tg, title);
        cJSON *jrows = json ? cJSON_Parse(json) : NULL;
        if (!table || !jrows || !svg)
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        else {
            fprintf(f, "\n## %s, calibration %s, %d thread%s\n\n%s\nchart: %s\n", model, calib, threads,
                    threads == 1 ? "" : "s", table, name);
            cJSON_ReplaceItemInObjectCaseSensitive(g, "rows", jrows);
            jrows = NULL;
            cJSON_AddStringToObject(g, "svg", name);
            rc = put(out_dir, name, svg, err);
        }
        cJSON_Delete(jrows);
        free(table);
        free(json);
        free(svg);
        if (rc)
            break;
    }
    if (n_missing) {
        fprintf(f, "\n## Missing: %d of %d tasks\n\n", n_missing, p->n_tasks);
        const cJSON *m;
        cJSON_ArrayForEach(m, missing)
            fprintf(f, "- task %d (%s): %s %s, calibration %s, %d thread(s)\n",
                    (int)cJSON_GetObjectItemCaseSensitive(m, "index")->valuedouble,
                    cJSON_GetObjectItemCaseSensitive(m, "id")->valuestring,
                    cJSON_GetObjectItemCaseSensitive(m, "model")->valuestring,
                    cJSON_GetObjectItemCaseSensitive(m, "type")->valuestring,
                    cJSON_GetObjectItemCaseSensitive(m, "calibration")->valuestring,
                    (int)cJSON_GetObjectItemCaseSensitive(m, "threads")->valuedouble);
    }
    int closed = fclose(f);
    if (!rc && (closed != 0 || !md))
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    char *js = rc ? NULL : cJSON_Print(out);
    if (!rc && !js)
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    if (!rc)
        rc = put(out_dir, "report.json", js, err);
    if (!rc)
        rc = put(out_dir, "report.md", md, err);
    free(js);
    cJSON_Delete(out);
    if (!rc && md_out)
        *md_out = md;
    else
        free(md);
    return rc;
}
