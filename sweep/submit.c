/* sweep/submit.c — the files a scheduler takes: an sbatch array script (Slurm), an Indexed Job
 * (Kubernetes), a workflow with a matrix job and a merge job (GitHub Actions). Text only: the
 * caller writes and submits them. Nothing here depends on the build or the time, so the files
 * of one plan are the same bytes every time (the tests hold golden copies). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sweep_internal.h"

char *sweep_array_spec(const int *idx, int n, int max_parallel)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && idx[j + 1] == idx[j] + 1)
            j++;
        fprintf(f, "%s%d", i ? "," : "", idx[i]);
        if (j > i)
            fprintf(f, "-%d", idx[j]);
        i = j + 1;
    }
    if (max_parallel > 0)
        fprintf(f, "%%%d", max_parallel);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* 'text' for sh (a ' inside becomes '\''). */
static void sh_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++)
        if (*s == '\'')
            fputs("'\\''", f);
        else
            fputc(*s, f);
    fputc('\'', f);
}

/* 'text' for YAML (a ' inside becomes ''). */
static void y_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

static int max_threads(const sweep_plan *p)
{
    int m = 1;
    for (int i = 0; i < p->n_threads; i++)
        m = p->threads[i] > m ? p->threads[i] : m;
    return m;
}

/* open_memstream's buffer is final only after fclose */
static char *finish(FILE *f, char **out)
{
    if (fclose(f) != 0) {
        free(*out);
        return NULL;
    }
    return *out;
}

char *sweep_slurm_script(const sweep_plan *p, const char *abs_plan_dir, const char *slm, const int *idx, int n,
                         const char *partition, int max_parallel)
{
    char *spec = sweep_array_spec(idx, n, max_parallel), *out = NULL;
    size_t len = 0;
    FILE *f = spec ? open_memstream(&out, &len) : NULL;
    if (!f) {
        free(spec);
        return NULL;
    }
    fprintf(f, "#!/bin/sh\n"
               "# slm sweep submit --slurm: %d of the plan's %d tasks as one job array; each array task runs\n"
               "# `slm sweep run PLAN_DIR` with its index from SLURM_ARRAY_TASK_ID. Resubmitting runs only\n"
               "# the tasks without a result.\n",
            n, p->n_tasks);
    fprintf(f, "#SBATCH --job-name=%s\n#SBATCH --array=%s\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=%d\n", p->name,
            spec, max_threads(p));
    if (partition)
        fprintf(f, "#SBATCH --partition=%s\n", partition);
    fprintf(f, "#SBATCH --output=%s/logs/slurm-%%A_%%a.out\n", abs_plan_dir);
    fputs("exec ", f);
    sh_quote(f, slm);
    fputs(" sweep run ", f);
    sh_quote(f, abs_plan_dir);
    fputc('\n', f);
    free(spec);
    return finish(f, &out);
}

char *sweep_k8s_manifest(const sweep_plan *p, const sweep_k8s_opts *o)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    int par = o->max_parallel > 0 && o->max_parallel < p->n_tasks ? o->max_parallel : p->n_tasks;
    fprintf(f, "# slm sweep submit --k8s: one Indexed Job, one pod (one container) per task index; each runs\n"
               "# `slm sweep run PLAN_DIR` with its index from JOB_COMPLETION_INDEX. The plan directory (and\n"
               "# the models and texts it names) live on the shared volume. kubectl apply -f THIS_FILE; when\n"
               "# the job completes, slm sweep merge PLAN_DIR -o REPORT on any machine that mounts the volume.\n");
    fprintf(f, "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: %s\n  labels:\n"
               "    app.kubernetes.io/name: slm-sweep\n    app.kubernetes.io/instance: %s\nspec:\n"
               "  completionMode: Indexed\n  completions: %d\n  parallelism: %d\n  backoffLimit: %d\n"
               "  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: slm-sweep\n"
               "    spec:\n      restartPolicy: Never\n      containers:\n        - name: task\n          image: ",
            p->name, p->name, p->n_tasks, par, p->n_tasks);
    y_quote(f, o->image);
    fputs("\n          command: [", f);
    y_quote(f, o->slm);
    fputs(", 'sweep', 'run', ", f);
    y_quote(f, o->plan_path);
    fprintf(f, "]\n          resources:\n            requests:\n              cpu: '%d'\n"
               "          volumeMounts:\n            - name: sweep\n              mountPath: ",
            max_threads(p));
    y_quote(f, o->mount);
    fputs("\n      volumes:\n        - name: sweep\n          persistentVolumeClaim:\n            claimName: ", f);
    y_quote(f, o->claim);
    fputc('\n', f);
    return finish(f, &out);
}

