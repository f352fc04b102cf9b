/* formats/atomic.c — atomic output files: write a temp file beside the
 * destination, fsync it, rename it over the destination, fsync the directory.
 *
 * Large outputs (multi-GiB GGUF files) are written through a 4 MiB buffer.
 * Every 64 MiB the finished window is handed to writeback (sync_file_range
 * WRITE) so the final fsync has little left to do, and the window before it
 * is waited for and dropped from the page cache (fadvise DONTNEED) so a long
 * conversion doesn't push everything else out of memory. Waiting one window
 * behind keeps the disk busy without stalling the writer on fresh data. */
#include "formats.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define AF_BUF_BYTES (4u << 20)
#define AF_WINDOW_BYTES ((uint64_t)64 << 20)

struct slm_afile {
    int fd;
    char *path;     /* destination */
    char *tmp;      /* temp file beside it */
    char *dir;      /* directory of both (for the final fsync) */
    unsigned char *buf;
    size_t buf_len;
    uint64_t written;  /* bytes accepted from the caller */
    uint64_t flushed;  /* bytes handed to write(2) */
    uint64_t kicked;   /* end of the range already given to sync_file_range */
    uint64_t dropped;  /* end of the range already waited for and dropped */
};

/* Split path into a malloc'd directory ("." when none) and the basename. */
static int split_path(const char *path, char **dir, const char **base)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        *dir = strdup(".");
        *base = path;
    } else if (slash == path) {
        *dir = strdup("/");
        *base = slash + 1;
    } else {
        size_t n = (size_t)(slash - path);
        *dir = malloc(n + 1);
        if (*dir) {
            memcpy(*dir, path, n);
            (*dir)[n] = 0;
        }
        *base = slash + 1;
    }
    return *dir ? 0 : -1;
}

static const char *errno_text(int e)
{
    if (e == ENOSPC || e == EDQUOT)
        return "disk full";
    if (e == EFBIG)
        return "file too large";
    return strerror(e);
}

static int io_err(slm_err *err, const slm_afile *f, const char *what, int e)
{
    return slm_err_set(err, SLM_EIO, "%s: %s: %s", f->path, what, errno_text(e));
}

static uint64_t random_u64(void)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        r = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 32);
    }
    return r;
}

static void afile_free(slm_afile *f)
{
    if (!f)
        return;
    free(f->path);
    free(f->tmp);
    free(f->dir);
    free(f->buf);
    free(f);
}

int slm_afile_open(const char *path, slm_afile **out, slm_err *err)
{
    *out = NULL;
    if (!path || !*path)
        return slm_err_set(err, SLM_EUSAGE, "empty output path");
    size_t plen = strlen(path);
    if (path[plen - 1] == '/')
        return slm_err_set(err, SLM_EIO, "%s: output path is a directory", path);

    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return slm_err_set(err, SLM_EIO, "%s: output path is a directory", path);

    slm_afile *f = calloc(1, sizeof *f);
    if (!f)
        return slm_err_set(err, SLM_EINTERNAL, "%s: out of memory", path);
    f->fd = -1;
    const char *base;
    f->path = strdup(path);
    f->buf = malloc(AF_BUF_BYTES);
    if (!f->path || !f->buf || split_path(path, &f->dir, &base) != 0) {
        afile_free(f);
        return slm_err_set(err, SLM_EINTERNAL, "%s: out of memory", path);
    }
    size_t tlen = strlen(f->dir) + strlen(base) + 64;
    f->tmp = malloc(tlen);
    if (!f->tmp) {
        afile_free(f);
        return slm_err_set(err, SLM_EINTERNAL, "%s: out of memory", path);
    }
    /* The pid in the name lets slm_afile_clean_stale tell dead runs' leftovers. */
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(f->tmp, tlen, "%s/.%s.tmp.%ld.%08llx", f->dir, base, (long)getpid(),
                 (unsigned long long)(random_u64() & 0xffffffffu));
        f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (f->fd >= 0 || errno != EEXIST)
            break;
    }
    if (f->fd < 0) {
        int e = errno;
        slm_err_set(err, SLM_EIO, "%s: cannot create a temporary file in '%s': %s", path, f->dir,
                    errno_text(e));
        afile_free(f);
        return SLM_EIO;
    }
    *out = f;
    return SLM_OK;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Start writeback of each completed window; wait for and drop the one before. */
