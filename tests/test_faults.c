/* tests/test_faults.c — faults during `slm convert`:
 *  - kill -9 at random moments: never a partial output file; at most the temp
 *    file of the killed run, which the next run removes;
 *  - a full disk: a file-size limit (RLIMIT_FSIZE with SIGXFSZ ignored, so
 *    write() fails with EFBIG) and, when this process may mount, a 1 MiB tmpfs
 *    (ENOSPC): one clear error line, exit 4, no output, no temp file. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "formats.h"
#include "testutil.h"

#define MODEL "stories-llama256" /* the largest checkpoint at hand: 13.6 MB */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Start `slm convert MODEL -o out args...`; stderr to errpath, or to a pipe
 * (*err_rd, read end) when a file-size limit is set: the limit would apply to
 * a stderr file too. */
static pid_t spawn_convert_ex(const char *out, const char *outtype, const char *errpath, long long fsize_limit,
                              int *err_rd)
{
    int pfd[2] = {-1, -1};
    if (err_rd)
        cr_assert_eq(pipe(pfd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = err_rd ? pfd[1] : open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDWR);
        if (fd < 0 || nul < 0)
            _exit(120);
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(fd, 2);
        if (fsize_limit >= 0) {
            struct rlimit rl = {(rlim_t)fsize_limit, (rlim_t)fsize_limit};
            signal(SIGXFSZ, SIG_IGN); /* inherited by exec: write() then fails with EFBIG */
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
                _exit(122);
        }
        const char *argv[] = {tu_slm_bin(), "convert", tu_model(MODEL), "-o", out, "--outtype", outtype, "-t", "1",
                              NULL};
        execv(argv[0], (char *const *)argv);
        _exit(121);
    }
    if (err_rd) {
        close(pfd[1]);
        *err_rd = pfd[0];
    }
    return pid;
}

static pid_t spawn_convert(const char *out, const char *outtype, const char *errpath, long long fsize_limit)
{
    return spawn_convert_ex(out, outtype, errpath, fsize_limit, NULL);
}

static int wait_status(pid_t pid)
{
    int st;
    const int polls = (int)(6000 * tu_time_scale()); /* 30 s, longer under ASan / load */
    for (int i = 0; i < polls; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(5000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    cr_assert_fail("convert did not finish within %.0f s", 30 * tu_time_scale());
    return -1;
}

/* Entries of dir other than out.gguf and stderr.txt that are not temp files
 * ".out.gguf.tmp.<pid>.<rand>" of a pid in allowed[0..n_allowed); the first
 * such entry goes to first. */
static int stray_files_except(const char *dir, const long *allowed, int n_allowed, char *first, size_t cap)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -A '%s'", dir);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char line[512];
    int n = 0;
    first[0] = 0;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        if (!strcmp(line, "out.gguf") || !strcmp(line, "stderr.txt"))
            continue;
        if (!strncmp(line, ".out.gguf.tmp.", 14)) {
            long pid = strtol(line + 14, NULL, 10);
            int ok = 0;
            for (int i = 0; i < n_allowed; i++)
                ok |= allowed[i] == pid;
            if (ok)
                continue;
        }
        if (!first[0])
            snprintf(first, cap, "%s", line);
        n++;
    }
    pclose(p);
    return n;
}

static int stray_files(const char *dir, long *unused, char *first, size_t cap)
{
    (void)unused;
    return stray_files_except(dir, NULL, 0, first, cap);
}

/* A complete output: the reader accepts it and the size is what the run reported. */
static void expect_valid_gguf(const char *path)
{
    gguf_file *g = NULL;
    slm_err err = {0};
    cr_expect_eq(gguf_open(path, &g, &err), 0, "%s is not a valid GGUF: %s", path, err.msg);
    if (g) {
        cr_expect_gt(g->n_tensors, 0);
        gguf_close(g);
    }
}

