/* tools/sweep.c — `slm sweep`: compare's grid as tasks for a cluster scheduler (sweep/ does the
 * work: plans, runs the child steps, merges, submits; this file parses options and prints). */
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "sweep.h"
#include "version.h"

#define CMD "sweep"

static int load(const char *dir, sweep_plan *p)
{
    slm_err err = {0};
    return sweep_plan_read(dir, p, &err) ? cli_fail_err(CMD, &err) : 0;
}

static int do_plan(const char *spec, const char *out, int json)
{
    sweep_plan p;
    slm_err err = {0};
    int same = 0;
    if (sweep_plan_make(spec, out, SLM_GIT_COMMIT, &p, &err) || sweep_plan_write(&p, out, &same, &err)) {
        if (!err.code)
            slm_err_set(&err, SLM_EINTERNAL, "out of memory");
        sweep_plan_free(&p);
        return cli_fail_err(CMD, &err);
    }
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "plan", p.id);
        cJSON_AddStringToObject(j, "dir", out);
        cJSON_AddNumberToObject(j, "tasks", p.n_tasks);
        cJSON_AddBoolToObject(j, "unchanged", same);
        char *s = cJSON_Print(j);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
    } else {
        printf("plan %.12s in %s%s: %d tasks = %d models x %d thread counts x (1 base + %d types x %d calibrations)\n",
               p.id, out, same ? " (unchanged)" : "", p.n_tasks, p.n_models, p.n_threads, p.n_types, p.n_calibs);
        for (int i = 0; i < p.n_tasks; i++) {
            const sweep_task *t = &p.tasks[i];
            printf("  %4d %s %-8s %s%s%s, %d thread%s\n", i, t->id, t->type, p.models[t->model].name,
                   t->calib >= 0 ? ", calibration " : "", t->calib >= 0 ? p.calibs[t->calib].label : "", t->threads,
                   t->threads == 1 ? "" : "s");
        }
    }
    sweep_plan_free(&p);
    return 0;
}

/* a library status: usage errors with the usage hint, the rest as one error line */
static int fail_lib(const slm_err *err)
{
    return err->code == SLM_EUSAGE ? cli_usage(CMD, "%s", err->msg) : cli_fail_err(CMD, err);
}

typedef struct run_report {
    const sweep_plan *p;
    cJSON *out;
} run_report;

static void on_task_done(void *user, int i, int outcome, double secs)
{
    run_report *r = user;
    const sweep_plan *p = r->p;
    const sweep_task *t = &p->tasks[i];
    fprintf(stderr, "slm sweep: task %d (%s): %s of %s%s%s, %d thread(s): %s", i, t->id, t->type,
            p->models[t->model].name, t->calib >= 0 ? ", calibration " : "",
            t->calib >= 0 ? p->calibs[t->calib].label : "", t->threads,
            outcome == SWEEP_SKIPPED ? "already done (skipped)\n" : "done");
    if (outcome != SWEEP_SKIPPED)
        fprintf(stderr, " in %.1f s\n", secs);
    cJSON *o1 = cJSON_CreateObject();
    cJSON_AddNumberToObject(o1, "task", i);
    cJSON_AddStringToObject(o1, "id", t->id);
    cJSON_AddStringToObject(o1, "outcome", outcome == SWEEP_SKIPPED ? "skipped" : "ran");
    cJSON_AddItemToArray(r->out, o1);
}

static void on_stalled(void *user, int index, const char *point)
{
    (void)user;
    fprintf(stderr, "slm sweep: task %d (pid %ld) stalled at %s (SLM_SWEEP_STALL)\n", index, (long)getpid(), point);
}

static int do_run(const char *dir, long long task, int all, int json)
{
    slm_err err = {0};
    int index = (int)task;
    if (task < 0 && !all && sweep_env_task(&index, &err))
        return fail_lib(&err);
    sweep_plan p;
    int rc = load(dir, &p);
    if (rc)
        return rc;
    run_report rep = {&p, cJSON_CreateArray()};
    sweep_local_opts o = {SLM_GIT_COMMIT, on_task_done, on_stalled, &rep};
    if (sweep_run_local(&p, dir, all ? 0 : index, all ? p.n_tasks - 1 : index, &o, &err))
        rc = cli_fail_err(CMD, &err);
    char *js = json && !rc ? cJSON_Print(rep.out) : NULL;
    if (js)
        printf("%s\n", js);
    free(js);
    cJSON_Delete(rep.out);
    sweep_plan_free(&p);
    return rc;
}

