/* libquant/cpu.c — which kernel set runs: CPU features from cpuid, OS support
 * of the vector state from xgetbv, and the SLM_KERNEL override. */
#include <cpuid.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>

#include "qimpl.h"

static uint64_t xgetbv0(void)
{
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

/* Bit mask of supported kernels (bit k = kernel k). Computed once. */
static int detect(void)
{
    int mask = 1 << SLM_KERNEL_SCALAR;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return mask;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx)
        return mask;
    uint64_t xcr0 = xgetbv0();
    int ymm_ok = (xcr0 & 0x6) == 0x6;           /* SSE + AVX state */
    int zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0; /* opmask + ZMM_Hi256 + Hi16_ZMM */
    if (__get_cpuid_max(0, NULL) < 7)
        return mask;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512bw = (b >> 30) & 1,
        avx512vl = (b >> 31) & 1, vnni = (c >> 11) & 1;
    if (ymm_ok && avx2 && fma && f16c)
        mask |= 1 << SLM_KERNEL_AVX2;
    if ((mask & (1 << SLM_KERNEL_AVX2)) && zmm_ok && avx512f && avx512bw && avx512vl && avx512dq && vnni)
        mask |= 1 << SLM_KERNEL_AVX512;
    return mask;
}

static _Atomic int g_mask = -1;
static _Atomic int g_active = -1;

static int cpu_mask(void)
{
    int m = atomic_load_explicit(&g_mask, memory_order_relaxed);
    if (m < 0) {
        m = detect();
        atomic_store(&g_mask, m);
    }
    return m;
}

int slm_cpu_has(int kernel)
{
    if (kernel < 0 || kernel > SLM_KERNEL_AVX512)
        return 0;
    return (cpu_mask() >> kernel) & 1;
}

static int best_upto(int kernel)
{
    for (int k = kernel; k > 0; k--)
        if (slm_cpu_has(k))
            return k;
    return SLM_KERNEL_SCALAR;
}

int slm_kernel_active(void)
{
    int k = atomic_load_explicit(&g_active, memory_order_relaxed);
    if (k >= 0)
        return k;
    k = best_upto(SLM_KERNEL_AVX512);
    const char *env = getenv("SLM_KERNEL");
    if (env && *env) {
        if (!strcasecmp(env, "scalar"))
            k = SLM_KERNEL_SCALAR;
        else if (!strcasecmp(env, "avx2"))
            k = best_upto(SLM_KERNEL_AVX2);
        else if (!strcasecmp(env, "avx512"))
            k = best_upto(SLM_KERNEL_AVX512);
    }
    atomic_store(&g_active, k);
    return k;
}

int slm_kernel_force(int kernel)
{
    if (kernel < 0)
        kernel = SLM_KERNEL_SCALAR;
    if (kernel > SLM_KERNEL_AVX512)
        kernel = SLM_KERNEL_AVX512;
    int k = best_upto(kernel);
    atomic_store(&g_active, k);
    return k;
}

const char *slm_kernel_name(int kernel)
{
    switch (kernel) {
    case SLM_KERNEL_SCALAR: return "scalar";
    case SLM_KERNEL_AVX2: return "avx2";
    case SLM_KERNEL_AVX512: return "avx512";
    default: return "unknown";
    }
}
