/* bench/bench_internal.h — what bench/'s own files share (not the face). */
#ifndef SLM_BENCH_INTERNAL_H
#define SLM_BENCH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Read `bytes` (multiple of 256, 64-byte aligned) with vector loads; returns a
 * value depending on every byte so the reads cannot be dropped. */
uint64_t bench_read_avx2(const void *buf, size_t bytes);
uint64_t bench_read_avx512(const void *buf, size_t bytes);
uint64_t bench_read_neon(const void *buf, size_t bytes);
/* `iters` rounds of 12 independent FMA chains; returns their sum. Flops per round:
 * 12 * 2 * lanes (8 for avx2, 16 for avx512, 4 for neon). */
float bench_fma_avx2(int64_t iters);
float bench_fma_avx512(int64_t iters);
float bench_fma_neon(int64_t iters);

double bench_now(void); /* monotonic seconds */

#endif