static int do_merge(const char *dir, const char *out, int json)
{
    sweep_plan p;
    int rc = load(dir, &p);
    if (rc)
        return rc;
    cJSON *report = NULL;
    char *md = NULL;
    slm_err err = {0};
    if (sweep_merge(&p, dir, &report, &err) || sweep_report_write(&p, report, out, &md, &err))
        rc = cli_fail_err(CMD, &err);
    else {
        if (json) {
            char *s = cJSON_Print(report);
            if (s)
                printf("%s\n", s);
            free(s);
        } else
            fputs(md, stdout);
        int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(report, "missing"));
        if (n) {
            fprintf(stderr, "slm sweep: %d of %d tasks have no result:", n, p.n_tasks);
            const cJSON *m;
            cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(report, "missing"))
                fprintf(stderr, " %d", (int)cJSON_GetObjectItemCaseSensitive(m, "index")->valuedouble);
            fprintf(stderr, " (see %s/report.md)\n", out);
            rc = SLM_EFAIL;
        }
    }
    free(md);
    cJSON_Delete(report);
    sweep_plan_free(&p);
    return rc;
}

typedef struct submit_args {
    int slurm, k8s, github, dry_run, json;
    long long max_par;
    const char *out, *partition, *slm, *image, *claim, *mount, *plan_path, *setup, *runs_on, *spec;
} submit_args;

typedef struct sweep_args {
    submit_args s;
    long long task;
    int all;
} sweep_args;

static const char *const sweep_subs[] = {"plan", "run", "merge", "submit", NULL};

static const slm_opt sweep_opts[] = {
    OPT_PATH('o', "output", sweep_args, s.out, "PATH", "plan: PLAN_DIR; merge: REPORT_DIR; submit --k8s/--github: the file written"),
    OPT_I64(0, "task", sweep_args, task, "I", 0, INT_MAX, "run: the task index (else $SLURM_ARRAY_TASK_ID, $JOB_COMPLETION_INDEX)"),
    OPT_FLAG(0, "all", sweep_args, all, "run: every task, one after the other"),
    OPT_FLAG(0, "slurm", sweep_args, s.slurm, "submit: write PLAN_DIR/sweep.sbatch and submit it with sbatch"),
    OPT_FLAG(0, "k8s", sweep_args, s.k8s, "submit: write a Kubernetes Indexed Job"),
    OPT_FLAG(0, "github", sweep_args, s.github, "submit: write a GitHub Actions workflow (matrix job + merge job)"),
    OPT_STRING(0, "partition", sweep_args, s.partition, "P", "submit --slurm: the partition"),
    OPT_I64(0, "max-parallel", sweep_args, s.max_par, "K", 1, 1 << 20, "submit: at most K tasks at once"),
    OPT_STRING(0, "slm", sweep_args, s.slm, "PATH", "submit: the slm the jobs run (default: this binary)"),
    OPT_FLAG(0, "dry-run", sweep_args, s.dry_run, "submit --slurm: write the script, do not submit"),
    OPT_STRING(0, "image", sweep_args, s.image, "I", "submit --k8s: the container image"),
    OPT_STRING(0, "claim", sweep_args, s.claim, "PVC", "submit --k8s: the shared volume's claim"),
    OPT_STRING(0, "mount", sweep_args, s.mount, "DIR", "submit --k8s: where the volume is mounted"),
    OPT_STRING(0, "plan-path", sweep_args, s.plan_path, "P", "submit --k8s/--github: PLAN_DIR as the jobs see it"),
    OPT_PATH(0, "spec", sweep_args, s.spec, "SWEEP.json", "submit --github: the spec each job plans from (relative to the repository)"),
    OPT_STRING(0, "setup", sweep_args, s.setup, "CMD", "submit --github: the command that builds slm"),
    OPT_STRING(0, "runs-on", sweep_args, s.runs_on, "LABEL", "submit --github: the runner label"),
    OPT_INCLUDE_AS(cli_json_table, sweep_args, s.json, "print the result as one JSON object"),
    OPT_END(),
};

const slm_cmd_doc doc_sweep = {
    .usage =
        "slm sweep plan SWEEP.json -o PLAN_DIR [--json]\n"
        "slm sweep run PLAN_DIR [--task I | --all] [--json]\n"
        "slm sweep merge PLAN_DIR -o REPORT_DIR [--json]\n"
        "slm sweep submit PLAN_DIR --slurm [--partition P] [--max-parallel K] [--slm PATH] [--dry-run]\n"
        "slm sweep submit PLAN_DIR --k8s [-o FILE] [--image I] [--claim PVC] [--mount DIR] [--plan-path P] [--max-parallel K]\n"
        "slm sweep submit PLAN_DIR --github --spec SWEEP.json [-o FILE] [--plan-path P] [--setup CMD] [--slm CMD] [--runs-on LABEL] [--max-parallel K]",
    .description =
        "slm compare's grid (models x types x calibration x threads) as independent tasks for a\n"
        "cluster scheduler: Slurm job arrays, Kubernetes Indexed Jobs, GitHub Actions matrices.\n"
        "  plan    SWEEP.json (fields in docs/sweep.md) -> PLAN_DIR/plan.json: the tasks, each with a\n"
        "          content-addressed id and its exact commands; deterministic. PLAN_DIR must be on\n"
        "          storage every worker sees.\n"
        "  run     one task; the index is --task I, else $SLURM_ARRAY_TASK_ID, else $JOB_COMPLETION_INDEX\n"
        "          (--all: every task, one after the other). A task with a result is skipped; results\n"
        "          and artifacts land by atomic rename: a killed task leaves no partial result.\n"
        "  merge   every result into slm compare's table, JSON and chart (one per model x calibration x\n"
        "          threads): REPORT_DIR/report.md, report.json, group-N.svg. Refuses results of another\n"
        "          plan or another slmkit build; lists the tasks without a result (exit 1).\n"
        "  submit  --slurm writes PLAN_DIR/sweep.sbatch (sbatch --array over the tasks without a result,\n"
        "          %K with --max-parallel) and submits it (--dry-run: write only); --k8s writes an\n"
        "          Indexed Job (default PLAN_DIR/sweep-job.yaml); --github a workflow with a matrix job\n"
        "          and a merge job (default PLAN_DIR/sweep-workflow.yml), each job planning again from\n"
        "          --spec (paths relative to the repository root).\n",
    .opts = sweep_opts,
    .subcommands = sweep_subs,
    .exit_codes =
        "0 ok, 1 merge: tasks missing, 2 usage, 3 bad input (a bad SWEEP.json or plan, a\n"
        "result of another plan or build, a failed step), 4 I/O, 6 internal",
};

