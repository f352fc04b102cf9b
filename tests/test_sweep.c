/* tests/test_sweep.c — suite "sweep": `slm sweep` (sweep/, tools/sweep.c).
 *  - plan: N tasks for models x types x calibration x threads, content-addressed ids, exact
 *    commands, byte-identical when planned again; a bad SWEEP.json is one line naming the file
 *    and the field, exit 3, nothing written;
 *  - run / merge on this machine: idempotent, the index from SLURM_ARRAY_TASK_ID or
 *    JOB_COMPLETION_INDEX, a task killed half-way leaves no result, merge lists missing tasks
 *    and refuses results of another plan or another build;
 *  - single-node Slurm (Debian's slurm-wlm and munge, started here as plain daemons on
 *    127.0.0.1 with a temporary configuration): 2 models x 4 types as one job array, merged
 *    table = a local `slm compare` of the same grid (timings aside); a task cancelled with
 *    scancel leaves no partial result and submitting again runs only the missing task;
 *  - the Kubernetes Indexed Job and the GitHub Actions workflow equal golden files in
 *    tests/data/sweep/ and parse as YAML with the fields those engines require;
 *  - the fuzz target's seeds and past findings (fuzz/fuzz_sweep_plan.c).
 * Small on purpose: the smallest models, 4000 bytes of evaluation text, -c 64. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "formats.h"
#include "interop.h"
#include "sweep.h"
#include "testutil.h"

#define TYPES "\"Q8_0\", \"Q4_0\", \"Q4_K_M\", \"Q6_K\""

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* dir/eval.txt: the first 4000 bytes of the evaluation corpus */
static void write_eval(const char *dir)
{
    size_t n = 0;
    char *t = tu_read_file(tu_corpus("tinystories-eval.txt"), &n);
    cr_assert_not_null(t, "no evaluation corpus (%s)", tu_corpus("tinystories-eval.txt"));
    char *p = tu_path(dir, "eval.txt");
    cr_assert_eq(tu_write_file(p, t, n < 4000 ? n : 4000), 0);
    free(p);
    free(t);
}

/* dir/NAME <- a SWEEP.json over the models (comma-separated rel paths under SLM_MODELS). */
static char *write_spec(const char *dir, const char *name, const char *models, const char *types,
                        const char *extra)
{
    char buf[4096], list[2048] = "";
    char *m = strdup(models);
    for (char *sv = NULL, *tok = strtok_r(m, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv)) {
        size_t l = strlen(list);
        char *abs = realpath(tu_model(tok), NULL); /* SWEEP.json's relative paths start at its directory */
        cr_assert_not_null(abs, "model %s: %s", tu_model(tok), strerror(errno));
        snprintf(list + l, sizeof list - l, "%s\"%s\"", l ? ", " : "", abs);
        free(abs);
    }
    free(m);
    snprintf(buf, sizeof buf, "{\"name\": \"test-sweep\", \"models\": [%s], \"types\": [%s], \"text\": \"eval.txt\", "
                              "\"ctx\": 64%s}\n", list, types, extra ? extra : "");
    char *p = tu_path(dir, name);
    cr_assert_eq(tu_write_file(p, buf, strlen(buf)), 0);
    return p;
}

static cJSON *read_json(const char *path)
{
    char *t = tu_read_file(path, NULL);
    cr_assert_not_null(t, "cannot read %s", path);
    cJSON *j = cJSON_Parse(t);
    cr_assert_not_null(j, "%s is not JSON", path);
    free(t);
    return j;
}

/* The id of task i of PLAN_DIR/plan.json (static buffer). */
static const char *task_id(const char *plan, int i)
{
    static char id[32];
    char *pp = tu_path(plan, "plan.json");
    cJSON *j = read_json(pp);
    cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "tasks"), i);
    cr_assert_not_null(t, "no task %d in %s", i, pp);
    snprintf(id, sizeof id, "%s", cJSON_GetObjectItemCaseSensitive(t, "id")->valuestring);
    cJSON_Delete(j);
    free(pp);
    return id;
}

static char *result_path(const char *plan, int i)
{
    char rel[64];
    snprintf(rel, sizeof rel, "results/%s.json", task_id(plan, i));
    return tu_path(plan, rel);
}

/* Entries of dir whose name starts with prefix. */
static int count_prefixed(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += !strncmp(e->d_name, prefix, strlen(prefix));
    if (d)
        closedir(d);
    return n;
}

/* Blank the speed columns (pp, tg: the 9th and 10th cells) of every table row of s. */
static char *mask_timings(const char *s)
{
    char *o = strdup(s), *w = o;
    for (const char *line = s; *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line + 1) : strlen(line);
        if (line[0] == '|') {
            int cell = 0;
            for (size_t k = 0; k < n; k++) {
                if (line[k] == '|') {
                    cell++;
                    *w++ = '|';
                    continue;
                }
                if (cell == 9 || cell == 10) /* inside a speed cell */
                    continue;
                *w++ = line[k];
            }
        } else {
            memcpy(w, line, n);
            w += n;
        }
        line += n;
    }
    *w = 0;
    return o;
}

/* The Markdown table at the start of s (up to the first line not starting with '|'). */
static char *table_of(const char *s)
{
    const char *p = s;
    while (*p == '|') {
        const char *e = strchr(p, '\n');
        p = e ? e + 1 : p + strlen(p);
    }
    return strndup(s, (size_t)(p - s));
}

/* ---- plan ------------------------------------------------------------------------------------ */

