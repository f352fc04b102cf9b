/* base/bigmem.c — large read-mostly buffers (model weights, their repacked copies) in
 * 2 MiB pages where the kernel gives them.
 *
 * Decode streams every weight once per token. On 4 KiB pages that stream crosses a page
 * (a TLB miss, and a restart of the hardware prefetcher, which stops at page boundaries)
 * every 4 KiB; in 2 MiB transparent huge pages it does so 512 times less often. With
 * Linux's default THP mode ("madvise") only regions marked MADV_HUGEPAGE get them, so the
 * region is mapped anonymously, aligned to 2 MiB and marked. Measured on the SmolLM-135M
 * shape, 1 thread (docs/bench.md): the matrix products of one token 1.4-2x faster from
 * huge pages than from malloc'd or file-mapped 4 KiB pages. Where huge pages are
 * unavailable (THP "never", other systems) the region is ordinary memory. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "base.h"

enum { HUGE_BYTES = 2 << 20 };

static size_t big_span(size_t n) { return (n + HUGE_BYTES - 1) / HUGE_BYTES * HUGE_BYTES; }

void *slm_big_alloc(size_t n)
{
    if (n == 0 || n > SIZE_MAX - 2 * (size_t)HUGE_BYTES)
        return NULL;
    size_t span = big_span(n), over = span + HUGE_BYTES;
    uint8_t *m = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    /* keep the 2 MiB-aligned span, give the rest back */
    uint8_t *a = (uint8_t *)(((uintptr_t)m + HUGE_BYTES - 1) / HUGE_BYTES * HUGE_BYTES);
    if (a > m)
        munmap(m, (size_t)(a - m));
    if (a + span < m + over)
        munmap(a + span, (size_t)(m + over - (a + span)));
#ifdef MADV_HUGEPAGE
    madvise(a, span, MADV_HUGEPAGE); /* a hint: refused where THP is off, then 4 KiB pages */
#endif
    return a;
}

void slm_big_free(void *p, size_t n)
{
    if (p && n)
        munmap(p, big_span(n));
}
