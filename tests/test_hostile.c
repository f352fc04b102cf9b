/* tests/test_hostile.c — hostile input beyond the fuzzers, through the real
 * `slm` binary: empty files, a directory or a FIFO where a file is expected,
 * a model file truncated while it is mapped, invalid UTF-8 text, absurd
 * -n/-c values, and a small mutation run (bit flips, planted extreme
 * integers, truncations) over real GGUF and safetensors files.
 *
 * The bar everywhere: `slm` ends by itself (a watchdog kills it after 30 s:
 * a hang shows as exit 137), exits with one of its documented codes (never a
 * signal), and says what is wrong on stderr. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "formats.h"
#include "testutil.h"

/* `timeout -s KILL 30*scale slm args...`: a hang becomes exit 137, not a stuck suite
 * (tu_time_scale: longer under ASan and on a loaded machine). */
static int run_guarded(char **out, char **err, const char *const *args)
{
    const char *argv[64];
    char watchdog[32];
    snprintf(watchdog, sizeof watchdog, "%.0f", 30 * tu_time_scale());
    int n = 0;
    argv[n++] = "timeout";
    argv[n++] = "-s";
    argv[n++] = "KILL";
    argv[n++] = watchdog;
    argv[n++] = tu_slm_bin();
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return tu_run(out, err, argv);
}

/* A documented exit status of a failing run: 2..6, never a signal or a hang. */
static void expect_clean_failure(int rc, const char *err, const char *what)
{
    cr_expect(rc >= SLM_EUSAGE && rc <= SLM_EINTERNAL, "%s: exit %d (want 2..6; 137 = hang, >128 = signal): %s",
              what, rc, err ? err : "");
    cr_expect(err && strstr(err, "error"), "%s: no error message on stderr", what);
    cr_expect(err && tu_count_lines(err) <= 3, "%s: the error should be one line: %s", what, err ? err : "");
}

static void copy_file(const char *from, const char *to)
{
    size_t n = 0;
    char *d = tu_read_file(from, &n);
    cr_assert_not_null(d, "cannot read %s", from);
    cr_assert_eq(tu_write_file(to, d, n), 0, "cannot write %s", to);
    free(d);
}

/* A copy of an HF model directory (all its files) in a fresh temp dir. */
static char *copy_model(const char *model, const char *tag)
{
    static const char *files[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                                  "special_tokens_map.json", "generation_config.json", "model.safetensors", NULL};
    char *dir = tu_tmpdir(tag);
    cr_assert_not_null(dir);
    for (int i = 0; files[i]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "%s/%s", model, files[i]);
        if (!tu_exists(tu_model(rel)))
            continue;
        char *to = tu_path(dir, files[i]);
        copy_file(tu_model(rel), to);
        free(to);
    }
    return dir;
}

/* Replace dir/name by a directory, a FIFO or an empty file. */
enum { AS_DIR, AS_FIFO, AS_EMPTY };
static void replace_with(const char *dir, const char *name, int what)
{
    char *p = tu_path(dir, name);
    unlink(p);
    if (what == AS_DIR)
        cr_assert_eq(mkdir(p, 0755), 0);
    else if (what == AS_FIFO)
        cr_assert_eq(mkfifo(p, 0644), 0, "mkfifo: %s", strerror(errno));
    else
        cr_assert_eq(tu_write_file(p, "", 0), 0);
    free(p);
}

/* ---- zero-length files, directories and FIFOs where files are expected ---- */

static const char *const k_what[] = {"a directory", "a FIFO", "an empty file"};

