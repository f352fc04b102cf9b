/* sweep/sweep.h — the face of slmkit's sweep library: `slm compare`'s grid (models x types x
 * calibration x threads) cut into independent tasks that a cluster scheduler runs (Slurm job
 * arrays, Kubernetes Indexed Jobs, GitHub Actions matrices), then merged into compare's report.
 *
 * A plan directory (PLAN_DIR, on storage every worker sees) holds:
 *   plan.json            the plan: settings, models, calibrations, tasks with their ids and steps
 *   results/<id>.json    one result per finished task (written with temp file + fsync + rename)
 *   artifacts/           base GGUFs, base log-probabilities, imatrices, quantized models
 *   logs/<id>.log        the stderr of each task's steps
 * Paths inside the plan are relative to PLAN_DIR; steps run with PLAN_DIR as working directory.
 *
 * Rules: like every slmkit library, sweep/ never prints and never exits; functions return an slm
 * status (0 = OK) and fill an slm_err whose message names the file and the problem. Child
 * processes (slm convert, quantize, perplexity, imatrix) are run by the caller's callback.
 * sweep/ may use formats/, libquant/, runtime/ and bench/. */
#ifndef SLM_SWEEP_H
#define SLM_SWEEP_H

#include "base.h"

#define SWEEP_MAX_MODELS 64
#define SWEEP_MAX_TYPES 32
#define SWEEP_MAX_CALIBS 8
#define SWEEP_MAX_THREADS 16
#define SWEEP_MAX_TASKS 10000

typedef struct sweep_calib {
    char label[64];     /* "none", "imatrix", "gptq", "imatrix+gptq" (+ "@name" when named) */
    char *text;         /* calibration text (relative to PLAN_DIR in a plan), NULL for none */
    char text_sha[65];  /* SHA-256 of the text's bytes (plan only) */
    int imatrix, gptq;  /* booleans */
    int ctx, chunks;    /* calibration chunk length and count (0: the tools' defaults) */
} sweep_calib;

typedef struct sweep_model {
    char *path;         /* HF directory or GGUF file (relative to PLAN_DIR in a plan) */
    char name[128];     /* its base name, for the report */
    char sha[65];       /* SHA-256 of its content (plan only) */
    int is_gguf;        /* 1: a GGUF file (the base itself); 0: an HF directory (converted to F32) */
} sweep_model;

typedef struct sweep_task {
    int index;          /* 0..n_tasks-1 (SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX, matrix.task) */
    char id[17];        /* content address: 16 hex digits of SHA-256 over everything the result depends on */
    int model, calib, threads; /* calib is -1 for a base task */
    char type[16];      /* "base" or a recipe name (Q4_K_M, ...) */
} sweep_task;

/* A sweep (SWEEP.json) once parsed, and a plan (plan.json): the same structure; a plan also has
 * its ids, hashes and tasks. */
typedef struct sweep_plan {
    char id[65];        /* plan: SHA-256 of plan.json's content without "id" */
    char build[64];     /* plan: the slmkit build (git commit) that made it */
    char name[64];      /* job name for the schedulers ([a-z0-9-], default "slm-sweep") */
    char *text;         /* evaluation text */
    char text_sha[65];
    int ctx, chunks, pp, tg;
    sweep_model models[SWEEP_MAX_MODELS];
    int n_models;
    char types[SWEEP_MAX_TYPES][16];
    int n_types;
    sweep_calib calibs[SWEEP_MAX_CALIBS];
    int n_calibs;
    int threads[SWEEP_MAX_THREADS];
    int n_threads;
    sweep_task *tasks;
    int n_tasks;
} sweep_plan;

void sweep_plan_free(sweep_plan *p);

/* Parse SWEEP.json's bytes (name: the file, for messages). Pure: no file is touched. Every field
 * is checked (docs/sweep.md lists them); an unknown field is refused. Errors (SLM_EINPUT) read
 * "NAME: FIELD: problem". */
int sweep_spec_parse(const char *json, size_t len, const char *name, sweep_plan *out, slm_err *err) SLM_MUST_CHECK;
/* SWEEP.json -> a plan for PLAN_DIR: parses the file, resolves paths (relative to the file's
 * directory) and makes them relative to plan_dir, hashes every input (models, texts), lists
 * the tasks. Deterministic: the same inputs give the same plan. Writes nothing. */
int sweep_plan_make(const char *sweep_json, const char *plan_dir, const char *build, sweep_plan *out,
                    slm_err *err) SLM_MUST_CHECK;