Test(faults, kill9_during_convert, .timeout = 240)
{
    char *dir = tu_tmpdir("faults-kill");
    char *out = tu_path(dir, "out.gguf");
    char *errp = tu_path(dir, "stderr.txt");
    /* how long one run takes here, to spread the kills over all of it */
    double t0 = now_s();
    cr_assert_eq(wait_status(spawn_convert(out, "q8_0", errp, -1)), 0);
    double dur = now_s() - t0;
    unlink(out);
    uint64_t rng = 0x2545f4914f6cdd1dull ^ (uint64_t)getpid();
    int killed_mid = 0;
    long killed[12];
    for (int round = 0; round < 12; round++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        const char *type = round % 2 ? "f16" : "q8_0";
        useconds_t delay = (useconds_t)((double)(rng % 1000) / 1000.0 * dur * 1.3e6);
        pid_t pid = spawn_convert(out, type, errp, -1);
        usleep(delay);
        kill(pid, SIGKILL);
        int rc = wait_status(pid);
        char stray[512];
        if (rc == 128 + SIGKILL) {
            killed[killed_mid++] = (long)pid;
            /* the rename is the commit point: killed after it (while printing
             * its summary), the output is complete; before it, there is none */
            if (tu_exists(out))
                expect_valid_gguf(out);
            /* temp files of killed runs only: this one's, or an earlier one's when
             * this run died before it got to clean up */
            int n = stray_files_except(dir, killed, killed_mid, stray, sizeof stray);
            cr_expect_eq(n, 0, "round %d: after kill -9 only temp files of killed runs may remain, found '%s'",
                         round, stray);
        } else {
            long unused;
            int n = stray_files(dir, &unused, stray, sizeof stray);
            cr_expect_eq(rc, 0, "round %d: convert exit %d", round, rc);
            expect_valid_gguf(out);
            cr_expect_eq(n, 0, "round %d: a finished convert left '%s'", round, stray);
        }
        unlink(out);
    }
    /* the next run cleans the dead run's temp file and completes */
    cr_assert_eq(wait_status(spawn_convert(out, "f16", errp, -1)), 0);
    expect_valid_gguf(out);
    long tmp_pid;
    char stray[512];
    cr_expect_eq(stray_files(dir, &tmp_pid, stray, sizeof stray), 0, "a stale temp file survived the next run: %s",
                 stray);
    cr_expect_gt(killed_mid, 0, "no run was killed before it finished: the test did not test anything");
    free(out);
    free(errp);
    tu_rmtree(dir);
    free(dir);
}

static void expect_disk_full_failure(const char *dir, const char *out, const char *errp, int rc, const char *what)
{
    char *e = tu_read_file(errp, NULL);
    cr_expect_eq(rc, SLM_EIO, "%s: exit %d, want 4: %s", what, rc, e);
    cr_expect(e && tu_count_lines(e) == 1, "%s: want one error line: %s", what, e);
    cr_expect(e && strstr(e, out), "%s: the message should name the output: %s", what, e);
    free(e);
    cr_expect(!tu_exists(out), "%s: a partial output was left", what);
    long tmp_pid;
    char stray[512];
    cr_expect_eq(stray_files(dir, &tmp_pid, stray, sizeof stray), 0, "%s: left '%s'", what, stray);
}

Test(faults, file_size_limit)
{
    char *dir = tu_tmpdir("faults-fsize");
    char *out = tu_path(dir, "out.gguf");
    char *errp = tu_path(dir, "stderr.txt");
    /* limits inside the header, inside the first buffer, and deep in the data */
    static const long long limits[] = {0, 4096, 1 << 20, 5 << 20};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        int rd = -1;
        int rc = wait_status(spawn_convert_ex(out, "f16", NULL, limits[i], &rd));
        char msg[4096];
        ssize_t got = read(rd, msg, sizeof msg - 1); /* one short line: the pipe holds it all */
        close(rd);
        msg[got > 0 ? got : 0] = 0;
        cr_assert_eq(tu_write_file(errp, msg, strlen(msg)), 0);
        char what[64];
        snprintf(what, sizeof what, "RLIMIT_FSIZE %lld", limits[i]);
        expect_disk_full_failure(dir, out, errp, rc, what);
        char *e = tu_read_file(errp, NULL);
        cr_expect(e && strstr(e, "too large"), "%s: the message should say why: %s", what, e);
        free(e);
    }
    free(out);
    free(errp);
    tu_rmtree(dir);
    free(dir);
}

Test(faults, disk_full_tmpfs)
{
    char *dir = tu_tmpdir("faults-enospc");
    if (geteuid() != 0 || mount("tmpfs", dir, "tmpfs", 0, "size=1m") != 0) {
        tu_rmtree(dir);
        free(dir);
        cr_skip_test("cannot mount a small tmpfs here (needs root / CAP_SYS_ADMIN); covered by file_size_limit");
    }
    char *out = tu_path(dir, "out.gguf");
    char errp[] = "/tmp/slmtest-enospc-stderr-XXXXXX";
    int fd = mkstemp(errp);
    cr_assert_geq(fd, 0);
    close(fd);
    int rc = wait_status(spawn_convert(out, "f16", errp, -1));
    expect_disk_full_failure(dir, out, errp, rc, "1 MiB tmpfs");
    char *e = tu_read_file(errp, NULL);
    cr_expect(e && strstr(e, "disk full"), "the message should say the disk is full: %s", e);
    free(e);
    unlink(errp);
    umount2(dir, MNT_DETACH);
    free(out);
    tu_rmtree(dir);
    free(dir);
}