Test(hostile, gguf_not_a_file)
{
    char *dir = tu_tmpdir("hostile");
    for (int what = AS_DIR; what <= AS_EMPTY; what++) {
        replace_with(dir, "m.gguf", what);
        char *p = tu_path(dir, "m.gguf");
        char *e = NULL;
        char label[128];
        const char *a1[] = {"inspect", p, NULL};
        snprintf(label, sizeof label, "inspect on %s", k_what[what]);
        {
            int rc_ = run_guarded(NULL, &e, a1);
            expect_clean_failure(rc_, e, label);
        }
        free(e);
        const char *a2[] = {"run", "-m", p, "-n", "4", NULL};
        snprintf(label, sizeof label, "run -m %s", k_what[what]);
        int rc = run_guarded(NULL, &e, a2);
        expect_clean_failure(rc, e, label);
        cr_expect(strstr(e, p), "%s: the message should name the file: %s", label, e);
        free(e);
        const char *a3[] = {"perplexity", "-m", p, "-f", tu_corpus("tinystories-eval.txt"), NULL};
        snprintf(label, sizeof label, "perplexity -m %s", k_what[what]);
        {
            int rc_ = run_guarded(NULL, &e, a3);
            expect_clean_failure(rc_, e, label);
        }
        free(e);
        free(p);
        char *q = tu_path(dir, "m.gguf");
        if (what == AS_DIR)
            rmdir(q);
        else
            unlink(q);
        free(q);
    }
    tu_rmtree(dir);
    free(dir);
}

/* Each input file of `slm convert` in turn becomes a directory, a FIFO, an
 * empty file: a clean refusal, and no output file. */
Test(hostile, convert_inputs_not_files)
{
    static const char *inputs[] = {"config.json", "tokenizer.json", "model.safetensors", "tokenizer_config.json"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        for (int what = AS_DIR; what <= AS_EMPTY; what++) {
            if (what == AS_EMPTY && !strcmp(inputs[i], "tokenizer_config.json"))
                continue; /* an empty optional file: still a JSON error, covered by the others */
            char *dir = copy_model("stories260k", "hostile-conv");
            replace_with(dir, inputs[i], what);
            char *out = tu_path(dir, "out.gguf");
            char *e = NULL;
            const char *args[] = {"convert", dir, "-o", out, NULL};
            char label[160];
            snprintf(label, sizeof label, "convert with %s as %s", inputs[i], k_what[what]);
            int rc = run_guarded(NULL, &e, args);
            expect_clean_failure(rc, e, label);
            cr_expect(strstr(e, inputs[i]), "%s: the message should name the file: %s", label, e);
            cr_expect(!tu_exists(out), "%s: an output file was left behind", label);
            free(e);
            free(out);
            tu_rmtree(dir);
            free(dir);
        }
    }
}

Test(hostile, inspect_safetensors_not_files)
{
    char *dir = tu_tmpdir("hostile-st");
    for (int what = AS_FIFO; what <= AS_EMPTY; what++) {
        replace_with(dir, "m.safetensors", what);
        char *p = tu_path(dir, "m.safetensors");
        char *e = NULL;
        const char *args[] = {"inspect", p, NULL};
        char label[128];
        snprintf(label, sizeof label, "inspect on %s .safetensors", k_what[what]);
        {
            int rc_ = run_guarded(NULL, &e, args);
            expect_clean_failure(rc_, e, label);
        }
        free(e);
        unlink(p);
        free(p);
    }
    tu_rmtree(dir);
    free(dir);
}

/* ---- a model file that shrinks while it is mapped ---- */

/* Start slm with stderr to errpath; returns the pid. */
static pid_t spawn_slm(const char *const *args, const char *errpath)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDWR);
        if (fd < 0 || nul < 0)
            _exit(120);
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(fd, 2);
        const char *argv[64];
        int n = 0;
        argv[n++] = tu_slm_bin();
        for (int i = 0; args[i] && n < 63; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(121);
    }
    return pid;
}

/* Exit status (128+sig when killed); kills and fails after 60 s (times tu_time_scale). */
static int wait_slm(pid_t pid)
{
    int st;
    const int polls = (int)(6000 * tu_time_scale());
    for (int i = 0; i < polls; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    cr_assert_fail("slm did not finish within %.0f s", 60 * tu_time_scale());
    return -1;
}

/* True once /proc/PID/maps shows a mapping of a file whose path contains needle. */
static int has_mapped(pid_t pid, const char *needle)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%ld/maps", (long)pid);
    size_t n = 0;
    char *maps = tu_read_file(p, &n);
    int yes = maps && strstr(maps, needle) != NULL;
    free(maps);
    return yes;
}