static int do_submit(const char *dir, const submit_args *a)
{
    if (a->slurm + a->k8s + a->github != 1)
        return cli_usage(CMD, "submit: give one of --slurm, --k8s, --github");
    sweep_plan p;
    int rc = load(dir, &p);
    if (rc)
        return rc;
    sweep_submit_opts so = {a->slurm ? SWEEP_SUBMIT_SLURM : a->k8s ? SWEEP_SUBMIT_K8S : SWEEP_SUBMIT_GITHUB,
                            a->out, a->partition, a->slm, a->image, a->claim, a->mount, a->plan_path, a->setup,
                            a->runs_on, a->spec, (int)a->max_par, a->dry_run};
    sweep_submit_result r;
    slm_err err = {0};
    rc = sweep_submit(&p, dir, &so, &r, &err);
    if (r.exec_errno)
        fprintf(stderr, "slm sweep: error: sbatch: %s (is Slurm's client installed?)\n", strerror(r.exec_errno));
    if (rc)
        rc = fail_lib(&err);
    cJSON *j = cJSON_CreateObject();
    if (!a->slurm) {
        if (!rc)
            fprintf(stderr, "slm sweep: wrote %s (%d tasks)\n", r.path, p.n_tasks);
        cJSON_AddStringToObject(j, "file", r.path);
        cJSON_AddNumberToObject(j, "tasks", p.n_tasks);
    } else if (!rc && r.submitted == 0) {
        fprintf(stderr, "slm sweep: all %d tasks have a result: nothing to submit\n", p.n_tasks);
        cJSON_AddNumberToObject(j, "submitted", 0);
    } else if (!rc) {
        cJSON_AddStringToObject(j, "script", r.path);
        cJSON_AddStringToObject(j, "array", r.array ? r.array : "");
        cJSON_AddNumberToObject(j, "submitted", r.submitted);
        if (!a->dry_run) {
            fprintf(stderr, "slm sweep: submitted batch job %s: array %s, %d of %d tasks\n", r.job, r.array,
                    r.submitted, p.n_tasks);
            cJSON_AddStringToObject(j, "job", r.job);
        } else
            fprintf(stderr, "slm sweep: wrote %s (array %s; --dry-run: not submitted)\n", r.path, r.array);
    }
    if (!rc && a->json) {
        char *s = cJSON_Print(j);
        if (s)
            printf("%s\n", s);
        free(s);
    }
    cJSON_Delete(j);
    sweep_submit_result_free(&r);
    sweep_plan_free(&p);
    return rc;
}

int cmd_sweep(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage(CMD, "give a subcommand: plan, run, merge or submit (slm sweep --help)");
    const char *sub = argv[1], *pos = NULL;
    sweep_args sa = {.task = -1};
    int ai = slm_opt_parse(CMD, sweep_opts, argc - 1, argv + 1, &sa);
    if (ai < 0)
        return -ai;
    ai += 1; /* operands: argv[ai..argc) */
    if (ai < argc)
        pos = argv[ai++];
    if (ai < argc)
        return cli_usage(CMD, "unexpected argument '%s'", argv[ai]);
    const submit_args *a = &sa.s;
    if (!pos)
        return cli_usage(CMD, "%s: %s is required", sub, !strcmp(sub, "plan") ? "SWEEP.json" : "PLAN_DIR");
    if (!strcmp(sub, "plan"))
        return a->out ? do_plan(pos, a->out, a->json) : cli_usage(CMD, "plan: -o PLAN_DIR is required");
    if (!strcmp(sub, "run"))
        return do_run(pos, sa.task, sa.all, a->json);
    if (!strcmp(sub, "merge"))
        return a->out ? do_merge(pos, a->out, a->json) : cli_usage(CMD, "merge: -o REPORT_DIR is required");
    if (!strcmp(sub, "submit"))
        return do_submit(pos, a);
    return cli_usage(CMD, "unknown subcommand '%s' (plan, run, merge, submit)", sub);
}