char *sweep_github_workflow(const sweep_plan *p, const sweep_github_opts *o)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    fprintf(f, "# slm sweep submit --github: commit as .github/workflows/%s.yml; run it from the Actions tab\n"
               "# (workflow_dispatch). Every job builds slm from the checkout and plans again from SWEEP.json\n"
               "# (the same plan everywhere); one matrix job per task (`slm sweep run PLAN_DIR --task N`), its\n"
               "# result uploaded as an artifact; the merge job downloads them all into PLAN_DIR/results and\n"
               "# runs `slm sweep merge`, whose report is uploaded too.\n",
            p->name);
    fprintf(f, "name: %s\n\"on\":\n  workflow_dispatch: {}\npermissions:\n  contents: read\njobs:\n", p->name);
    fprintf(f, "  sweep:\n    runs-on: %s\n    strategy:\n      fail-fast: false\n", o->runs_on);
    if (o->max_parallel > 0)
        fprintf(f, "      max-parallel: %d\n", o->max_parallel);
    fputs("      matrix:\n        task: [", f);
    for (int i = 0; i < p->n_tasks; i++)
        fprintf(f, "%s%d", i ? ", " : "", i);
    fputs("]\n    steps:\n      - uses: actions/checkout@v4\n      - name: setup\n        run: ", f);
    y_quote(f, o->setup);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s sweep plan %s -o %s", o->slm, o->spec, o->plan_path);
    fputs("\n      - name: plan\n        run: ", f);
    y_quote(f, cmd);
    fputs("\n      - name: task ${{ matrix.task }}\n        run: ", f);
    snprintf(cmd, sizeof cmd, "%s sweep run %s --task ${{ matrix.task }}", o->slm, o->plan_path);
    y_quote(f, cmd);
    fprintf(f, "\n      - uses: actions/upload-artifact@v4\n        with:\n"
               "          name: sweep-result-${{ matrix.task }}\n          path: ");
    snprintf(cmd, sizeof cmd, "%s/results/", o->plan_path);
    y_quote(f, cmd);
    fprintf(f, "\n  merge:\n    needs: sweep\n    if: ${{ always() }}\n    runs-on: %s\n    steps:\n"
               "      - uses: actions/checkout@v4\n      - name: setup\n        run: ",
            o->runs_on);
    y_quote(f, o->setup);
    snprintf(cmd, sizeof cmd, "%s sweep plan %s -o %s", o->slm, o->spec, o->plan_path);
    fputs("\n      - name: plan\n        run: ", f);
    y_quote(f, cmd);
    fputs("\n      - uses: actions/download-artifact@v4\n        with:\n          pattern: sweep-result-*\n"
          "          merge-multiple: true\n          path: ", f);
    snprintf(cmd, sizeof cmd, "%s/results", o->plan_path);
    y_quote(f, cmd);
    fputs("\n      - name: merge\n        run: ", f);
    snprintf(cmd, sizeof cmd, "%s sweep merge %s -o sweep-report", o->slm, o->plan_path);
    y_quote(f, cmd);
    fputs("\n      - uses: actions/upload-artifact@v4\n        if: ${{ always() }}\n        with:\n"
          "          name: sweep-report\n          path: sweep-report/\n", f);
    return finish(f, &out);
}