/* True while the child has not exited (does not reap it: wait_slm still gets its status). */
static int still_running(pid_t pid)
{
    siginfo_t si = {0};
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0;
}

Test(hostile, gguf_truncated_while_mapped)
{
    char *dir = tu_tmpdir("hostile-shrink");
    char *model = tu_path(dir, "shrinking.gguf");
    char *errp = tu_path(dir, "stderr.txt");
    copy_file(tu_model("gguf/stories260K.gguf"), model);
    /* perplexity over the whole eval text with a tiny context: seconds of work
     * that touch every weight again for each chunk */
    const char *args[] = {"perplexity", "-m", model, "-f", tu_corpus("tinystories-eval.txt"), "-c", "16", "-t", "1",
                          NULL};
    pid_t pid = spawn_slm(args, errp);
    /* wait for the event (the mapping), not for a time: ends when mapped or when slm exited */
    int mapped = 0;
    while (!(mapped = has_mapped(pid, "shrinking.gguf")) && still_running(pid))
        usleep(1000);
    cr_assert(mapped, "slm exited before it mapped the model");
    cr_assert_eq(truncate(model, 4096), 0, "truncate: %s", strerror(errno));
    int rc = wait_slm(pid);
    char *e = tu_read_file(errp, NULL);
    cr_expect_eq(rc, SLM_EIO, "a model truncated under a running tool must give exit 4, got %d: %s", rc, e);
    cr_expect(e && strstr(e, "truncated or changed"), "stderr: %s", e);
    free(e);
    tu_rmtree(dir);
    free(dir);
    free(model);
    free(errp);
}

/* The source checkpoint shrinks during `slm convert`: the run is stopped (SIGSTOP) as soon as
 * it has mapped the file, the file is truncated, the run continues. It must fail cleanly with
 * exit 4 and the "truncated or changed" message, never a success, never a signal, never a
 * partial output; the next run removes the dead run's temp file. A run that finished before we
 * could stop it (it proves nothing) is retried. */
Test(hostile, convert_source_truncated_while_mapped, .timeout = 120)
{
    int truncated_mid_run = 0;
    for (int attempt = 0; attempt < 5 && !truncated_mid_run; attempt++) {
        char *dir = copy_model("stories-llama256", "hostile-conv-shrink");
        char *out = tu_path(dir, "out.gguf");
        char *errp = tu_path(dir, "stderr.txt");
        char *st = tu_path(dir, "model.safetensors");
        const int n0 = tu_count_entries(dir);
        const char *args[] = {"convert", dir, "-o", out, "-t", "1", "--outtype", "q8_0", NULL};
        pid_t pid = spawn_slm(args, errp);
        while (!has_mapped(pid, "model.safetensors") && still_running(pid))
            ;
        kill(pid, SIGSTOP);
        if (still_running(pid) && !tu_exists(out)) {
            cr_assert_eq(truncate(st, 8192), 0, "truncate: %s", strerror(errno));
            truncated_mid_run = 1;
        }
        kill(pid, SIGCONT);
        int rc = wait_slm(pid);
        char *e = tu_read_file(errp, NULL);
        if (truncated_mid_run) {
            cr_expect_eq(rc, SLM_EIO, "convert of a checkpoint truncated mid-run: exit %d (want 4): %s", rc, e);
            cr_expect(e && strstr(e, "truncated or changed"), "stderr: %s", e);
            cr_expect(!tu_exists(out), "a failed convert left %s", out);
            /* the next run (on the intact checkpoint) removes the dead run's temp file */
            copy_file(tu_model("stories-llama256/model.safetensors"), st);
            char *o2 = NULL, *e2 = NULL;
            cr_expect_eq(tu_run_slm(&o2, &e2, args), 0, "rerun: %s", e2);
            cr_expect_eq(tu_count_entries(dir), n0 + 2, "files left besides the model, out.gguf and stderr.txt");
            free(o2), free(e2);
        } else {
            cr_log_warn("convert finished before it could be stopped (attempt %d); retrying", attempt + 1);
        }
        free(e);
        free(st);
        free(errp);
        free(out);
        tu_rmtree(dir);
        free(dir);
    }
    cr_assert(truncated_mid_run, "could not truncate the checkpoint while convert was running (5 attempts)");
}

