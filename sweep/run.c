/* sweep/run.c — one task of a plan: the shared artifacts (made once, under a lock file, by
 * whichever task needs them first), the task's own measurement, its result committed by
 * rename. Idempotent: a task whose result is there is skipped. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "formats.h"
#include "sweep_internal.h"

#define RESULT_MAX_BYTES (1u << 20)

static int exists(const char *plan_dir, const char *rel)
{
    char *p = rel[0] == '/' ? strdup(rel) : sw_join(plan_dir, rel);
    struct stat st;
    int ok = p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
    free(p);
    return ok;
}

/* argv of a step (from sweep_task_steps) as a NULL-terminated char* array (pointers into j). */
static int step_argv(const cJSON *step, char **argv, int cap)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(step, "argv"), *v;
    int n = 0;
    cJSON_ArrayForEach(v, a) {
        if (n >= cap - 1 || !cJSON_IsString(v))
            return -1;
        argv[n++] = v->valuestring;
    }
    argv[n] = NULL;
    return n;
}

static const cJSON *find_step(const cJSON *steps, const char *name)
{
    const cJSON *s;
    cJSON_ArrayForEach(s, steps) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(s, "step");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
            return s;
    }
    return NULL;
}

typedef struct run_ctx {
    const sweep_plan *p;
    const char *plan_dir;
    int index;
    const sweep_run_opts *o;
    char log[600];
    slm_err *err;
} run_ctx;

/* Run a step; with stdout_rel, its stdout goes to a temp file renamed onto stdout_rel on success. */
static int run_step(run_ctx *r, const cJSON *step, const char *name, const char *stdout_rel)
{
    char *argv[48];
    if (step_argv(step, argv, 48) < 1)
        return slm_err_set(r->err, SLM_EINTERNAL, "task %d: step %s has no command", r->index, name);
    if (r->o->hook)
        r->o->hook(r->o->ctx, r->index, name);
    char tmp[800], dst[700];
    if (stdout_rel) {
        snprintf(dst, sizeof dst, "%s/%s", r->plan_dir, stdout_rel);
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dst, (long)getpid());
    }
    int st = r->o->exec(r->o->ctx, name, argv, r->plan_dir, stdout_rel ? tmp : NULL, r->log);
    if (st != 0) {
        if (stdout_rel)
            unlink(tmp);
        return slm_err_set(r->err, SLM_EINPUT, "task %d: step '%s' (slm %s) exited with %d (details in %s)", r->index,
                           name, argv[1], st, r->log);
    }
    if (stdout_rel && rename(tmp, dst) != 0) {
        int e = errno;
        unlink(tmp);
        return slm_err_set(r->err, SLM_EIO, "%s: cannot rename: %s", dst, strerror(e));
    }
    return SLM_OK;
}

/* A shared artifact: made unless present; under artifacts/.lock-NAME so concurrent tasks make
 * it once (when the file system has no locks, both make it: the bytes are the same and the last
 * rename wins). done_rel is the file whose presence means done. */
static int ensure(run_ctx *r, const cJSON *steps, const char *name, const char *done_rel, const char *stdout_rel)
{
    if (exists(r->plan_dir, done_rel))
        return SLM_OK;
    const char *b = strrchr(done_rel, '/');
    char lock[700];
    snprintf(lock, sizeof lock, "%s/artifacts/.lock-%s", r->plan_dir, b ? b + 1 : done_rel);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
            ;
    int rc = SLM_OK;
    if (!exists(r->plan_dir, done_rel)) {
        const cJSON *s = find_step(steps, name);
        rc = s ? run_step(r, s, name, stdout_rel)
               : slm_err_set(r->err, SLM_EINTERNAL, "task %d: no step %s", r->index, name);
    }
    if (fd >= 0)
        close(fd); /* releases the lock */
    return rc;
}