Test(sweep, plan_is_deterministic_and_content_addressed, .timeout = 60)
{
    char *d = tu_tmpdir("sweep-plan");
    write_eval(d);
    char *spec = write_spec(d, "sweep.json", "stories-llama256,gguf/stories260K.gguf", "\"Q8_0\", \"Q4_K_M\"",
                            ", \"threads\": [1, 2], \"calibration\": [{}, {\"text\": \"eval.txt\", \"imatrix\": true}]");
    char *a = tu_path(d, "a"), *b = tu_path(d, "b");
    char *o = NULL;
    cr_assert_eq(tu_slmv(&o, NULL, "sweep", "plan", spec, "-o", a, "--json", NULL), 0);
    cJSON *j = cJSON_Parse(o);
    /* 2 models x 2 thread counts x (1 base + 2 types x 2 calibrations) */
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(j, "tasks")->valueint, 20, "%s", o);
    cJSON_Delete(j);
    free(o);
    TU_SLM_OK("sweep", "plan", spec, "-o", b);
    char *pa = tu_path(a, "plan.json"), *pb = tu_path(b, "plan.json");
    char *ta = tu_read_file(pa, NULL), *tb = tu_read_file(pb, NULL);
    cr_assert_str_eq(ta, tb, "two plans of one SWEEP.json differ");
    /* planning again into the same directory changes nothing */
    cr_assert_eq(tu_slmv(&o, NULL, "sweep", "plan", spec, "-o", a, "--json", NULL), 0);
    cr_assert(strstr(o, "\"unchanged\":\ttrue") != NULL, "%s", o);
    free(o);
    /* every task: a distinct 16-hex id, its exact commands */
    j = cJSON_Parse(ta);
    cJSON *tasks = cJSON_GetObjectItemCaseSensitive(j, "tasks"), *t;
    int n = 0, with_imatrix = 0;
    cJSON_ArrayForEach(t, tasks) {
        const char *id = cJSON_GetObjectItemCaseSensitive(t, "id")->valuestring;
        cr_assert_eq(strlen(id), 16);
        for (cJSON *u = t->next; u; u = u->next)
            cr_assert_str_neq(id, cJSON_GetObjectItemCaseSensitive(u, "id")->valuestring);
        cJSON *cmd = cJSON_GetObjectItemCaseSensitive(t, "command");
        cr_assert_str_eq(cJSON_GetArrayItem(cmd, 2)->valuestring, "run");
        char *steps = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(t, "steps"));
        cr_assert(strstr(steps, "\"perplexity\"") != NULL, "%s", steps);
        with_imatrix += strstr(steps, "\"--imatrix\"") != NULL;
        free(steps);
        n++;
    }
    cr_assert_eq(n, 20);
    cr_assert_eq(with_imatrix, 8, "2 models x 2 types x 2 thread counts quantize with the imatrix");
    cJSON_Delete(j);
    /* content, not paths: another text changes every id; the same text elsewhere changes none */
    char *c = tu_path(d, "c"), *sub = tu_path(d, "sub");
    mkdir(sub, 0755);
    write_eval(sub);
    char *spec2 = write_spec(sub, "sweep.json", "stories-llama256,gguf/stories260K.gguf", "\"Q8_0\", \"Q4_K_M\"",
                             ", \"threads\": [1, 2], \"calibration\": [{}, {\"text\": \"eval.txt\", \"imatrix\": true}]");
    TU_SLM_OK("sweep", "plan", spec2, "-o", c);
    char id_a[32], id_c[32], id_e[32];
    snprintf(id_a, sizeof id_a, "%s", task_id(a, 7));
    snprintf(id_c, sizeof id_c, "%s", task_id(c, 7));
    cr_assert_str_eq(id_c, id_a, "moving the inputs changed a task id");
    char *ev = tu_path(sub, "eval.txt");
    cr_assert_eq(tu_write_file(ev, "Once upon a time.\n", 18), 0);
    char *e2 = tu_path(d, "e");
    TU_SLM_OK("sweep", "plan", spec2, "-o", e2);
    snprintf(id_e, sizeof id_e, "%s", task_id(e2, 7));
    cr_assert_str_neq(id_e, id_a, "another evaluation text kept a task id");
    /* a directory holding another plan is refused */
    char *err = NULL;
    cr_assert_eq(tu_slmv(NULL, &err, "sweep", "plan", spec2, "-o", a, NULL), 3);
    cr_assert(strstr(err, "another plan") != NULL, "%s", err);
    free(err);
    free(ta), free(tb), free(pa), free(pb), free(a), free(b), free(c), free(sub), free(ev), free(e2);
    free(spec), free(spec2);
    tu_rmtree(d);
    free(d);
}