/* ---- text that is not UTF-8 ---- */

Test(hostile, invalid_utf8_prompt_and_text)
{
    const char *bad = "Once \xff\xfe upon \xc3 a \xe2\x82 time \xed\xa0\x80 \xf4\x90\x80\x80 end\x80";
    for (int m = 0; m < 2; m++) {
        char *dir = tu_tmpdir("hostile-utf8");
        const char *model = tu_model("gguf/stories260K.gguf");
        char *gpt2 = NULL;
        if (m == 1) { /* a byte-level BPE vocabulary too */
            gpt2 = tu_path(dir, "gpt2.gguf");
            const char *ca[] = {"convert", tu_model("tiny-random-gpt2"), "-o", gpt2, NULL};
            cr_assert_eq(run_guarded(NULL, NULL, ca), 0);
            model = gpt2;
        }
        char *o = NULL, *e = NULL;
        const char *args[] = {"run", "-m", model, "-p", bad, "-n", "8", "--seed", "1", NULL};
        int rc = run_guarded(&o, &e, args);
        cr_expect_eq(rc, 0, "run with an invalid UTF-8 prompt: exit %d: %s", rc, e);
        free(o);
        free(e);
        /* the same bytes (and NULs) in a text file */
        char *txt = tu_path(dir, "bad.txt");
        size_t blen = strlen(bad);
        char *buf = malloc(blen * 200 + 200);
        size_t n = 0;
        for (int i = 0; i < 200; i++) {
            memcpy(buf + n, bad, blen);
            n += blen;
            buf[n++] = (char)(i % 7 == 0 ? 0 : ' ');
        }
        cr_assert_eq(tu_write_file(txt, buf, n), 0);
        free(buf);
        const char *fa[] = {"run", "-m", model, "-f", txt, "-n", "2", NULL};
        rc = run_guarded(&o, &e, fa);
        cr_expect(rc == 0 || rc == SLM_EINPUT, "run -f invalid UTF-8: exit %d: %s", rc, e);
        free(o);
        free(e);
        const char *pa[] = {"perplexity", "-m", model, "-f", txt, "-c", "16", NULL};
        rc = run_guarded(&o, &e, pa);
        cr_expect(rc == 0 || rc == SLM_EINPUT, "perplexity on invalid UTF-8: exit %d: %s", rc, e);
        free(o);
        free(e);
        free(txt);
        free(gpt2);
        tu_rmtree(dir);
        free(dir);
    }
}

/* ---- absurd numbers on the command line ---- */

Test(hostile, huge_counts)
{
    const char *m = tu_model("gguf/stories260K.gguf");
    const char *eval = tu_corpus("tinystories-eval.txt");
    static const char *const huge[] = {"99999999999999999999", "2147483648", "-1", "1e9", "0x7fffffff", ""};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        char *e = NULL;
        const char *a1[] = {"run", "-m", m, "-p", "Once", "-n", huge[i], NULL};
        {
            int rc_ = run_guarded(NULL, &e, a1);
            expect_clean_failure(rc_, e, "run -n huge");
        }
        free(e);
        const char *a2[] = {"run", "-m", m, "-p", "Once", "-n", "1", "-c", huge[i], NULL};
        {
            int rc_ = run_guarded(NULL, &e, a2);
            expect_clean_failure(rc_, e, "run -c huge");
        }
        free(e);
        const char *a3[] = {"perplexity", "-m", m, "-f", eval, "-c", huge[i], NULL};
        {
            int rc_ = run_guarded(NULL, &e, a3);
            expect_clean_failure(rc_, e, "perplexity -c huge");
        }
        free(e);
        const char *a4[] = {"run", "-m", m, "-p", "Once", "-n", "1", "-t", huge[i], NULL};
        {
            int rc_ = run_guarded(NULL, &e, a4);
            expect_clean_failure(rc_, e, "run -t huge");
        }
        free(e);
    }
    /* large but legal: -n far beyond the context stops at the context, cleanly */
    char *o = NULL, *e = NULL;
    const char *ok[] = {"run", "-m", m, "-p", "Once", "-n", "100000", "-c", "64", "--seed", "3", NULL};
    int rc = run_guarded(&o, &e, ok);
    cr_expect(rc == 0 || rc == SLM_EINPUT, "run -n 100000 -c 64: exit %d: %s", rc, e);
    free(o);
    free(e);
}