int sw_check_result(const sweep_plan *p, int i, const char *plan_dir, const char *path, cJSON **row, slm_err *err)
{
    (void)plan_dir;
    cJSON *j = sw_read_json(path, RESULT_MAX_BYTES, err);
    if (!j)
        return err->code;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format"),
                *plan = cJSON_GetObjectItemCaseSensitive(j, "plan"),
                *build = cJSON_GetObjectItemCaseSensitive(j, "build"),
                *task = cJSON_GetObjectItemCaseSensitive(j, "task"),
                *idx = cJSON_GetObjectItemCaseSensitive(j, "index"), *rw = cJSON_GetObjectItemCaseSensitive(j, "row");
    int rc = SLM_OK;
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "slmkit-sweep-result") || !cJSON_IsString(plan) ||
        !cJSON_IsString(build) || !cJSON_IsString(task) || !cJSON_IsNumber(idx) || !cJSON_IsObject(rw))
        rc = slm_err_set(err, SLM_EINPUT, "%s: not a sweep result", path);
    else if (strcmp(plan->valuestring, p->id))
        rc = slm_err_set(err, SLM_EINPUT, "%s: a result of another plan (%.12s), not of this one (%.12s)", path,
                         plan->valuestring, p->id);
    else if (strcmp(build->valuestring, p->build))
        rc = slm_err_set(err, SLM_EINPUT, "%s: made by slmkit build %s, the plan by build %s", path,
                         build->valuestring, p->build);
    else if (strcmp(task->valuestring, p->tasks[i].id) || idx->valuedouble != i)
        rc = slm_err_set(err, SLM_EINPUT, "%s: the result of task %s, not of task %d (%s)", path, task->valuestring,
                         i, p->tasks[i].id);
    if (rc == SLM_OK && row)
        *row = cJSON_DetachItemFromObjectCaseSensitive(j, "row");
    cJSON_Delete(j);
    return rc;
}