/* plan.json's canonical bytes (malloc'd, NULL: out of memory). */
char *sweep_plan_json(const sweep_plan *p);
/* Create plan_dir (and results/, artifacts/, logs/) and write plan.json atomically. An existing
 * plan_dir holding the same plan is left as it is (*same = 1); another plan there is refused. */
int sweep_plan_write(const sweep_plan *p, const char *plan_dir, int *same, slm_err *err) SLM_MUST_CHECK;
/* Parse plan.json's bytes (pure; checks the id against the content). */
int sweep_plan_parse(const char *json, size_t len, const char *name, sweep_plan *out, slm_err *err) SLM_MUST_CHECK;
/* Read PLAN_DIR/plan.json. */
int sweep_plan_read(const char *plan_dir, sweep_plan *out, slm_err *err) SLM_MUST_CHECK;

/* The child commands of task `index`, in order, as a cJSON array of {"step", "argv", "stdout"?}
 * (argv[0] is "slm"; paths relative to PLAN_DIR); then the in-process speed test. */
struct cJSON;
struct cJSON *sweep_task_steps(const sweep_plan *p, int index);

/* ---- running one task ------------------------------------------------------------------
 * exec runs argv (argv[0] "slm": the slmkit binary) with cwd as working directory, stdout to
 * stdout_path (NULL: discarded), stderr appended to log_path; returns the exit status.
 * hook (may be NULL) is called before each step ("convert", "base-perplexity", "imatrix",
 * "quantize", "perplexity", "speed") and before the result is committed ("commit"). */
typedef int (*sweep_exec_fn)(void *ctx, const char *step, char *const *argv, const char *cwd,
                             const char *stdout_path, const char *log_path);
typedef void (*sweep_hook_fn)(void *ctx, int index, const char *point);
typedef struct sweep_run_opts {
    sweep_exec_fn exec;
    sweep_hook_fn hook;
    void *ctx;
    const char *build;  /* this binary's build: must equal the plan's */
} sweep_run_opts;
enum { SWEEP_RAN = 0, SWEEP_SKIPPED = 1 };
/* Run task `index` unless its result is already there (*outcome SWEEP_SKIPPED). Shared steps
 * (base conversion and log-probabilities, imatrix, quantized model) are made once, under a lock
 * file, into artifacts/ by whichever task needs them first; every output lands by rename, so a
 * task killed at any instant leaves no partial result or artifact. */
int sweep_run_task(const sweep_plan *p, const char *plan_dir, int index, const sweep_run_opts *o, int *outcome,
                   slm_err *err) SLM_MUST_CHECK;

/* ---- running tasks on this machine (sweep/exec.c) ------------------------------------------
 * The exec of sweep_run_opts that runs each step as a child of this very binary
 * (/proc/self/exe) in cwd, stdout to stdout_path (NULL: /dev/null), stderr appended to
 * log_path; the exit status (128 + signal; -1 when it could not fork). */
int sweep_exec_self(void *ctx, const char *step, char *const *argv, const char *cwd, const char *stdout_path,
                    const char *log_path);
/* The task index a scheduler gives: $SLURM_ARRAY_TASK_ID, else $JOB_COMPLETION_INDEX; SLM_EUSAGE
 * when neither is set or the value is not a number in 0..INT_MAX. */
int sweep_env_task(int *index, slm_err *err) SLM_MUST_CHECK;
typedef struct sweep_local_opts {
    const char *build;  /* this binary's build (sweep_run_opts) */
    /* after each task: SWEEP_RAN or SWEEP_SKIPPED and its seconds (may be NULL) */
    void (*done)(void *user, int index, int outcome, double seconds);
    /* Fault injection for the tests (docs/sweep.md): with SLM_SWEEP_STALL=INDEX:POINT, task INDEX
     * stops at POINT (a step name, or "commit": its result written but not yet renamed): this is
     * called (may be NULL), then the process waits until it is killed. */
    void (*stalled)(void *user, int index, const char *point);
    void *user;
} sweep_local_opts;
/* Tasks first..last one after the other (sweep_run_task with sweep_exec_self); the first failure
 * stops. */
int sweep_run_local(const sweep_plan *p, const char *plan_dir, int first, int last, const sweep_local_opts *o,
                    slm_err *err) SLM_MUST_CHECK;

/* Task indices without a result (malloc'd into *idx; *n of them). */
int sweep_missing(const sweep_plan *p, const char *plan_dir, int **idx, int *n, slm_err *err) SLM_MUST_CHECK;

