/* tests/test_atomic.c — atomic output files (formats/atomic.c). */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "formats.h"
#include "testutil.h"

Test(atomic, commit_creates_file_without_leftovers)
{
    char *dir = tu_tmpdir("atomic");
    char *path = tu_path(dir, "out.bin");
    slm_afile *f;
    slm_err err = {0};
    cr_assert_eq(slm_afile_open(path, &f, &err), SLM_OK, "%s", err.msg);
    /* The temp file exists beside the target while writing; the target does not. */
    cr_assert_eq(tu_count_entries(dir), 1);
    cr_assert(!tu_exists(path));
    cr_assert_eq(slm_afile_write(f, "hello ", 6, &err), SLM_OK);
    cr_assert_eq(slm_afile_write(f, "world", 5, &err), SLM_OK);
    cr_assert_eq(slm_afile_written(f), 11);
    cr_assert_eq(slm_afile_commit(f, &err), SLM_OK, "%s", err.msg);
    size_t n;
    char *got = tu_read_file(path, &n);
    cr_assert_not_null(got);
    cr_assert_eq(n, 11);
    cr_assert_str_eq(got, "hello world");
    cr_assert_eq(tu_count_entries(dir), 1);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0600, 0600);
    free(got);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

Test(atomic, commit_replaces_existing_file)
{
    char *dir = tu_tmpdir("atomic");
    char *path = tu_path(dir, "out.bin");
    cr_assert_eq(tu_write_file(path, "old contents that are longer", 28), 0);
    slm_afile *f;
    slm_err err = {0};
    cr_assert_eq(slm_afile_open(path, &f, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(slm_afile_write(f, "new", 3, &err), SLM_OK);
    /* Until commit, readers still see the old file in full. */
    size_t n;
    char *got = tu_read_file(path, &n);
    cr_assert_eq(n, 28);
    free(got);
    cr_assert_eq(slm_afile_commit(f, &err), SLM_OK, "%s", err.msg);
    got = tu_read_file(path, &n);
    cr_assert_eq(n, 3);
    cr_assert_eq(memcmp(got, "new", 3), 0);
    cr_assert_eq(tu_count_entries(dir), 1);
    free(got);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

Test(atomic, abort_leaves_nothing)
{
    char *dir = tu_tmpdir("atomic");
    char *path = tu_path(dir, "out.bin");
    slm_afile *f;
    slm_err err = {0};
    cr_assert_eq(slm_afile_open(path, &f, &err), SLM_OK, "%s", err.msg);
    char buf[1000];
    memset(buf, 7, sizeof buf);
    cr_assert_eq(slm_afile_write(f, buf, sizeof buf, &err), SLM_OK);
    slm_afile_abort(f);
    cr_assert_eq(tu_count_entries(dir), 0);
    /* An existing destination survives an aborted replacement. */
    cr_assert_eq(tu_write_file(path, "keep", 4), 0);
    cr_assert_eq(slm_afile_open(path, &f, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(slm_afile_write(f, buf, sizeof buf, &err), SLM_OK);
    slm_afile_abort(f);
    cr_assert_eq(tu_count_entries(dir), 1);
    size_t n;
    char *got = tu_read_file(path, &n);
    cr_assert_eq(n, 4);
    free(got);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

Test(atomic, unwritable_destination_fails_at_open)
{
    char *dir = tu_tmpdir("atomic");
    slm_afile *f = NULL;
    slm_err err = {0};
    /* Missing directory. */
    char *p1 = tu_path(dir, "missing/out.bin");
    cr_assert_eq(slm_afile_open(p1, &f, &err), SLM_EIO);
    cr_assert_null(f);
    cr_assert(strstr(err.msg, p1), "%s", err.msg);
    cr_assert(strstr(err.msg, strerror(ENOENT)), "%s", err.msg);
    /* Parent is a regular file. */
    char *file = tu_path(dir, "plain");
    cr_assert_eq(tu_write_file(file, "x", 1), 0);
    char *p2 = tu_path(file, "out.bin");
    cr_assert_eq(slm_afile_open(p2, &f, &err), SLM_EIO);
    /* Destination is a directory. */
    cr_assert_eq(slm_afile_open(dir, &f, &err), SLM_EIO);
    cr_assert(strstr(err.msg, "directory"), "%s", err.msg);
    /* Read-only directory (meaningless as root, which may write anyway). */
    if (geteuid() != 0) {
        char *ro = tu_path(dir, "ro");
        cr_assert_eq(mkdir(ro, 0555), 0);
        char *p3 = tu_path(ro, "out.bin");
        cr_assert_eq(slm_afile_open(p3, &f, &err), SLM_EIO);
        cr_assert(strstr(err.msg, strerror(EACCES)), "%s", err.msg);
        chmod(ro, 0755);
        free(p3);
        free(ro);
    }
    cr_assert_eq(tu_count_entries(dir), 1); /* only "plain" */
    free(p1);
    free(p2);
    free(file);
    tu_rmtree(dir);
    free(dir);
}

/* Deterministic pseudo-random content so the big write can be checked byte by byte. */
static uint8_t pattern_byte(uint64_t i) { return (uint8_t)((i * 2654435761u) >> 13 ^ i); }

Test(atomic, large_write_in_odd_pieces)
{
    /* Crosses several 64 MiB writeback windows and the 4 MiB buffer edges. */
    const uint64_t total = (uint64_t)150 << 20;
    char *dir = tu_tmpdir("atomic");
    char *path = tu_path(dir, "big.bin");
    slm_afile *f;
    slm_err err = {0};
    cr_assert_eq(slm_afile_open(path, &f, &err), SLM_OK, "%s", err.msg);
    size_t cap = 9u << 20;
    uint8_t *buf = malloc(cap);
    static const size_t pieces[] = {1, 4095, 3u << 20, 5u << 20, 9u << 20, 4u << 20, 77};
    uint64_t off = 0;
    for (int k = 0; off < total; k++) {
        size_t n = pieces[k % 7];
        if (n > total - off)
            n = (size_t)(total - off);
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern_byte(off + i);
        cr_assert_eq(slm_afile_write(f, buf, n, &err), SLM_OK, "%s", err.msg);
        off += n;
    }
    cr_assert_eq(slm_afile_written(f), total);
    cr_assert_eq(slm_afile_commit(f, &err), SLM_OK, "%s", err.msg);
    FILE *in = fopen(path, "rb");
    cr_assert_not_null(in);
    off = 0;
    size_t got;
    int bad = 0;
    while ((got = fread(buf, 1, cap, in)) > 0) {
        for (size_t i = 0; i < got && !bad; i++)
            bad = buf[i] != pattern_byte(off + i);
        off += got;
    }
    fclose(in);
    cr_assert(!bad);
    cr_assert_eq(off, total);
    free(buf);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

Test(atomic, clean_stale_removes_only_dead_owners)
{
    char *dir = tu_tmpdir("atomic");
    char *path = tu_path(dir, "model.gguf");
    /* A pid that surely belongs to no live process: a reaped child's. */
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0);
    char name[256];
    snprintf(name, sizeof name, ".model.gguf.tmp.%ld.0badf00d", (long)child);
    char *dead = tu_path(dir, name);
    snprintf(name, sizeof name, ".model.gguf.tmp.%ld.12345678", (long)getpid());
    char *alive = tu_path(dir, name);
    char *other = tu_path(dir, ".other.gguf.tmp.1.0");
    char *keep = tu_path(dir, "model.gguf");
    cr_assert_eq(tu_write_file(dead, "d", 1), 0);
    cr_assert_eq(tu_write_file(alive, "a", 1), 0);
    cr_assert_eq(tu_write_file(other, "o", 1), 0);
    cr_assert_eq(tu_write_file(keep, "k", 1), 0);
    slm_afile_clean_stale(path);
    cr_assert(!tu_exists(dead));
    cr_assert(tu_exists(alive));
    cr_assert(tu_exists(other));
    cr_assert(tu_exists(keep));
    /* Our own temp files carry our pid, so they are never taken for stale. */
    slm_afile *f;
    slm_err err = {0};
    cr_assert_eq(slm_afile_open(path, &f, &err), SLM_OK, "%s", err.msg);
    slm_afile_clean_stale(path);
    cr_assert_eq(tu_count_entries(dir), 4);
    slm_afile_abort(f);
    cr_assert_eq(tu_count_entries(dir), 3);
    free(dead);
    free(alive);
    free(other);
    free(keep);
    free(path);
    tu_rmtree(dir);
    free(dir);
}