Test(sweep, bad_sweep_json_is_one_line_exit_3_nothing_written, .timeout = 60)
{
    char *d = tu_tmpdir("sweep-bad");
    write_eval(d);
    const char *m = tu_model("gguf/stories260K.gguf");
    char ok_models[600];
    snprintf(ok_models, sizeof ok_models, "\"models\": [\"%s\"]", m);
    struct {
        const char *body, *field;
    } cases[] = {
        {"{\"types\": [\"Q8_0\"], \"text\": \"eval.txt\"}", "models"},
        {"{%s, \"types\": [\"Q9_K\"], \"text\": \"eval.txt\"}", "types[0]"},
        {"{%s, \"types\": \"Q8_0\", \"text\": \"eval.txt\"}", "types"},
        {"{%s, \"types\": [\"Q8_0\"], \"text\": \"eval.txt\", \"ctx\": -5}", "ctx"},
        {"{%s, \"types\": [\"Q8_0\"], \"text\": \"eval.txt\", \"treads\": [1]}", "treads"},
        {"{%s, \"types\": [\"Q8_0\"], \"text\": \"eval.txt\", \"threads\": [1, 0]}", "threads[1]"},
        {"{%s, \"types\": [\"Q8_0\"], \"text\": \"no-such.txt\"}", "text"},
        {"{%s, \"types\": [\"Q8_0\"], \"text\": \"eval.txt\", \"calibration\": {\"imatrix\": true}}",
         "calibration.text"},
        {"{%s, \"types\": [\"Q8_0\", \"q8_0\"], \"text\": \"eval.txt\"}", "types[1]"},
        {"{\"models\": [\"eval.txt\"], \"types\": [\"Q8_0\"], \"text\": \"eval.txt\"}", "models[0]"},
        {"{%s, \"types\": [\"Q8_0\"], \"text\": \"eval.txt\", \"name\": \"Bad Name\"}", "name"},
        {"{%s, \"types\": [\"Q8_0\"], \"text\": \"eval.txt\",}", "JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[1200];
        snprintf(body, sizeof body, cases[i].body, ok_models);
        char *spec = tu_path(d, "sweep.json"), *out = tu_path(d, "plan");
        cr_assert_eq(tu_write_file(spec, body, strlen(body)), 0);
        char *o = NULL, *e = NULL;
        int rc = tu_slmv(&o, &e, "sweep", "plan", spec, "-o", out, NULL);
        cr_expect_eq(rc, 3, "case %zu (%s): exit %d: %s", i, cases[i].field, rc, e);
        cr_expect_eq(tu_count_lines(e), 1, "case %zu: not one line: %s", i, e);
        cr_expect(strstr(e, "sweep.json") != NULL, "case %zu: the file is not named: %s", i, e);
        cr_expect(strstr(e, cases[i].field) != NULL, "case %zu: the field %s is not named: %s", i, cases[i].field, e);
        cr_expect(!tu_exists(out), "case %zu: %s was written", i, out);
        free(o), free(e), free(spec), free(out);
    }
    tu_rmtree(d);
    free(d);
}

/* ---- run and merge on this machine ------------------------------------------------------------ */

/* `slm sweep run PLAN` with an environment variable set (NULL name: none), extra args. */
static int run_env(const char *var, const char *val, char **err, const char *plan, const char *a1, const char *a2)
{
    if (var)
        setenv(var, val, 1);
    int rc = tu_slmv(NULL, err, "sweep", "run", plan, a1, a2, NULL);
    if (var)
        unsetenv(var);
    return rc;
}

Test(sweep, run_is_idempotent_and_merge_checks_plan_and_build, .timeout = 120)
{
    char *d = tu_tmpdir("sweep-run");
    write_eval(d);
    char *spec = write_spec(d, "sweep.json", "gguf/stories260K.gguf", "\"Q8_0\", \"Q4_0\"", NULL);
    char *plan = tu_path(d, "plan"), *rep = tu_path(d, "report");
    TU_SLM_OK("sweep", "plan", spec, "-o", plan);
    char *e = NULL;
    /* no index anywhere: a usage error */
    cr_assert_eq(run_env(NULL, NULL, &e, plan, NULL, NULL), 2, "%s", e);
    free(e);
    /* the index from each scheduler's variable, and from --task */
    cr_assert_eq(run_env("SLURM_ARRAY_TASK_ID", "1", &e, plan, NULL, NULL), 0, "%s", e);
    free(e);
    char *r1 = result_path(plan, 1), *r0 = result_path(plan, 0), *r2 = result_path(plan, 2);
    cr_assert(tu_exists(r1) && !tu_exists(r0) && !tu_exists(r2));
    cr_assert_eq(run_env("JOB_COMPLETION_INDEX", "2", &e, plan, NULL, NULL), 0, "%s", e);
    free(e);
    cr_assert(tu_exists(r2));
    /* merge with task 0 missing: the report of the others, task 0 listed, exit 1 */
    char *o = NULL;
    cr_assert_eq(tu_slmv(&o, &e, "sweep", "merge", plan, "-o", rep, NULL), 1, "%s", e);
    cr_assert(strstr(e, "1 of 3 tasks have no result: 0") != NULL, "%s", e);
    cr_assert(strstr(o, "## Missing: 1 of 3 tasks") != NULL && strstr(o, "- task 0 (") != NULL, "%s", o);
    free(o), free(e);
    /* idempotent: a finished task is skipped, its result untouched */
    struct stat s1, s2;
    cr_assert_eq(stat(r1, &s1), 0);
    cr_assert_eq(tu_slmv(NULL, &e, "sweep", "run", plan, "--task", "1", NULL), 0);
    cr_assert(strstr(e, "already done (skipped)") != NULL, "%s", e);
    free(e);
    cr_assert_eq(stat(r1, &s2), 0);
    cr_assert(s1.st_ino == s2.st_ino && s1.st_mtim.tv_sec == s2.st_mtim.tv_sec &&
              s1.st_mtim.tv_nsec == s2.st_mtim.tv_nsec, "a finished task ran again");
    TU_SLM_OK("sweep", "run", plan, "--all");
    cr_assert_eq(tu_slmv(&o, &e, "sweep", "merge", plan, "-o", rep, "--json", NULL), 0, "%s", e);
    cJSON *j = cJSON_Parse(o);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "missing")), 0);
    cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "groups"), 0);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(g, "rows")), 3, "%s", o);
    cJSON_Delete(j);
    free(o), free(e);
    char *svg = tu_path(rep, "group-0.svg"), *md = tu_path(rep, "report.md");
    cr_assert(tu_exists(svg) && tu_exists(md));

    /* a result of another slmkit build is refused, naming the file and both builds */
    char *saved = tu_read_file(r2, NULL);
    cJSON *rj = cJSON_Parse(saved);
    cJSON_ReplaceItemInObjectCaseSensitive(rj, "build", cJSON_CreateString("0123456789ab-other"));
    char *forged = cJSON_Print(rj);
    cJSON_Delete(rj);
    cr_assert_eq(tu_write_file(r2, forged, strlen(forged)), 0);
    cr_assert_eq(tu_slmv(NULL, &e, "sweep", "merge", plan, "-o", rep, NULL), 3);
    cr_assert(strstr(e, r2) && strstr(e, "0123456789ab-other"), "%s", e);
    cr_assert_eq(tu_count_lines(e), 1, "%s", e);
    free(e);
    cr_assert_eq(tu_write_file(r2, saved, strlen(saved)), 0);
    /* a result of another plan (Q6_K instead of Q4_0) dropped into this plan's results */
    char *spec2 = write_spec(d, "other.json", "gguf/stories260K.gguf", "\"Q6_K\"", NULL);
    char *plan2 = tu_path(d, "plan2");
    TU_SLM_OK("sweep", "plan", spec2, "-o", plan2);
    TU_SLM_OK("sweep", "run", plan2, "--task", "1");
    char *other = result_path(plan2, 1), rel[64];
    snprintf(rel, sizeof rel, "results/%s.json", task_id(plan2, 1));
    char *stray = tu_path(plan, rel), *ot = tu_read_file(other, NULL);
    cr_assert_eq(tu_write_file(stray, ot, strlen(ot)), 0);
    cr_assert_eq(tu_slmv(NULL, &e, "sweep", "merge", plan, "-o", rep, NULL), 3);
    cr_assert(strstr(e, stray) && strstr(e, "another plan"), "%s", e);
    free(e);
    unlink(stray);
    TU_SLM_OK("sweep", "merge", plan, "-o", rep);
    free(saved), free(forged), free(ot), free(stray), free(other), free(plan2), free(spec2);
    free(svg), free(md), free(r0), free(r1), free(r2), free(plan), free(rep), free(spec);
    tu_rmtree(d);
    free(d);
}

