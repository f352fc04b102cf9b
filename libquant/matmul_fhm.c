/* libquant/matmul_fhm.c — the fhm kernel set: single-token products of F16 weights with
 * activations rounded to F16 (the runtime's F16 decode, as llama.cpp does on ARM), by
 * FMLAL / FMLAL2 (FEAT_FHM, HWCAP_ASIMDFHM): eight half x half products widened to F32
 * and accumulated into four F32 lanes per instruction pair, with no rounding of the
 * product (a product of two halves is exact in F32). Built with +fp16fml, selected only
 * when the CPU reports ASIMDFHM (and the parent's dotprod); everything else comes from
 * the parent set. */
#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>

#include "qimpl.h"
#include "rt_simd.h"

void slm_gemv_f16x_fhm(const uint16_t *W, int64_t n_in, int64_t r0, int64_t r1, const uint16_t *xh, float *out)
{
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *w = W + (size_t)r * (size_t)n_in;
        float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
        int64_t i = 0;
        for (; i + 16 <= n_in; i += 16) {
            const float16x8_t w0 = vreinterpretq_f16_u16(vld1q_u16(w + i)), w1 = vreinterpretq_f16_u16(vld1q_u16(w + i + 8));
            const float16x8_t x0 = vreinterpretq_f16_u16(vld1q_u16(xh + i)), x1 = vreinterpretq_f16_u16(vld1q_u16(xh + i + 8));
            a0 = vfmlalq_low_f16(a0, w0, x0);
            a1 = vfmlalq_high_f16(a1, w0, x0);
            a2 = vfmlalq_low_f16(a2, w1, x1);
            a3 = vfmlalq_high_f16(a3, w1, x1);
        }
        float s = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
        for (; i < n_in; i++)
            s += slm_h2f(w[i]) * slm_h2f(xh[i]);
        out[r] = s;
    }
}

/* the set's table (table.c fills the rest from the parent: dotprod, neon) */
void slm_kset_fhm(slm_kset *k) { k->gemv_f16x = slm_gemv_f16x_fhm; }
