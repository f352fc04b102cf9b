/* tools/sweep.c — `slm sweep`: compare's grid as tasks for a cluster scheduler (sweep/ does the
 * work; this file parses options, runs child steps, prints). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "sweep.h"
#include "version.h"

#define CMD "sweep"

/* ---- child steps: this binary, in PLAN_DIR ---------------------------------------------- */

static int exec_step(void *ctx, const char *step, char *const *argv, const char *cwd, const char *out,
                     const char *log)
{
    (void)ctx, (void)step;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int o = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int l = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (o < 0 || l < 0 || chdir(cwd) != 0)
            _exit(127);
        dup2(o, 1);
        dup2(l, 2);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Fault injection for the tests (docs/sweep.md): SLM_SWEEP_STALL=INDEX:POINT stops task INDEX
 * at POINT (a step name, or "commit": its result written but not yet renamed) until killed. */
static void stall_hook(void *ctx, int index, const char *point)
{
    (void)ctx;
    const char *s = getenv("SLM_SWEEP_STALL");
    char want[64];
    if (!s || snprintf(want, sizeof want, "%d:%s", index, point) <= 0 || strcmp(s, want))
        return;
    fprintf(stderr, "slm sweep: task %d (pid %ld) stalled at %s (SLM_SWEEP_STALL)\n", index, (long)getpid(), point);
    for (;;)
        pause();
}

static int load(const char *dir, sweep_plan *p)
{
    slm_err err = {0};
    return sweep_plan_read(dir, p, &err) ? cli_fail_err(CMD, &err) : 0;
}

static int write_text(const char *path, const char *text)
{
    slm_afile *f;
    slm_err err = {0};
    if (!text)
        return cli_fail(CMD, SLM_EINTERNAL, "out of memory");
    if (slm_afile_open(path, &f, &err))
        return cli_fail_err(CMD, &err);
    if (slm_afile_write(f, text, strlen(text), &err)) {
        slm_afile_abort(f);
        return cli_fail_err(CMD, &err);
    }
    return slm_afile_commit(f, &err) ? cli_fail_err(CMD, &err) : 0;
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

static int do_run(const char *dir, long long task, int all, int json)
{
    if (task < 0 && !all) {
        const char *e = getenv("SLURM_ARRAY_TASK_ID");
        if (!e || !*e)
            e = getenv("JOB_COMPLETION_INDEX");
        if (!e || !*e)
            return cli_usage(CMD, "run: give --task I (or run under Slurm / an Indexed Job), or --all");
        if (cli_parse_int(e, 0, INT_MAX, &task))
            return cli_usage(CMD, "run: task index '%s' from the environment is not a number", e);
    }
    sweep_plan p;
    int rc = load(dir, &p);
    if (rc)
        return rc;
    sweep_run_opts o = {exec_step, stall_hook, NULL, SLM_GIT_COMMIT};
    int first = all ? 0 : (int)task, last = all ? p.n_tasks - 1 : (int)task;
    cJSON *out = cJSON_CreateArray();
    for (int i = first; i <= last && !rc; i++) {
        int outcome = 0;
        slm_err err = {0};
        double t0 = cli_now();
        rc = sweep_run_task(&p, dir, i, &o, &outcome, &err);
        if (rc) {
            rc = cli_fail_err(CMD, &err);
            break;
        }
        const sweep_task *t = i < p.n_tasks ? &p.tasks[i] : NULL;
        fprintf(stderr, "slm sweep: task %d (%s): %s of %s%s%s, %d thread(s): %s", i, t->id, t->type,
                p.models[t->model].name, t->calib >= 0 ? ", calibration " : "",
                t->calib >= 0 ? p.calibs[t->calib].label : "", t->threads,
                outcome == SWEEP_SKIPPED ? "already done (skipped)\n" : "done");
        if (outcome != SWEEP_SKIPPED)
            fprintf(stderr, " in %.1f s\n", cli_now() - t0);
        cJSON *o1 = cJSON_CreateObject();
        cJSON_AddNumberToObject(o1, "task", i);
        cJSON_AddStringToObject(o1, "id", t->id);
        cJSON_AddStringToObject(o1, "outcome", outcome == SWEEP_SKIPPED ? "skipped" : "ran");
        cJSON_AddItemToArray(out, o1);
    }
    char *js = json && !rc ? cJSON_Print(out) : NULL;
    if (js)
        printf("%s\n", js);
    free(js);
    cJSON_Delete(out);
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

/* sbatch --parsable SCRIPT: the job id on stdout. */
static int run_sbatch(const char *script, char *jobid, size_t cap)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        execlp("sbatch", "sbatch", "--parsable", script, (char *)NULL);
        fprintf(stderr, "slm sweep: error: sbatch: %s (is Slurm's client installed?)\n", strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    size_t n = 0;
    for (ssize_t r; n + 1 < cap && (r = read(pfd[0], jobid + n, cap - 1 - n)) != 0;)
        if (r > 0)
            n += (size_t)r;
        else if (errno != EINTR)
            break;
    close(pfd[0]);
    jobid[n] = 0;
    jobid[strcspn(jobid, ";\n")] = 0;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
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
    char path[PATH_MAX + 64], pp[PATH_MAX + 64];
    char *text = NULL;
    cJSON *j = cJSON_CreateObject();
    if (a->slurm) {
        int *idx = NULL, n = 0;
        slm_err err = {0};
        char *abs = realpath(dir, NULL), self[PATH_MAX];
        ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
        self[sl > 0 ? sl : 0] = 0;
        if (!abs)
            rc = cli_fail(CMD, SLM_EIO, "%s: %s", dir, strerror(errno));
        else if (sweep_missing(&p, dir, &idx, &n, &err))
            rc = cli_fail_err(CMD, &err);
        else if (n == 0) {
            fprintf(stderr, "slm sweep: all %d tasks have a result: nothing to submit\n", p.n_tasks);
            cJSON_AddNumberToObject(j, "submitted", 0);
        } else {
            snprintf(path, sizeof path, "%s/sweep.sbatch", abs);
            text = sweep_slurm_script(&p, abs, a->slm ? a->slm : self, idx, n, a->partition, (int)a->max_par);
            char *spec = sweep_array_spec(idx, n, (int)a->max_par);
            rc = write_text(path, text);
            cJSON_AddStringToObject(j, "script", path);
            cJSON_AddStringToObject(j, "array", spec ? spec : "");
            cJSON_AddNumberToObject(j, "submitted", n);
            char jobid[128] = "";
            if (!rc && !a->dry_run) {
                int st = run_sbatch(path, jobid, sizeof jobid);
                if (st != 0)
                    rc = cli_fail(CMD, SLM_EIO, "sbatch %s failed (exit %d)", path, st);
                else
                    fprintf(stderr, "slm sweep: submitted batch job %s: array %s, %d of %d tasks\n", jobid, spec, n,
                            p.n_tasks);
                cJSON_AddStringToObject(j, "job", jobid);
            } else if (!rc)
                fprintf(stderr, "slm sweep: wrote %s (array %s; --dry-run: not submitted)\n", path, spec);
            free(spec);
        }
        free(idx);
        free(abs);
    } else {
        snprintf(path, sizeof path, "%s/%s", dir, a->k8s ? "sweep-job.yaml" : "sweep-workflow.yml");
        const char *out = a->out ? a->out : path;
        if (a->k8s) {
            const char *b;
            size_t l = strlen(dir);
            while (l > 1 && dir[l - 1] == '/')
                l--;
            for (b = dir + l; b > dir && b[-1] != '/'; b--)
                ;
            const char *mount = a->mount ? a->mount : "/sweep";
            snprintf(pp, sizeof pp, "%s/%.*s", mount, (int)(dir + l - b), b);
            sweep_k8s_opts ko = {a->image ? a->image : "slmkit:latest", a->claim ? a->claim : "slm-sweep", mount,
                                 a->plan_path ? a->plan_path : pp, a->slm ? a->slm : "slm", (int)a->max_par};
            text = sweep_k8s_manifest(&p, &ko);
        } else {
            if (!a->spec)
                rc = cli_usage(CMD, "submit --github: give --spec SWEEP.json (relative to the repository root)");
            else if (!a->plan_path && dir[0] == '/')
                rc = cli_usage(CMD, "submit --github: PLAN_DIR is absolute; give --plan-path (relative to the repository)");
            sweep_github_opts go = {a->spec, a->plan_path ? a->plan_path : dir,
                                    a->setup ? a->setup : "sudo make deps-build && make -j2",
                                    a->slm ? a->slm : "./build/slm", a->runs_on ? a->runs_on : "ubuntu-latest",
                                    (int)a->max_par};
            text = rc ? NULL : sweep_github_workflow(&p, &go);
        }
        if (!rc && !(rc = write_text(out, text)))
            fprintf(stderr, "slm sweep: wrote %s (%d tasks)\n", out, p.n_tasks);
        cJSON_AddStringToObject(j, "file", out);
        cJSON_AddNumberToObject(j, "tasks", p.n_tasks);
    }
    if (!rc && a->json) {
        char *s = cJSON_Print(j);
        if (s)
            printf("%s\n", s);
        free(s);
    }
    cJSON_Delete(j);
    free(text);
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
