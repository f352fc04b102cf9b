/* sweep/exec.c — running a plan's tasks on this machine: each step a child process of this
 * same binary (/proc/self/exe) in PLAN_DIR, the task index from the scheduler's environment,
 * the fault-injection hook of the tests, and submitting a Slurm script with sbatch. Never
 * prints: what the caller reports comes back through callbacks and results. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sweep_internal.h"

int sweep_exec_self(void *ctx, const char *step, char *const *argv, const char *cwd, const char *out,
                    const char *log)
{
    (void)ctx, (void)step;
    fflush(stdout); /* the child must not write our buffered output again */
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

int sweep_env_task(int *index, slm_err *err)
{
    const char *e = getenv("SLURM_ARRAY_TASK_ID");
    if (!e || !*e)
        e = getenv("JOB_COMPLETION_INDEX");
    if (!e || !*e)
        return slm_err_set(err, SLM_EUSAGE, "run: give --task I (or run under Slurm / an Indexed Job), or --all");
    char *end;
    errno = 0;
    long long v = strtoll(e, &end, 10);
    if (errno || *end || v < 0 || v > INT_MAX)
        return slm_err_set(err, SLM_EUSAGE, "run: task index '%s' from the environment is not a number", e);
    *index = (int)v;
    return SLM_OK;
}

/* SLM_SWEEP_STALL=INDEX:POINT stops task INDEX at POINT (a step name, or "commit": its result
 * written but not yet renamed) until the process is killed (docs/sweep.md). */
static void stall_hook(void *ctx, int index, const char *point)
{
    const sweep_local_opts *o = ctx;
    const char *s = getenv("SLM_SWEEP_STALL");
    char want[64];
    if (!s || snprintf(want, sizeof want, "%d:%s", index, point) <= 0 || strcmp(s, want))
        return;
    if (o->stalled)
        o->stalled(o->user, index, point);
    for (;;)
        pause();
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int sweep_run_local(const sweep_plan *p, const char *plan_dir, int first, int last, const sweep_local_opts *lo,
                    slm_err *err)
{
    sweep_run_opts o = {sweep_exec_self, stall_hook, (void *)lo, lo->build};
    for (int i = first; i <= last; i++) {
        int outcome = 0;
        double t0 = now_s();
        int rc = sweep_run_task(p, plan_dir, i, &o, &outcome, err);
        if (rc)
            return rc;
        if (lo->done)
            lo->done(lo->user, i, outcome, now_s() - t0);
    }
    return SLM_OK;
}

/* sbatch --parsable SCRIPT: the job id from its stdout, its exit status; *exec_errno when sbatch
 * could not be started (the child tells through a close-on-exec pipe). */
static int run_sbatch(const char *script, char *jobid, size_t cap, int *exec_errno)
{
    int pfd[2], efd[2];
    *exec_errno = 0;
    if (pipe(pfd) != 0)
        return -1;
    if (pipe2(efd, O_CLOEXEC) != 0) {
        close(pfd[0]), close(pfd[1]);
        return -1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]), close(pfd[1]), close(efd[0]), close(efd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(efd[0]);
        execlp("sbatch", "sbatch", "--parsable", script, (char *)NULL);
        int e = errno;
        ssize_t w = write(efd[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    close(pfd[1]);
    close(efd[1]);
    size_t n = 0;
    for (ssize_t r; n + 1 < cap && (r = read(pfd[0], jobid + n, cap - 1 - n)) != 0;)
        if (r > 0)
            n += (size_t)r;
        else if (errno != EINTR)
            break;
    close(pfd[0]);
    jobid[n] = 0;
    jobid[strcspn(jobid, ";\n")] = 0;
    int e = 0;
    if (read(efd[0], &e, sizeof e) == (ssize_t)sizeof e)
        *exec_errno = e;
    close(efd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int submit_slurm(const sweep_plan *p, const char *dir, const sweep_submit_opts *o, sweep_submit_result *r,
                        slm_err *err)
{
    int *idx = NULL, n = 0, rc = SLM_OK;
    char *abs = realpath(dir, NULL), self[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    self[sl > 0 ? sl : 0] = 0;
    if (!abs)
        rc = slm_err_set(err, SLM_EIO, "%s: %s", dir, strerror(errno));
    else if ((rc = sweep_missing(p, dir, &idx, &n, err)) == SLM_OK && n > 0) {
        snprintf(r->path, sizeof r->path, "%s/sweep.sbatch", abs);
        char *text = sweep_slurm_script(p, abs, o->slm ? o->slm : self, idx, n, o->partition, o->max_parallel);
        r->array = sweep_array_spec(idx, n, o->max_parallel);
        r->submitted = n;
        rc = text ? sw_write_atomic(r->path, text, strlen(text), err) : slm_err_set(err, SLM_EINTERNAL, "out of memory");
        free(text);
        if (!rc && !o->dry_run) {
            int st = run_sbatch(r->path, r->job, sizeof r->job, &r->exec_errno);
            if (st != 0)
                rc = slm_err_set(err, SLM_EIO, "sbatch %s failed (exit %d)", r->path, st);
        }
    }
    free(idx);
    free(abs);
    return rc;
}

int sweep_submit(const sweep_plan *p, const char *dir, const sweep_submit_opts *o, sweep_submit_result *r,
                 slm_err *err)
{
    memset(r, 0, sizeof *r);
    if (o->mode == SWEEP_SUBMIT_SLURM)
        return submit_slurm(p, dir, o, r, err);
    char def[PATH_MAX + 64], pp[PATH_MAX + 64];
    snprintf(def, sizeof def, "%s/%s", dir, o->mode == SWEEP_SUBMIT_K8S ? "sweep-job.yaml" : "sweep-workflow.yml");
    snprintf(r->path, sizeof r->path, "%s", o->out ? o->out : def);
    char *text;
    if (o->mode == SWEEP_SUBMIT_K8S) {
        /* PLAN_DIR as the pods see it: its last component under the mount */
        const char *b;
        size_t l = strlen(dir);
        while (l > 1 && dir[l - 1] == '/')
            l--;
        for (b = dir + l; b > dir && b[-1] != '/'; b--)
            ;
        const char *mount = o->mount ? o->mount : "/sweep";
        snprintf(pp, sizeof pp, "%s/%.*s", mount, (int)(dir + l - b), b);
        sweep_k8s_opts ko = {o->image ? o->image : "slmkit:latest", o->claim ? o->claim : "slm-sweep", mount,
                             o->plan_path ? o->plan_path : pp, o->slm ? o->slm : "slm", o->max_parallel};
        text = sweep_k8s_manifest(p, &ko);
    } else {
        if (!o->spec)
            return slm_err_set(err, SLM_EUSAGE, "submit --github: give --spec SWEEP.json (relative to the repository root)");
        if (!o->plan_path && dir[0] == '/')
            return slm_err_set(err, SLM_EUSAGE,
                               "submit --github: PLAN_DIR is absolute; give --plan-path (relative to the repository)");
        sweep_github_opts go = {o->spec, o->plan_path ? o->plan_path : dir,
                                o->setup ? o->setup : "sudo make deps-build && make -j2",
                                o->slm ? o->slm : "./build/slm", o->runs_on ? o->runs_on : "ubuntu-latest",
                                o->max_parallel};
        text = sweep_github_workflow(p, &go);
    }
    int rc = text ? sw_write_atomic(r->path, text, strlen(text), err) : slm_err_set(err, SLM_EINTERNAL, "out of memory");
    free(text);
    return rc;
}

void sweep_submit_result_free(sweep_submit_result *r)
{
    free(r->array);
    r->array = NULL;
}