/* A task killed at any point leaves no result; here at the worst one: its result written to the
 * temp file, not yet renamed. The next run removes the temp file and finishes the task. */
static pid_t stalled_run; /* killed in .fini too: a failed assertion must not leave it behind */
static void kill_stalled_run(void)
{
    if (stalled_run > 0) {
        kill(stalled_run, SIGKILL);
        waitpid(stalled_run, NULL, 0);
    }
}

Test(sweep, killed_task_leaves_no_partial_result, .timeout = 120, .fini = kill_stalled_run)
{
    char *d = tu_tmpdir("sweep-kill");
    write_eval(d);
    char *spec = write_spec(d, "sweep.json", "gguf/stories260K.gguf", "\"Q8_0\"", NULL);
    char *plan = tu_path(d, "plan"), *results = tu_path(plan, "results");
    TU_SLM_OK("sweep", "plan", spec, "-o", plan);
    char *errp = tu_path(d, "run.err");
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        setenv("SLM_SWEEP_STALL", "1:commit", 1);
        execl(tu_slm_bin(), "slm", "sweep", "run", plan, "--task", "1", (char *)NULL);
        _exit(127);
    }
    stalled_run = pid;
    char *r1 = result_path(plan, 1), pfx[64];
    snprintf(pfx, sizeof pfx, ".%s.json.tmp.", task_id(plan, 1));
    double t0 = now_s();
    char *log = NULL;
    while (now_s() - t0 < 60 * tu_time_scale()) {
        free(log);
        log = tu_read_file(errp, NULL);
        if (log && strstr(log, "stalled at commit"))
            break;
        sleep_ms(50);
    }
    cr_assert(log && strstr(log, "stalled at commit"), "the task never reached its commit: %s", log ? log : "");
    cr_assert_eq(count_prefixed(results, pfx), 1, "the result is not half-way (no temp file)");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    stalled_run = 0;
    cr_assert(!tu_exists(r1), "a killed task left a result");
    char *e = NULL;
    cr_assert_eq(tu_slmv(NULL, &e, "sweep", "merge", plan, "-o", d, NULL), 1, "%s", e);
    free(e);
    TU_SLM_OK("sweep", "run", plan, "--task", "1");
    cr_assert(tu_exists(r1));
    cr_assert_eq(count_prefixed(results, pfx), 0, "the killed run's temp file is still there");
    free(log), free(r1), free(errp), free(results), free(plan), free(spec);
    tu_rmtree(d);
    free(d);
}

/* ---- a single-node Slurm cluster, started here ---------------------------------------------------
 * munged with a temporary key and socket, slurmctld -D and slurmd -D as plain daemons on 127.0.0.1
 * (no systemd), every file under the test's temporary directory, ports the kernel says are free.
 * The daemons die with the test process (PR_SET_PDEATHSIG) and are stopped by pid in .fini, which
 * Criterion runs whether the test passed or failed. */
typedef struct cluster {
    char *dir, conf[1024];
    pid_t munged, ctld, slurmd;
    pid_t stalled; /* a task process the test stopped on purpose */
} cluster;
static cluster C;

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    int port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(s, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0)
        close(s);
    return port;
}