/* ---- a small mutation run through the real binary ---- */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* One mutation of buf (len bytes; may shrink *len): a bit flip, a planted
 * extreme integer, junk bytes over a range, or a truncation. */
static void mutate(uint8_t *buf, size_t *len, uint64_t *rng, size_t hot)
{
    static const uint64_t extremes[] = {0, 1, 0x7f, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0x80000000u, 0xffffffffu,
                                        0x7fffffffffffffffull, 0x8000000000000000ull, 0xffffffffffffffffull};
    size_t n = *len;
    /* most hits go to the first `hot` bytes (headers, counts, lengths) */
    size_t span = (rng_next(rng) % 4 && hot < n) ? hot : n;
    size_t at = (size_t)(rng_next(rng) % span);
    switch (rng_next(rng) % 4) {
    case 0:
        buf[at] ^= (uint8_t)(1u << (rng_next(rng) % 8));
        break;
    case 1: {
        uint64_t v = extremes[rng_next(rng) % (sizeof extremes / sizeof extremes[0])];
        size_t w = (rng_next(rng) % 2) ? 8 : 4;
        if (at + w <= n)
            memcpy(buf + at, &v, w);
        break;
    }
    case 2: {
        size_t k = 1 + rng_next(rng) % 16;
        for (size_t i = 0; i < k && at + i < n; i++)
            buf[at + i] = (uint8_t)rng_next(rng);
        break;
    }
    default:
        *len = at;
        break;
    }
}