/* ---- merging ------------------------------------------------------------------------------
 * Reads every result, refuses (SLM_EINPUT, naming the file) one from another plan or another
 * slmkit build, and any file in results/ that is not one of this plan's tasks. The report is
 * {"plan", "build", "groups": [{"model", "calibration", "threads", "rows": [compare's rows]}],
 * "missing": [{"index", "id", "model", "type", "calibration", "threads"}]}; a group is one
 * model x calibration x thread count: its base row, then its types in the plan's order. */
int sweep_merge(const sweep_plan *p, const char *plan_dir, struct cJSON **report, slm_err *err) SLM_MUST_CHECK;
/* report.md (every group's `slm compare` table, then the missing tasks), report.json, and one
 * SVG chart per group (group-N.svg) into out_dir, each atomically. *md (may be NULL) gets the
 * Markdown text (malloc'd). */
int sweep_report_write(const sweep_plan *p, const struct cJSON *report, const char *out_dir, char **md,
                       slm_err *err) SLM_MUST_CHECK;

/* ---- scheduler files (malloc'd text; NULL: out of memory) ---------------------------------- */
/* "0-3,5,7-9" for sorted indices; %K appended when max_parallel > 0. */
char *sweep_array_spec(const int *idx, int n, int max_parallel);
/* sbatch script running `SLM sweep run PLAN` for the given task indices. */
char *sweep_slurm_script(const sweep_plan *p, const char *abs_plan_dir, const char *slm, const int *idx, int n,
                         const char *partition, int max_parallel);
typedef struct sweep_k8s_opts {
    const char *image;      /* container image holding `slm` */
    const char *claim;      /* PersistentVolumeClaim holding the plan directory (and models) */
    const char *mount;      /* where the claim is mounted in the container */
    const char *plan_path;  /* PLAN_DIR as the container sees it */
    const char *slm;        /* the slm command in the image */
    int max_parallel;       /* parallelism (<= 0: all tasks at once) */
} sweep_k8s_opts;
char *sweep_k8s_manifest(const sweep_plan *p, const sweep_k8s_opts *o);
/* A runner builds slm from the checkout, so its build is the commit that holds the plan, never
 * the build that planned: each job plans again from SWEEP.json (deterministic: the same plan on
 * every runner), then runs its task; the merge job plans, downloads the results, merges. */
typedef struct sweep_github_opts {
    const char *spec;       /* SWEEP.json relative to the repository root */
    const char *plan_path;  /* PLAN_DIR relative to the repository root */
    const char *setup;      /* shell command that builds or installs slm */
    const char *slm;        /* the slm command after setup */
    const char *runs_on;    /* runner label */
    int max_parallel;
} sweep_github_opts;
char *sweep_github_workflow(const sweep_plan *p, const sweep_github_opts *o);

/* ---- submitting (sweep/exec.c) --------------------------------------------------------------
 * SLURM: PLAN_DIR/sweep.sbatch (absolute paths) over the tasks without a result, written
 * atomically, then `sbatch --parsable` unless dry_run (nothing is written when every task has a
 * result: submitted 0). K8S and GITHUB: the Indexed Job (default PLAN_DIR/sweep-job.yaml) or the
 * workflow (default PLAN_DIR/sweep-workflow.yml) written to out. NULL options take the defaults:
 * slm this binary (slurm), "slm" (k8s), "./build/slm" (github); image "slmkit:latest", claim
 * "slm-sweep", mount "/sweep", plan_path MOUNT/<PLAN_DIR's last component> (k8s) or PLAN_DIR
 * (github, which needs spec and a relative PLAN_DIR or plan_path: SLM_EUSAGE); setup
 * "sudo make deps-build && make -j2", runs_on "ubuntu-latest". */
enum { SWEEP_SUBMIT_SLURM, SWEEP_SUBMIT_K8S, SWEEP_SUBMIT_GITHUB };
typedef struct sweep_submit_opts {
    int mode;
    const char *out, *partition, *slm, *image, *claim, *mount, *plan_path, *setup, *runs_on, *spec;
    int max_parallel, dry_run;
} sweep_submit_opts;
typedef struct sweep_submit_result {
    char path[4200];    /* the file written (slurm: the script) */
    char *array;        /* slurm: the array spec, "0-3,5%K" (malloc'd; sweep_submit_result_free) */
    int submitted;      /* slurm: tasks in the array */
    char job[128];      /* slurm, submitted: the job id sbatch printed */
    int exec_errno;     /* slurm: sbatch could not be started (errno; the status is then 127) */
} sweep_submit_result;
int sweep_submit(const sweep_plan *p, const char *plan_dir, const sweep_submit_opts *o, sweep_submit_result *r,
                 slm_err *err) SLM_MUST_CHECK;
void sweep_submit_result_free(sweep_submit_result *r);

#endif /* SLM_SWEEP_H */