static pid_t spawn_daemon(const char *log, char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644), nul = open("/dev/null", O_RDONLY);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static void stop_pid(pid_t *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    for (int i = 0; i < 100; i++) { /* 5 s, then SIGKILL */
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = 0;
            return;
        }
        sleep_ms(50);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

/* stdout of a Slurm client command (static buffer), "" on failure. */
static const char *slurm_cmd(const char *a0, const char *a1, const char *a2, const char *a3)
{
    static char buf[8192];
    const char *argv[] = {a0, a1, a2, a3, NULL};
    char *o = NULL, *e = NULL;
    int rc = tu_run(&o, &e, argv);
    snprintf(buf, sizeof buf, "%s", rc == 0 && o ? o : "");
    free(o), free(e);
    return buf;
}

static char *tail_of(const char *path)
{
    size_t n = 0;
    char *t = tu_read_file(path, &n);
    if (!t)
        return strdup("(no log)");
    char *r = strdup(n > 1500 ? t + n - 1500 : t);
    free(t);
    return r;
}

static void cluster_stop(void)
{
    if (!C.dir)
        return;
    if (C.ctld > 0) { /* no job outlives the test: slurmstepd and its tasks are not our children */
        const char *u = getpwuid(getuid()) ? getpwuid(getuid())->pw_name : "root";
        char user[300];
        snprintf(user, sizeof user, "--user=%s", u);
        slurm_cmd("scancel", user, NULL, NULL);
        for (int i = 0; i < 100 && slurm_cmd("squeue", "-h", NULL, NULL)[0]; i++)
            sleep_ms(100);
    }
    if (C.stalled > 0)
        kill(C.stalled, SIGKILL);
    stop_pid(&C.slurmd);
    stop_pid(&C.ctld);
    stop_pid(&C.munged);
    tu_rmtree(C.dir);
    free(C.dir);
    C.dir = NULL;
}

/* Starts the cluster; on failure the test fails with the reason and the daemons' logs. */
static void cluster_start(void)
{
    static const char *const tools[] = {"munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo"};
    for (size_t i = 0; i < sizeof tools / sizeof tools[0]; i++) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tools[i]);
        if (system(cmd) != 0) {
            char what[160];
            snprintf(what, sizeof what, "%s (Debian's slurm-wlm and munge; make deps)", tools[i]);
            oracle_missing(what);
        }
    }
    C.dir = tu_tmpdir("slurm");
    cr_assert_not_null(C.dir);
    chmod(C.dir, 0700);
    char p[1200], key[1200], sock[1200];
    snprintf(p, sizeof p, "%s/state", C.dir), mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/spool", C.dir), mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/munge", C.dir), mkdir(p, 0700);
    snprintf(key, sizeof key, "%s/munge/munge.key", C.dir);
    snprintf(sock, sizeof sock, "%s/munge/socket", C.dir);
    unsigned char k[1024];
    FILE *ur = fopen("/dev/urandom", "rb");
    cr_assert(ur && fread(k, 1, sizeof k, ur) == sizeof k);
    fclose(ur);
    cr_assert_eq(tu_write_file(key, k, sizeof k), 0);
    chmod(key, 0400);
    char kf[1300], sf[1300], lf[1300], pf[1300], seed[1300], mlog[1300];
    snprintf(kf, sizeof kf, "--key-file=%s", key);
    snprintf(sf, sizeof sf, "--socket=%s", sock);
    snprintf(lf, sizeof lf, "--log-file=%s/munge/munged.log", C.dir);
    snprintf(pf, sizeof pf, "--pid-file=%s/munge/munged.pid", C.dir);
    snprintf(seed, sizeof seed, "--seed-file=%s/munge/seed", C.dir);
    snprintf(mlog, sizeof mlog, "%s/munged.out", C.dir);
    char *margv[] = {"munged", "-F", "-f", kf, sf, lf, pf, seed, NULL};
    C.munged = spawn_daemon(mlog, margv);
    for (int i = 0; i < 100 && !tu_exists(sock); i++)
        sleep_ms(50);
    if (!tu_exists(sock)) {
        char *t = tail_of(mlog);
        cr_assert_fail("munged did not start: %s", t);
    }
    struct passwd *pw = getpwuid(getuid());
    const char *user = pw ? pw->pw_name : "root";
    int ctld_port = free_port(), slurmd_port = free_port();
    while (slurmd_port == ctld_port)
        slurmd_port = free_port();
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(C.conf, sizeof C.conf, "%s/slurm.conf", C.dir);
    char conf[6000];
    snprintf(conf, sizeof conf,
             "ClusterName=slmtest\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=%d\nSlurmdPort=%d\n"
             "AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket=%s\nSlurmUser=%s\nSlurmdUser=%s\n"
             "StateSaveLocation=%s/state\nSlurmdSpoolDir=%s/spool\nSlurmctldPidFile=%s/slurmctld.pid\n"
             "SlurmdPidFile=%s/slurmd.pid\nSlurmctldLogFile=%s/slurmctld.log\nSlurmdLogFile=%s/slurmd.log\n"
             "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n"
             "AccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/none\nSelectType=select/cons_tres\n"
             "SelectTypeParameters=CR_CPU\nSchedulerType=sched/backfill\nSchedulerParameters=sched_interval=1\n"
             "MpiDefault=none\nReturnToService=2\nSlurmctldTimeout=30\nSlurmdTimeout=30\nInactiveLimit=0\n"
             "MinJobAge=300\nKillWait=2\nPlugStackConfig=/dev/null\n"
             "NodeName=localhost NodeAddr=127.0.0.1 CPUs=%ld State=UNKNOWN\n"
             "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n",
             ctld_port, slurmd_port, sock, user, user, C.dir, C.dir, C.dir, C.dir, C.dir, C.dir, ncpu);
    cr_assert_eq(tu_write_file(C.conf, conf, strlen(conf)), 0);
    setenv("SLURM_CONF", C.conf, 1);
    char clog[1300], dlog[1300];
    snprintf(clog, sizeof clog, "%s/slurmctld.out", C.dir);
    snprintf(dlog, sizeof dlog, "%s/slurmd.out", C.dir);
    char *cargv[] = {"slurmctld", "-D", "-i", NULL};
    C.ctld = spawn_daemon(clog, cargv);
    char *dargv[] = {"slurmd", "-D", "-N", "localhost", NULL};
    C.slurmd = spawn_daemon(dlog, dargv);
    /* ready when the node is idle (bounded) */
    double t0 = now_s();
    const char *st = "";
    while (now_s() - t0 < 30 * tu_time_scale()) {
        st = slurm_cmd("sinfo", "-h", "-o", "%T");
        if (!strncmp(st, "idle", 4))
            return;
        if (waitpid(C.ctld, NULL, WNOHANG) == C.ctld || waitpid(C.slurmd, NULL, WNOHANG) == C.slurmd)
            break;
        sleep_ms(200);
    }
    char *a = tail_of(clog), *b = tail_of(dlog);
    cr_assert_fail("Slurm did not come up (node state '%s'):\nslurmctld: %s\nslurmd: %s", st, a, b);
}