int sweep_run_task(const sweep_plan *p, const char *plan_dir, int index, const sweep_run_opts *o, int *outcome,
                   slm_err *err)
{
    *outcome = SWEEP_RAN;
    if (index < 0 || index >= p->n_tasks)
        return slm_err_set(err, SLM_EUSAGE, "task %d: the plan has %d tasks (0..%d)", index, p->n_tasks,
                           p->n_tasks - 1);
    if (!o->build || strcmp(o->build, p->build))
        return slm_err_set(err, SLM_EINPUT,
                           "%s/plan.json: made by slmkit build %s, this is build %s (run one build everywhere, or "
                           "plan again)", plan_dir, p->build, o->build ? o->build : "unknown");
    const sweep_task *t = &p->tasks[index];
    char result[700];
    snprintf(result, sizeof result, "%s/results/%s.json", plan_dir, t->id);
    slm_afile_clean_stale(result); /* a killed run's temp file */
    struct stat rst;
    if (stat(result, &rst) == 0) {
        int rc = sw_check_result(p, index, plan_dir, result, NULL, err);
        if (rc == SLM_OK)
            *outcome = SWEEP_SKIPPED;
        return rc;
    }
    cJSON *steps = sweep_task_steps(p, index);
    if (!steps)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    run_ctx r = {p, plan_dir, index, o, "", err};
    snprintf(r.log, sizeof r.log, "%s/logs/%s.log", plan_dir, t->id);
    struct timespec t0, t1;
    clock_gettime(CLOCK_REALTIME, &t0);
    const sweep_model *m = &p->models[t->model];
    char base[512], kld[512], bjson[512], path[512], own[700];
    sw_base_gguf(p, t->model, base, sizeof base);
    sw_base_kld(p, t->model, "kld", kld, sizeof kld);
    sw_base_kld(p, t->model, "json", bjson, sizeof bjson);
    int rc = SLM_OK;
    if (!m->is_gguf)
        rc = ensure(&r, steps, "convert", base, NULL);
    /* the base log-probabilities and perplexity: the JSON lands after the .kld, so it means both */
    if (!rc)
        rc = ensure(&r, steps, "base-perplexity", bjson, bjson);
    const char *ppl_rel = bjson;
    snprintf(path, sizeof path, "%s", base);
    if (!rc && t->calib >= 0) {
        const sweep_calib *c = &p->calibs[t->calib];
        if (c->imatrix) {
            char im[512];
            sw_imatrix(p, t->model, t->calib, im, sizeof im);
            rc = ensure(&r, steps, "imatrix", im, NULL);
        }
        sw_quantized(p, t->model, t->calib, t->type, path, sizeof path);
        if (!rc)
            rc = ensure(&r, steps, "quantize", path, NULL);
        snprintf(own, sizeof own, "logs/%s.perplexity.json", t->id);
        if (!rc)
            rc = run_step(&r, find_step(steps, "perplexity"), "perplexity", own);
        ppl_rel = own;
    }
    cJSON *res = NULL, *row = NULL, *pj = NULL;
    if (!rc) {
        char *pp = sw_join(plan_dir, ppl_rel);
        pj = pp ? sw_read_json(pp, RESULT_MAX_BYTES, err) : NULL;
        if (!pj && err->code == 0)
            slm_err_set(err, SLM_EINTERNAL, "out of memory");
        rc = pj ? SLM_OK : err->code;
        free(pp);
    }
    if (!rc) {
        /* compare's row, made by compare's code (bench/report.c) */
        res = cJSON_CreateObject();
        cJSON_AddStringToObject(res, "format", "slmkit-sweep-result");
        cJSON_AddNumberToObject(res, "version", 1);
        cJSON_AddStringToObject(res, "plan", p->id);
        cJSON_AddStringToObject(res, "build", p->build);
        cJSON_AddStringToObject(res, "task", t->id);
        cJSON_AddNumberToObject(res, "index", index);
        cJSON_AddStringToObject(res, "model", m->name);
        cJSON_AddStringToObject(res, "calibration", t->calib >= 0 ? p->calibs[t->calib].label : "-");
        cJSON_AddNumberToObject(res, "threads", t->threads);
        row = cJSON_AddObjectToObject(res, "row");
        cJSON_AddStringToObject(row, "type", t->type);
        cJSON_AddStringToObject(row, "path", path);
        char *ap = sw_join(plan_dir, path);
        struct stat fst;
        cJSON_AddNumberToObject(row, "file_bytes", ap && stat(ap, &fst) == 0 ? (double)fst.st_size : 0);
        bench_compare_quality(row, pj);
        if (o->hook)
            o->hook(o->ctx, index, "speed");
        rc = ap ? bench_compare_speed(ap, t->threads, p->pp, p->tg, row, err)
                : slm_err_set(err, SLM_EINTERNAL, "out of memory");
        free(ap);
    }
    if (!rc) {
        clock_gettime(CLOCK_REALTIME, &t1);
        cJSON_AddNumberToObject(res, "seconds", (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
        char *text = cJSON_Print(res);
        slm_afile *f = NULL;
        if (!text)
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        else if (!(rc = slm_afile_open(result, &f, err)) && !(rc = slm_afile_write(f, text, strlen(text), err)) &&
                 !(rc = slm_afile_write(f, "\n", 1, err))) {
            if (o->hook) /* the result is written but not yet in place */
                o->hook(o->ctx, index, "commit");
            rc = slm_afile_commit(f, err);
        } else if (f)
            slm_afile_abort(f);
        free(text);
    }
    if (t->calib >= 0) {
        char *op = sw_join(plan_dir, own);
        if (op)
            unlink(op);
        free(op);
    }
    cJSON_Delete(pj);
    cJSON_Delete(res);
    cJSON_Delete(steps);
    return rc;
}

int sweep_missing(const sweep_plan *p, const char *plan_dir, int **idx, int *n, slm_err *err)
{
    *n = 0;
    if (!(*idx = malloc(sizeof **idx * (size_t)(p->n_tasks ? p->n_tasks : 1))))
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    for (int i = 0; i < p->n_tasks; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "results/%s.json", p->tasks[i].id);
        if (!exists(plan_dir, rel))
            (*idx)[(*n)++] = i;
    }
    return SLM_OK;
}
