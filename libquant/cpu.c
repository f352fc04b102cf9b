/* libquant/cpu.c — which kernel set runs: the sets' names, needs and parents, the
 * CPU's capabilities (cpu_x86.c / cpu_arm.c, chosen by the Makefile's ISA lists), and
 * the SLM_KERNEL override. Nothing here compares set ids for order. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qimpl.h"

#if !defined(__x86_64__) && !defined(__aarch64__)
/* other targets: the scalar set only */
unsigned slm_cpu_detect(int *sve_bits)
{
    *sve_bits = 0;
    return 0;
}
#endif

static const struct {
    const char *name;
    unsigned needs;
    int parent;
} g_sets[SLM_KERNEL_COUNT] = {
    [SLM_KERNEL_SCALAR] = {"scalar", 0, -1},
    [SLM_KERNEL_AVX2] = {"avx2", SLM_CAP_AVX2, SLM_KERNEL_SCALAR},
    [SLM_KERNEL_AVX512] = {"avx512", SLM_CAP_AVX2 | SLM_CAP_AVX512, SLM_KERNEL_AVX2},
    [SLM_KERNEL_NEON] = {"neon", SLM_CAP_ASIMD, SLM_KERNEL_SCALAR},
    [SLM_KERNEL_DOTPROD] = {"dotprod", SLM_CAP_ASIMD | SLM_CAP_DOTPROD, SLM_KERNEL_NEON},
    [SLM_KERNEL_I8MM] = {"i8mm", SLM_CAP_ASIMD | SLM_CAP_DOTPROD | SLM_CAP_I8MM, SLM_KERNEL_DOTPROD},
    [SLM_KERNEL_FHM] = {"fhm", SLM_CAP_ASIMD | SLM_CAP_DOTPROD | SLM_CAP_FP16 | SLM_CAP_FHM, SLM_KERNEL_DOTPROD},
    [SLM_KERNEL_SVE] = {"sve", SLM_CAP_ASIMD | SLM_CAP_DOTPROD | SLM_CAP_I8MM | SLM_CAP_SVE, SLM_KERNEL_I8MM},
};
/* Preference when nothing is forced: the first set this CPU runs. */
static const int g_prefer[] = {SLM_KERNEL_AVX512, SLM_KERNEL_AVX2, SLM_KERNEL_SVE, SLM_KERNEL_I8MM,
                               SLM_KERNEL_FHM, SLM_KERNEL_DOTPROD, SLM_KERNEL_NEON, SLM_KERNEL_SCALAR};

static _Atomic int g_caps = -1;
static _Atomic int g_sve_bits = 0;
static _Atomic int g_active = -1;

unsigned slm_cpu_caps(void)
{
    int c = atomic_load_explicit(&g_caps, memory_order_acquire);
    if (c < 0) {
        int bits = 0;
        c = (int)slm_cpu_detect(&bits);
        atomic_store(&g_sve_bits, bits);
        atomic_store_explicit(&g_caps, c, memory_order_release);
    }
    return (unsigned)c;
}

int slm_sve_bits(void)
{
    slm_cpu_caps();
    return atomic_load(&g_sve_bits);
}

static int valid(int kernel) { return kernel >= 0 && kernel < SLM_KERNEL_COUNT; }

unsigned slm_kernel_needs(int kernel) { return valid(kernel) ? g_sets[kernel].needs : ~0u; }
int slm_kernel_parent(int kernel) { return valid(kernel) ? g_sets[kernel].parent : -1; }
int slm_kernel_built(int kernel) { return valid(kernel) && slm_kset_built(kernel); }
const char *slm_kernel_name(int kernel) { return valid(kernel) ? g_sets[kernel].name : "unknown"; }

int slm_kernel_by_name(const char *name)
{
    for (int k = 0; name && k < SLM_KERNEL_COUNT; k++)
        if (!strcasecmp(name, g_sets[k].name))
            return k;
    return -1;
}

int slm_cpu_has(int kernel)
{
    if (!slm_kernel_built(kernel))
        return 0;
    unsigned need = g_sets[kernel].needs;
    return (slm_cpu_caps() & need) == need;
}

/* the set itself or its nearest ancestor this CPU runs */
static int runnable_from(int kernel)
{
    for (int k = kernel; valid(k); k = g_sets[k].parent)
        if (slm_cpu_has(k))
            return k;
    return SLM_KERNEL_SCALAR;
}

static int best(void)
{
    for (size_t i = 0; i < sizeof g_prefer / sizeof g_prefer[0]; i++)
        if (slm_cpu_has(g_prefer[i]))
            return g_prefer[i];
    return SLM_KERNEL_SCALAR;
}

int slm_kernel_active(void)
{
    int k = atomic_load_explicit(&g_active, memory_order_relaxed);
    if (k >= 0)
        return k;
    k = best();
    const char *env = getenv("SLM_KERNEL");
    if (env && *env) {
        int f = slm_kernel_by_name(env);
        if (f >= 0 && slm_cpu_has(f))
            k = f;
    }
    atomic_store(&g_active, k);
    return k;
}

static void runnable_list(char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = 0;
    for (int k = 0; k < SLM_KERNEL_COUNT; k++)
        if (slm_cpu_has(k) && o < len)
            o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", g_sets[k].name);
}

int slm_kernel_env_check(char *msg, size_t msg_len)
{
    const char *env = getenv("SLM_KERNEL");
    if (!env || !*env)
        return 0;
    int f = slm_kernel_by_name(env);
    if (f >= 0 && slm_cpu_has(f))
        return 0;
    char ok[128];
    runnable_list(ok, sizeof ok);
    if (f < 0)
        snprintf(msg, msg_len, "SLM_KERNEL=%s: unknown kernel set (this CPU runs: %s)", env, ok);
    else if (!slm_kernel_built(f))
        snprintf(msg, msg_len, "SLM_KERNEL=%s: not in this build (this CPU runs: %s)", env, ok);
    else
        snprintf(msg, msg_len, "SLM_KERNEL=%s: this CPU lacks what it needs (has: %s; runs: %s)", env,
                 slm_cpu_caps_text(), ok);
    return 2;
}

int slm_kernel_force(int kernel)
{
    int k = runnable_from(valid(kernel) ? kernel : SLM_KERNEL_SCALAR);
    atomic_store(&g_active, k);
    return k;
}

const char *slm_cpu_caps_text(void)
{
    static _Thread_local char buf[96];
    static const struct { unsigned bit; const char *name; } names[] = {
        {SLM_CAP_AVX2, "avx2"}, {SLM_CAP_AVX512, "avx512"}, {SLM_CAP_ASIMD, "asimd"}, {SLM_CAP_DOTPROD, "dotprod"},
        {SLM_CAP_I8MM, "i8mm"}, {SLM_CAP_FP16, "fp16"}, {SLM_CAP_FHM, "fhm"}, {SLM_CAP_SVE, "sve"},
    };
    unsigned c = slm_cpu_caps();
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((c & names[i].bit) && o < sizeof buf) {
            o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", o ? " " : "", names[i].name);
            if (names[i].bit == SLM_CAP_SVE && o < sizeof buf)
                o += (size_t)snprintf(buf + o, sizeof buf - o, "(%d)", slm_sve_bits());
        }
    if (!o)
        snprintf(buf, sizeof buf, "none");
    return buf;
}
