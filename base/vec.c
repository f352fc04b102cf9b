/* base/vec.c — growable arrays and byte strings. */
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

void slm_buf_free(slm_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
