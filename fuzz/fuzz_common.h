/* fuzz/fuzz_common.h — what the libFuzzer targets share.
 *
 * Each fuzz/fuzz_<target>.c defines `int fuzz_<target>(const uint8_t *, size_t)`
 * (0 when the input parsed, else the slm status) and ends with
 * FUZZ_ENTRY(fuzz_<target>). Built by `make fuzz` with -DSLM_FUZZ_MAIN the
 * macro becomes libFuzzer's entry point; tests/test_fuzz.c #includes the same
 * files without it and replays the seed corpora and fuzz/regressions/ through
 * the very same functions under the normal and the ASan build.
 *
 * The parsers take paths, not buffers: single-file inputs go through a
 * memfd (/proc/self/fd/N: a regular file, no disk), directory inputs through
 * a scratch directory made once per process under /dev/shm (or $TMPDIR). */
#ifndef SLM_FUZZ_COMMON_H
#define SLM_FUZZ_COMMON_H

#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats.h"

#ifdef SLM_FUZZ_MAIN
#define FUZZ_ENTRY(fn)                                                   \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);        \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)         \
    {                                                                    \
        (void)fn(data, size);                                            \
        return 0;                                                        \
    }
#else
#define FUZZ_ENTRY(fn)
#endif

/* Write all of [p, p+n) to fd; 0 on success. */
static inline int fz_write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A memfd holding data; *path gets "/proc/self/fd/N". Returns the fd or -1. */
static inline int fz_memfile(const uint8_t *data, size_t size, char *path, size_t cap)
{
    int fd = memfd_create("slmfuzz", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fz_write_all(fd, data, size) != 0) {
        close(fd);
        return -1;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

static char fz_dir[256];

static inline int fz_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static inline void fz_cleanup(void)
{
    if (fz_dir[0])
        nftw(fz_dir, fz_rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

/* The per-process scratch directory (created on first use, removed at exit,
 * never NULL; aborts when it cannot be made: a broken harness must not look
 * clean). */
static inline const char *fz_scratch_dir(void)
{
    char *dir = fz_dir;
    if (!dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        snprintf(dir, sizeof fz_dir, "%s/slmfuzz-%ld-XXXXXX", base && *base ? base : "/tmp", (long)getpid());
        if (!mkdtemp(dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fz_cleanup);
    }
    return dir;
}

/* dir/name := data (n bytes); aborts on failure (see above). */
static inline void fz_put(const char *dir, const char *name, const uint8_t *data, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || fz_write_all(fd, data, n) != 0) {
        perror(path);
        abort();
    }
    close(fd);
}

static inline void fz_remove(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

/* Split data at each "\n#--8<--#\n" (the multi-file separator of the
 * directory targets): part i is [starts[i], starts[i] + lens[i]).
 * Returns the number of parts (at most max). */
#define FZ_SEP "\n#--8<--#\n"
static inline int fz_split(const uint8_t *data, size_t size, const uint8_t **starts, size_t *lens, int max)
{
    const size_t sl = sizeof FZ_SEP - 1;
    int n = 0;
    size_t from = 0;
    while (n < max) {
        const uint8_t *hit = NULL;
        if (n < max - 1 && size - from >= sl)
            hit = memmem(data + from, size - from, FZ_SEP, sl);
        size_t end = hit ? (size_t)(hit - data) : size;
        starts[n] = data + from;
        lens[n] = end - from;
        n++;
        if (!hit)
            break;
        from = end + sl;
    }
    return n;
}

/* Touch every byte of [p, p+n) so ASan sees any out-of-bounds pointer the
 * parser handed out; the sum is returned so the loop is not optimised away. */
static inline unsigned fz_touch(const void *p, uint64_t n)
{
    const volatile uint8_t *b = p;
    unsigned s = 0;
    for (uint64_t i = 0; i < n; i++)
        s += b[i];
    return s;
}

#endif
