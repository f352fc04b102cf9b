/* libquant/cpu_x86.c — x86-64 CPU features: cpuid for the instructions, xgetbv for the
 * OS's support of the vector state. Built only for x86 targets (Makefile ISA lists). */
#include <cpuid.h>

#include "qimpl.h"

static uint64_t xgetbv0(void)
{
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

unsigned slm_cpu_detect(int *sve_bits)
{
    unsigned caps = 0;
    unsigned a, b, c, d;
    *sve_bits = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return caps;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx)
        return caps;
    uint64_t xcr0 = xgetbv0();
    int ymm_ok = (xcr0 & 0x6) == 0x6;           /* SSE + AVX state */
    int zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0; /* opmask + ZMM_Hi256 + Hi16_ZMM */
    if (__get_cpuid_max(0, NULL) < 7)
        return caps;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512bw = (b >> 30) & 1,
        avx512vl = (b >> 31) & 1, vnni = (c >> 11) & 1;
    if (ymm_ok && avx2 && fma && f16c)
        caps |= SLM_CAP_AVX2;
    if ((caps & SLM_CAP_AVX2) && zmm_ok && avx512f && avx512bw && avx512vl && avx512dq && vnni)
        caps |= SLM_CAP_AVX512;
    return caps;
}
