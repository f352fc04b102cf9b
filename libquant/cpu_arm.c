/* libquant/cpu_arm.c — aarch64 CPU features from the kernel's HWCAP words
 * (getauxval(AT_HWCAP / AT_HWCAP2)) and the SVE vector length (prctl). Built only
 * for aarch64 targets (Makefile ISA lists). */
#include <sys/auxv.h>
#include <sys/prctl.h>

#include "qimpl.h"

/* asm/hwcap.h values, spelled out so that any libc's headers do */
#define HW_FP (1ul << 0)
#define HW_ASIMD (1ul << 1)
#define HW_FPHP (1ul << 9)
#define HW_ASIMDHP (1ul << 10)
#define HW_ASIMDDP (1ul << 20)
#define HW_SVE (1ul << 22)
#define HW_ASIMDFHM (1ul << 23)
#define HW2_I8MM (1ul << 13)
#ifndef PR_SVE_GET_VL
#define PR_SVE_GET_VL 51
#endif
#ifndef PR_SVE_VL_LEN_MASK
#define PR_SVE_VL_LEN_MASK 0xffff
#endif

unsigned slm_cpu_detect(int *sve_bits)
{
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    unsigned caps = 0;
    *sve_bits = 0;
    if ((hw & HW_FP) && (hw & HW_ASIMD))
        caps |= SLM_CAP_ASIMD;
    if ((caps & SLM_CAP_ASIMD) && (hw & HW_ASIMDDP))
        caps |= SLM_CAP_DOTPROD;
    if ((caps & SLM_CAP_ASIMD) && (hw2 & HW2_I8MM))
        caps |= SLM_CAP_I8MM;
    if ((caps & SLM_CAP_ASIMD) && (hw & HW_FPHP) && (hw & HW_ASIMDHP))
        caps |= SLM_CAP_FP16;
    if ((caps & SLM_CAP_FP16) && (hw & HW_ASIMDFHM))
        caps |= SLM_CAP_FHM;
    if (hw & HW_SVE) {
        int vl = prctl(PR_SVE_GET_VL);
        if (vl > 0) {
            caps |= SLM_CAP_SVE;
            *sve_bits = (vl & PR_SVE_VL_LEN_MASK) * 8;
        }
    }
    return caps;
}
