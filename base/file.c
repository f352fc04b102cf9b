/* base/file.c — the one bounded text-file reader. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"

int slm_read_text_file(const char *path, size_t cap_bytes, char **out, size_t *len, slm_err *err)
{
    /* O_NONBLOCK + S_ISREG: a FIFO, device or directory is refused, never waited on */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return slm_err_set(err, SLM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return slm_err_set(err, SLM_EIO, "%s: not a regular file", path);
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= cap_bytes) {
                free(buf);
                fclose(f);
                return slm_err_set(err, SLM_EINPUT, "%s: larger than the %zu-byte cap", path, cap_bytes);
            }
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return slm_err_set(err, SLM_EINTERNAL, "out of memory");
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return slm_err_set(err, SLM_EIO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return SLM_OK;
}