/* Wait (bounded) until no job of the cluster is queued or running. */
static void wait_queue_empty(double seconds)
{
    double t0 = now_s();
    while (now_s() - t0 < seconds * tu_time_scale()) {
        if (!slurm_cmd("squeue", "-h", NULL, NULL)[0])
            return;
        sleep_ms(250);
    }
    cr_assert_fail("jobs still queued after %.0f s: %s", seconds, slurm_cmd("squeue", NULL, NULL, NULL));
}

/* slm sweep submit PLAN --slurm ... --json -> the job id and array spec */
static void submit_slurm(const char *plan, char *job, char *array, const char *max_par)
{
    char *o = NULL, *e = NULL;
    int rc = tu_slmv(&o, &e, "sweep", "submit", plan, "--slurm", "--max-parallel", max_par, "--json", NULL);
    cr_assert_eq(rc, 0, "submit: %s", e);
    cJSON *j = cJSON_Parse(o);
    cr_assert_not_null(j, "%s", o);
    snprintf(job, 64, "%s", cJSON_GetObjectItemCaseSensitive(j, "job")->valuestring);
    snprintf(array, 256, "%s", cJSON_GetObjectItemCaseSensitive(j, "array")->valuestring);
    cJSON_Delete(j);
    free(o), free(e);
}

/* 1. 2 models x 4 types as a Slurm job array; the merged tables = local slm compare (timings aside). */
Test(sweep, slurm_array_matches_local_compare, .timeout = 300, .fini = cluster_stop)
{
    cluster_start();
    char *d = tu_tmpdir("sweep-slurm");
    write_eval(d);
    char *spec = write_spec(d, "sweep.json", "stories-llama256,gguf/stories260K.gguf", TYPES, NULL);
    char *plan = tu_path(d, "plan"), *rep = tu_path(d, "report");
    TU_SLM_OK("sweep", "plan", spec, "-o", plan);
    char job[64], array[256];
    submit_slurm(plan, job, array, "4");
    cr_assert_str_eq(array, "0-9%4");
    char *script = tu_path(plan, "sweep.sbatch"), *sb = tu_read_file(script, NULL);
    cr_assert(sb && strstr(sb, "#SBATCH --array=0-9%4\n"), "%s", sb ? sb : "");
    wait_queue_empty(120);
    char *o = NULL, *e = NULL;
    int rc = tu_slmv(&o, &e, "sweep", "merge", plan, "-o", rep, NULL);
    if (rc != 0) {
        char lp[1300];
        snprintf(lp, sizeof lp, "%s/logs/slurm-%s_0.out", plan, job);
        char *t = tail_of(lp);
        cr_assert_fail("merge: exit %d: %s\narray task 0's output: %s", rc, e, t);
    }
    /* every array task ran under Slurm: one output file per index */
    char pfx[96];
    snprintf(pfx, sizeof pfx, "slurm-%s_", job);
    char *logs = tu_path(plan, "logs");
    cr_assert_eq(count_prefixed(logs, pfx), 10);
    free(e);
    e = NULL;
    char *merged = mask_timings(o);
    static const char *const models[] = {"stories-llama256", "gguf/stories260K.gguf"};
    for (int m = 0; m < 2; m++) {
        char dir[64];
        snprintf(dir, sizeof dir, "compare-%d", m);
        char *cd = tu_path(d, dir), *evp = tu_path(d, "eval.txt"), *co = NULL;
        cr_assert_eq(tu_slmv(&co, &e, "compare", tu_model(models[m]), "-f", evp, "-c", "64", "--types",
                             "Q8_0,Q4_0,Q4_K_M,Q6_K", "-t", "1", "-d", cd, NULL), 0, "compare: %s", e);
        free(e);
        e = NULL;
        char *table = table_of(co), *masked = mask_timings(table);
        cr_assert_eq(tu_count_lines(masked), 2 + 5, "%s", co);
        cr_assert(strstr(merged, masked) != NULL, "the merged report lacks compare's table of %s:\n%s\nmerged:\n%s",
                  models[m], masked, merged);
        free(cd), free(evp), free(co), free(table), free(masked);
    }
    free(merged), free(logs), free(o), free(e), free(script), free(sb), free(plan), free(rep), free(spec);
    tu_rmtree(d);
    free(d);
}