static void writeback(slm_afile *f)
{
    while (f->flushed - f->kicked >= AF_WINDOW_BYTES) {
        sync_file_range(f->fd, (off64_t)f->kicked, (off64_t)AF_WINDOW_BYTES, SYNC_FILE_RANGE_WRITE);
        f->kicked += AF_WINDOW_BYTES;
        if (f->kicked >= 2 * AF_WINDOW_BYTES) {
            uint64_t end = f->kicked - AF_WINDOW_BYTES;
            if (end > f->dropped) {
                sync_file_range(f->fd, (off64_t)f->dropped, (off64_t)(end - f->dropped),
                                SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                    SYNC_FILE_RANGE_WAIT_AFTER);
                posix_fadvise(f->fd, (off_t)f->dropped, (off_t)(end - f->dropped), POSIX_FADV_DONTNEED);
                f->dropped = end;
            }
        }
    }
}

static int flush_buf(slm_afile *f, slm_err *err)
{
    if (f->buf_len == 0)
        return SLM_OK;
    if (write_all(f->fd, f->buf, f->buf_len) != 0)
        return io_err(err, f, "write failed", errno);
    f->flushed += f->buf_len;
    f->buf_len = 0;
    writeback(f);
    return SLM_OK;
}

int slm_afile_write(slm_afile *f, const void *data, size_t n, slm_err *err)
{
    const unsigned char *p = data;
    if (f->fd < 0)
        return slm_err_set(err, SLM_EINTERNAL, "%s: write after failure", f->path);
    while (n > 0) {
        if (f->buf_len == 0 && n >= AF_BUF_BYTES) {
            /* Big piece: skip the copy, but keep whole-buffer granularity. */
            size_t chunk = n - n % AF_BUF_BYTES;
            if (write_all(f->fd, p, chunk) != 0)
                return io_err(err, f, "write failed", errno);
            f->flushed += chunk;
            f->written += chunk;
            writeback(f);
            p += chunk;
            n -= chunk;
            continue;
        }
        size_t room = AF_BUF_BYTES - f->buf_len;
        size_t take = n < room ? n : room;
        memcpy(f->buf + f->buf_len, p, take);
        f->buf_len += take;
        f->written += take;
        p += take;
        n -= take;
        if (f->buf_len == AF_BUF_BYTES) {
            int rc = flush_buf(f, err);
            if (rc)
                return rc;
        }
    }
    return SLM_OK;
}

uint64_t slm_afile_written(const slm_afile *f) { return f ? f->written : 0; }

void slm_afile_abort(slm_afile *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    if (f->tmp)
        unlink(f->tmp);
    afile_free(f);
}

int slm_afile_commit(slm_afile *f, slm_err *err)
{
    int rc = flush_buf(f, err);
    if (rc) {
        slm_afile_abort(f);
        return rc;
    }
    if (fsync(f->fd) != 0) {
        rc = io_err(err, f, "fsync failed", errno);
        slm_afile_abort(f);
        return rc;
    }
    int fd = f->fd;
    f->fd = -1;
    if (close(fd) != 0) {
        rc = io_err(err, f, "close failed", errno);
        slm_afile_abort(f);
        return rc;
    }
    if (rename(f->tmp, f->path) != 0) {
        rc = io_err(err, f, "cannot rename the temporary file onto it", errno);
        slm_afile_abort(f);
        return rc;
    }
    /* The rename is durable only once the directory entry is on disk. */
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS) {
            rc = io_err(err, f, "fsync of the directory failed", errno);
        }
        close(dfd);
    }
    afile_free(f);
    return rc;
}

void slm_afile_clean_stale(const char *path)
{
    char *dir;
    const char *base;
    if (!path || split_path(path, &dir, &base) != 0)
        return;
    size_t plen = strlen(base) + 8;
    char *prefix = malloc(plen);
    if (!prefix) {
        free(dir);
        return;
    }
    snprintf(prefix, plen, ".%s.tmp.", base);
    size_t pfx = strlen(prefix);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strncmp(de->d_name, prefix, pfx) != 0)
                continue;
            char *end;
            errno = 0;
            long pid = strtol(de->d_name + pfx, &end, 10);
            if (errno || end == de->d_name + pfx || *end != '.' || pid <= 0 || pid > INT_MAX)
                continue;
            if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
                continue; /* owner alive (or not ours to judge) */
            size_t n = strlen(dir) + strlen(de->d_name) + 2;
            char *full = malloc(n);
            if (full) {
                snprintf(full, n, "%s/%s", dir, de->d_name);
                unlink(full);
                free(full);
            }
        }
        closedir(d);
    }
    free(prefix);
    free(dir);
}
