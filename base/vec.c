/* base/vec.c — growable arrays and byte strings. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base.h"

int slm_grow(void *pp, size_t *cap, size_t need, size_t elem)
{
    void **p = pp;
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 8;
    while (nc < need) {
        if (nc > SIZE_MAX / 2)
            return -1;
        nc *= 2;
    }
    if (elem && nc > SIZE_MAX / elem)
        return -1;
    void *q = realloc(*p, nc * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = nc;
    return 0;
}

int slm_buf_append(slm_buf *b, const void *s, size_t n)
{
    if (n > SIZE_MAX - b->len - 1 || slm_grow(&b->p, &b->cap, b->len + n + 1, 1))
        return -1;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

int slm_buf_vprintf(slm_buf *b, const char *fmt, va_list ap)
{
    char small[256];
    va_list ap2;
    va_copy(ap2, ap);
    const int k = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (k < 0)
        return -1;
    if ((size_t)k < sizeof small)
        return slm_buf_append(b, small, (size_t)k);
    if ((size_t)k > SIZE_MAX - b->len - 1 || slm_grow(&b->p, &b->cap, b->len + (size_t)k + 1, 1))
        return -1;
    vsnprintf(b->p + b->len, (size_t)k + 1, fmt, ap);
    b->len += (size_t)k;
    return 0;
}

int slm_buf_printf(slm_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int rc = slm_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void slm_buf_free(slm_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
