/* base/half.c — scalar float <-> half / bfloat16 conversions (the one copy).
 *
 * Half: round to nearest even, overflow to Inf, subnormals exact, NaN kept
 * (quiet bit set, top payload bits kept) — the bits F16C's vcvtps2ph gives with
 * rounding mode 0, so libquant's scalar and SIMD rows agree bit for bit.
 * BF16: ggml's rule — NaN -> quiet NaN (upper 16 bits | 0x40), otherwise
 * round to nearest even on the upper 16 bits (no flushing of subnormals).
 */
#include "base.h"

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

uint16_t slm_fp32_to_fp16(float f)
{
    uint32_t x = f2u(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN: quiet it, keep the top 9 payload bits */
        return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));
    if (ax >= 0x477ff000u) /* >= 65520 (and Inf) round to Inf */
        return (uint16_t)(sign | 0x7c00);
    if (ax >= 0x38800000u) { /* normal half: >= 2^-14 */
        uint32_t r = ax + 0xfffu + ((ax >> 13) & 1); /* round to nearest even at bit 13 */
        return (uint16_t)(sign | ((r - 0x38000000u) >> 13)); /* rebias 127 -> 15 */
    }
    if (ax <= 0x33000000u) /* <= 2^-25: rounds to zero (2^-25 is a tie to even 0) */
        return (uint16_t)sign;
    /* subnormal half: count units of 2^-24 */
    uint32_t e = ax >> 23;            /* 102..112 */
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e;         /* 14..24 */
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1)))
        q++;
    return (uint16_t)(sign | q);
}

float slm_fp16_to_fp32(uint16_t h) { return slm_h2f(h); }

uint16_t slm_fp32_to_bf16(float f)
{
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

float slm_bf16_to_fp32(uint16_t h) { return u2f((uint32_t)h << 16); }