/* 2. A task cancelled with scancel half-way leaves no partial result; submitting again runs only it. */
Test(sweep, slurm_scancel_leaves_no_partial_result_resubmit_runs_missing, .timeout = 300, .fini = cluster_stop)
{
    cluster_start();
    char *d = tu_tmpdir("sweep-scancel");
    write_eval(d);
    char *spec = write_spec(d, "sweep.json", "gguf/stories260K.gguf", "\"Q8_0\", \"Q4_0\"", NULL);
    char *plan = tu_path(d, "plan"), *rep = tu_path(d, "report"), *results = tu_path(plan, "results");
    TU_SLM_OK("sweep", "plan", spec, "-o", plan);
    setenv("SLM_SWEEP_STALL", "2:commit", 1); /* sbatch passes the environment to the job */
    char job[64], array[256];
    submit_slurm(plan, job, array, "3");
    unsetenv("SLM_SWEEP_STALL");
    cr_assert_str_eq(array, "0-2%3");
    char lp[1300], tmp_pfx[64];
    snprintf(lp, sizeof lp, "%s/logs/slurm-%s_2.out", plan, job);
    snprintf(tmp_pfx, sizeof tmp_pfx, ".%s.json.tmp.", task_id(plan, 2));
    char *r0 = result_path(plan, 0), *r1 = result_path(plan, 1), *r2 = result_path(plan, 2), *log = NULL;
    double t0 = now_s();
    while (now_s() - t0 < 120 * tu_time_scale()) {
        free(log);
        log = tu_read_file(lp, NULL);
        if (log && strstr(log, "stalled at commit") && tu_exists(r0) && tu_exists(r1))
            break;
        sleep_ms(250);
    }
    cr_assert(log && strstr(log, "stalled at commit"), "array task 2 never reached its commit: %s",
              log ? log : "(no output)");
    const char *pidp = strstr(log, "(pid ");
    if (pidp)
        C.stalled = (pid_t)atol(pidp + 5);
    cr_assert(tu_exists(r0) && tu_exists(r1), "tasks 0 and 1 did not finish");
    cr_assert_eq(count_prefixed(results, tmp_pfx), 1, "task 2 is not half-way (its result's temp file)");
    char jt[96];
    snprintf(jt, sizeof jt, "%s_2", job);
    const char *sc[] = {"scancel", jt, NULL};
    cr_assert_eq(tu_run(NULL, NULL, sc), 0);
    wait_queue_empty(60);
    cr_assert(!tu_exists(r2), "the cancelled task left a result");
    char *o = NULL, *e = NULL;
    cr_assert_eq(tu_slmv(&o, &e, "sweep", "merge", plan, "-o", rep, NULL), 1, "%s", e);
    cr_assert(strstr(e, "1 of 3 tasks have no result: 2") != NULL, "%s", e);
    free(o), free(e);
    struct stat s0, s1, n0, n1;
    cr_assert(stat(r0, &s0) == 0 && stat(r1, &s1) == 0);
    /* again: only task 2 */
    char job2[64], array2[256];
    submit_slurm(plan, job2, array2, "3");
    cr_assert_str_eq(array2, "2%3");
    wait_queue_empty(120);
    C.stalled = 0;
    cr_assert(tu_exists(r2));
    cr_assert(stat(r0, &n0) == 0 && stat(r1, &n1) == 0);
    cr_assert(s0.st_ino == n0.st_ino && s0.st_mtim.tv_nsec == n0.st_mtim.tv_nsec && s1.st_ino == n1.st_ino &&
              s1.st_mtim.tv_nsec == n1.st_mtim.tv_nsec, "tasks 0 and 1 ran again");
    char pfx[96];
    snprintf(pfx, sizeof pfx, "slurm-%s_", job2);
    char *logs = tu_path(plan, "logs");
    cr_assert_eq(count_prefixed(logs, pfx), 1, "the second array ran more than task 2");
    cr_assert_eq(count_prefixed(results, tmp_pfx), 0, "the cancelled run's temp file is still there");
    cr_assert_eq(tu_slmv(NULL, &e, "sweep", "merge", plan, "-o", rep, NULL), 0, "%s", e);
    free(e);
    /* and nothing left to submit */
    cr_assert_eq(tu_slmv(NULL, &e, "sweep", "submit", plan, "--slurm", NULL), 0);
    cr_assert(strstr(e, "nothing to submit") != NULL, "%s", e);
    free(e);
    free(log), free(logs), free(r0), free(r1), free(r2), free(results), free(plan), free(rep), free(spec);
    tu_rmtree(d);
    free(d);
}

/* ---- 3. the Kubernetes and GitHub Actions files ----------------------------------------------- */

static void yaml_check(const char *kind, const char *file, const char *n, const char *k)
{
    const char *probe[] = {"python3", "-c", "import yaml", NULL};
    if (tu_run(NULL, NULL, probe) != 0)
        oracle_missing("python3 with PyYAML (Debian's python3-yaml; make deps)");
    const char *td = getenv("SLM_TESTDIR");
    char script[4096];
    snprintf(script, sizeof script, "%s/sweep_yaml_check.py", td && *td ? td : "tests");
    const char *argv[] = {"python3", script, kind, file, n, k, NULL};
    char *o = NULL, *e = NULL;
    int rc = tu_run(&o, &e, argv);
    cr_assert_eq(rc, 0, "%s is not a valid %s file: %s%s", file, kind, o ? o : "", e ? e : "");
    free(o), free(e);
}

static void golden(const char *file, const char *name)
{
    char rel[128];
    snprintf(rel, sizeof rel, "sweep/%s", name);
    char *got = tu_read_file(file, NULL), *want = tu_read_file(tu_data(rel), NULL);
    cr_assert_not_null(want, "no golden file %s", tu_data(rel));
    cr_assert_not_null(got, "%s was not written", file);
    cr_assert_str_eq(got, want, "%s differs from the golden %s", file, tu_data(rel));
    free(got), free(want);
}

Test(sweep, k8s_and_github_files_match_golden_and_parse_as_yaml, .timeout = 60)
{
    char *d = tu_tmpdir("sweep-yaml");
    write_eval(d);
    /* 1 model x 2 thread counts x (1 base + 4 types) = 10 tasks */
    char *spec = write_spec(d, "sweep.json", "gguf/stories260K.gguf", TYPES, ", \"threads\": [1, 2]");
    char *plan = tu_path(d, "golden"), *k8s = tu_path(d, "job.yaml"), *gh = tu_path(d, "workflow.yml");
    TU_SLM_OK("sweep", "plan", spec, "-o", plan);
    TU_SLM_OK("sweep", "submit", plan, "--k8s", "-o", k8s, "--image", "ghcr.io/example/slmkit:0.1.0", "--claim",
              "sweep-data", "--mount", "/data", "--max-parallel", "3");
    TU_SLM_OK("sweep", "submit", plan, "--github", "-o", gh, "--spec", "sweeps/golden.json", "--plan-path", "sweeps/golden",
              "--max-parallel", "4");
    golden(k8s, "k8s-job.yaml");
    golden(gh, "github-workflow.yml");
    yaml_check("k8s", k8s, "10", "3");
    yaml_check("github", gh, "10", "4");
    /* and the default files in the plan directory */
    char *o = NULL;
    cr_assert_eq(tu_slmv(&o, NULL, "sweep", "submit", plan, "--k8s", "--json", NULL), 0);
    char *def = tu_path(plan, "sweep-job.yaml");
    cr_assert(tu_exists(def) && strstr(o, def), "%s", o);
    yaml_check("k8s", def, "10", "10");
    free(o), free(def), free(k8s), free(gh), free(plan), free(spec);
    tu_rmtree(d);
    free(d);
}