static void mutation_run(const char *src, const char *name, int rounds, size_t hot, uint64_t seed,
                         const char *const *cmd_before, const char *const *cmd_after)
{
    size_t n0 = 0;
    uint8_t *orig = (uint8_t *)tu_read_file(src, &n0);
    cr_assert_not_null(orig, "cannot read %s", src);
    char *dir = tu_tmpdir("hostile-mut");
    char *path = tu_path(dir, name);
    uint8_t *buf = malloc(n0);
    uint64_t rng = seed;
    int refused = 0;
    for (int r = 0; r < rounds; r++) {
        memcpy(buf, orig, n0);
        size_t len = n0;
        int k = 1 + (int)(rng_next(&rng) % 3);
        for (int i = 0; i < k; i++)
            mutate(buf, &len, &rng, hot);
        cr_assert_eq(tu_write_file(path, buf, len), 0);
        const char *args[32];
        int a = 0;
        for (int i = 0; cmd_before[i]; i++)
            args[a++] = cmd_before[i];
        args[a++] = path;
        for (int i = 0; cmd_after && cmd_after[i]; i++)
            args[a++] = cmd_after[i];
        args[a] = NULL;
        char *e = NULL;
        int rc = run_guarded(NULL, &e, args);
        cr_assert(rc >= 0 && rc <= SLM_EINTERNAL,
                  "%s mutation %d (seed %llu): exit %d (137 = hang, >128 = signal): %s", name, r,
                  (unsigned long long)seed, rc, e);
        refused += rc != 0;
        free(e);
    }
    cr_expect_gt(refused, 0, "no mutation of %s was refused: the mutations do nothing", name);
    free(buf);
    free(orig);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

Test(hostile, mutated_gguf, .timeout = 240)
{
    static const char *const inspect[] = {"inspect", NULL};
    mutation_run(tu_model("gguf/stories260K.gguf"), "m.gguf", 150, 12000, 0x9e3779b97f4a7c15ull, inspect, NULL);
    static const char *const run[] = {"run", "-m", NULL};
    static const char *const run_args[] = {"-p", "Once upon", "-n", "4", "-t", "1", NULL};
    mutation_run(tu_model("gguf/stories260K.gguf"), "m.gguf", 100, 12000, 0x243f6a8885a308d3ull, run, run_args);
}

Test(hostile, mutated_safetensors, .timeout = 240)
{
    static const char *const inspect[] = {"inspect", NULL};
    mutation_run(tu_model("stories260k/model.safetensors"), "m.safetensors", 150, 5000, 0x13198a2e03707344ull,
                 inspect, NULL);
}

/* tokenizer.json (and config.json) mutated inside a model directory, through
 * `slm convert`: a documented exit code, and no output unless it succeeded. */
static void mutate_model_file(const char *model, const char *file, int rounds, uint64_t seed)
{
    char *dir = copy_model(model, "hostile-mutdir");
    char *target = tu_path(dir, file);
    char *out = tu_path(dir, "out.gguf");
    size_t n0 = 0;
    uint8_t *orig = (uint8_t *)tu_read_file(target, &n0);
    cr_assert_not_null(orig);
    uint8_t *buf = malloc(n0);
    uint64_t rng = seed;
    int refused = 0;
    for (int r = 0; r < rounds; r++) {
        memcpy(buf, orig, n0);
        size_t len = n0;
        int k = 1 + (int)(rng_next(&rng) % 3);
        for (int i = 0; i < k; i++)
            mutate(buf, &len, &rng, len);
        cr_assert_eq(tu_write_file(target, buf, len), 0);
        unlink(out);
        char *e = NULL;
        const char *args[] = {"convert", dir, "-o", out, "--outtype", "f32", "-t", "1", NULL};
        int rc = run_guarded(NULL, &e, args);
        cr_assert(rc >= 0 && rc <= SLM_EINTERNAL, "%s mutation %d (seed %llu): exit %d: %s", file, r,
                  (unsigned long long)seed, rc, e);
        if (rc != 0)
            cr_expect(!tu_exists(out), "%s mutation %d: a failed convert left an output", file, r);
        refused += rc != 0;
        free(e);
    }
    cr_expect_gt(refused, 0, "no mutation of %s was refused", file);
    free(buf);
    free(orig);
    free(out);
    free(target);
    tu_rmtree(dir);
    free(dir);
}

Test(hostile, mutated_tokenizer_and_config, .timeout = 240)
{
    mutate_model_file("stories260k", "tokenizer.json", 40, 0xa4093822299f31d0ull);
    mutate_model_file("tiny-random-gpt2", "tokenizer.json", 40, 0x082efa98ec4e6c89ull);
    mutate_model_file("stories260k", "config.json", 30, 0x452821e638d01377ull);
}

/* Bundles and trust roots (the signed seeds of fuzz/corpus, made with the
 * fuzz harness key) through `slm verify` and `slm trust verify`. */
static char *fuzz_seed(const char *rel)
{
    const char *td = getenv("SLM_TESTDIR");
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/fuzz/corpus/%s", td && *td ? td : ".", rel);
    if (td && *td)
        snprintf(p, 4096, "%s/../fuzz/corpus/%s", td, rel);
    return p;
}

Test(hostile, mutated_bundle_and_root, .timeout = 240)
{
    char *bundle = fuzz_seed("bundle/small"), *root = fuzz_seed("root/root-1key");
    char *e = NULL;
    const char *ok[] = {"verify", bundle, "--trust", root, NULL};
    cr_assert_eq(run_guarded(NULL, &e, ok), 0, "the unmutated bundle must verify: %s", e);
    free(e);
    static const char *const verify[] = {"verify", NULL};
    const char *const trust_args[] = {"--trust", root, NULL};
    /* hot: the 24-byte header, the manifest and the signature block */
    mutation_run(bundle, "b.slmb", 120, 1200, 0x3c6ef372fe94f82bull, verify, trust_args);
    static const char *const trust_verify[] = {"trust", "verify", NULL};
    mutation_run(root, "root.json", 80, 600, 0xa54ff53a5f1d36f1ull, trust_verify, NULL);
    free(bundle);
    free(root);
}