/* sweep/exec.c as a library: the scheduler's task index, and sweep_submit's defaults and usage
 * errors (each file written where the command writes it, with what it writes). */
Test(sweep, library_env_index_and_submit_defaults, .timeout = 60)
{
    slm_err err = {0};
    int i = -1;
    unsetenv("SLURM_ARRAY_TASK_ID");
    unsetenv("JOB_COMPLETION_INDEX");
    cr_assert_eq(sweep_env_task(&i, &err), SLM_EUSAGE);
    cr_assert(strstr(err.msg, "--task"), "%s", err.msg);
    setenv("JOB_COMPLETION_INDEX", "3", 1);
    cr_assert_eq(sweep_env_task(&i, &err), 0);
    cr_assert_eq(i, 3);
    setenv("SLURM_ARRAY_TASK_ID", "5", 1); /* Slurm's comes first */
    cr_assert_eq(sweep_env_task(&i, &err), 0);
    cr_assert_eq(i, 5);
    setenv("SLURM_ARRAY_TASK_ID", "5x", 1);
    cr_assert_eq(sweep_env_task(&i, &err), SLM_EUSAGE);
    cr_assert(strstr(err.msg, "'5x'"), "%s", err.msg);

    char *d = tu_tmpdir("sweep-lib");
    write_eval(d);
    char *spec = write_spec(d, "sweep.json", "gguf/stories260K.gguf", "\"Q8_0\", \"Q4_0\"", NULL);
    char *plan = tu_path(d, "plan");
    TU_SLM_OK("sweep", "plan", spec, "-o", plan);
    sweep_plan p;
    cr_assert_eq(sweep_plan_read(plan, &p, &err), 0, "%s", err.msg);
    sweep_submit_result r;
    /* github: --spec, and a relative PLAN_DIR (or --plan-path) */
    sweep_submit_opts o = {.mode = SWEEP_SUBMIT_GITHUB};
    cr_assert_eq(sweep_submit(&p, plan, &o, &r, &err), SLM_EUSAGE);
    cr_assert(strstr(err.msg, "--spec"), "%s", err.msg);
    o.spec = "sweep.json";
    cr_assert_eq(sweep_submit(&p, plan, &o, &r, &err), SLM_EUSAGE);
    cr_assert(strstr(err.msg, "--plan-path"), "%s", err.msg);
    /* k8s: PLAN_DIR/sweep-job.yaml, the plan under the default mount */
    o = (sweep_submit_opts){.mode = SWEEP_SUBMIT_K8S};
    cr_assert_eq(sweep_submit(&p, plan, &o, &r, &err), 0, "%s", err.msg);
    char *job = tu_path(plan, "sweep-job.yaml");
    cr_assert_str_eq(r.path, job);
    char *text = tu_read_file(job, NULL);
    cr_assert(text && strstr(text, "'/sweep/plan'") && strstr(text, "'slm', 'sweep', 'run'"), "%s", text ? text : "");
    free(text);
    sweep_submit_result_free(&r);
    /* slurm, dry run: the script over every task (none has a result), nothing submitted */
    o = (sweep_submit_opts){.mode = SWEEP_SUBMIT_SLURM, .slm = "/opt/slm", .dry_run = 1, .max_parallel = 2};
    cr_assert_eq(sweep_submit(&p, plan, &o, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.submitted, p.n_tasks);
    cr_assert_str_eq(r.array, "0-2%2");
    cr_assert_str_eq(r.job, "");
    cr_assert_eq(r.exec_errno, 0);
    text = tu_read_file(r.path, NULL);
    cr_assert(text && strstr(text, "/opt/slm"), "%s: %s", r.path, text ? text : "not written");
    free(text);
    sweep_submit_result_free(&r);
    sweep_plan_free(&p);
    free(job), free(plan), free(spec);
    tu_rmtree(d);
    free(d);
}

/* ---- the fuzz target's seeds and past findings (fuzz/fuzz_sweep_plan.c) ------------------------ */
#include "fuzz/fuzz_sweep_plan.c"

static int replay_sweep(const char *sub, int seeds)
{
    const char *td = getenv("SLM_TESTDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/../fuzz/%s", td && *td ? td : "tests", sub);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char *p = tu_path(dir, e->d_name);
        size_t len;
        char *data = tu_read_file(p, &len);
        cr_assert_not_null(data, "%s", p);
        int rc = fuzz_sweep_plan((const uint8_t *)data, len);
        if (seeds && strstr(e->d_name, "-bad"))
            cr_expect_eq(rc, SLM_EINPUT, "%s: must be refused, got %d", p, rc);
        else if (seeds || !strncmp(e->d_name, "ok-", 3))
            cr_expect_eq(rc, 0, "%s: must parse, got %d", p, rc);
        else if (strncmp(e->d_name, "crash-", 6) && strncmp(e->d_name, "timeout-", 8) && strncmp(e->d_name, "oom-", 4))
            cr_expect_eq(rc, SLM_EINPUT, "%s: must be refused, got %d", p, rc);
        free(data);
        free(p);
        n++;
    }
    closedir(d);
    return n;
}

Test(sweep, fuzz_seeds_and_regressions)
{
    cr_assert_geq(replay_sweep("corpus/sweep_plan", 1), 4, "no seeds for fuzz_sweep_plan");
    cr_assert_geq(replay_sweep("regressions/sweep_plan", 0), 5, "no regressions for fuzz_sweep_plan");
    char *o = NULL, *e = NULL;
    const char *td = getenv("SLM_TESTDIR");
    char sh[4096];
    snprintf(sh, sizeof sh, "%s/../fuzz/dict_of.sh", td && *td ? td : "tests");
    const char *argv[] = {"sh", sh, "sweep_plan", NULL};
    cr_expect_eq(tu_run(&o, &e, argv), 0, "no libFuzzer dictionary for sweep_plan: %s", e);
    free(o), free(e);
}
