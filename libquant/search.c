/* libquant/search.c — scale / min search shared by the quantizers.
 *
 * Objective everywhere: the importance-weighted squared round-trip error
 * sum_i w_i (x_i - x^_i)^2. The symmetric search is exact over the continuous
 * scale: as 1/d grows, each q_i = round(x_i/d) changes only at x_i/d = k + 1/2,
 * so sweeping those breakpoints in order visits every rounding pattern once, and
 * for each pattern the least-squares d is sum(w x q)/sum(w q^2).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qimpl.h"
#ifdef __SSE2__
#include <emmintrin.h>
#endif

float slm_half_round(float d)
{
    if (d > 65504.f) d = 65504.f;
    if (d < -65504.f) d = -65504.f;
    return slm_h2f(slm_fp32_to_fp16(d));
}

void slm_block_weights(int n, const float *imp, float *w)
{
    if (!imp) {
        for (int i = 0; i < n; i++) w[i] = 1.f;
        return;
    }
    double s = 0;
    for (int i = 0; i < n; i++) {
        w[i] = imp ? (imp[i] > 0 && isfinite(imp[i]) ? imp[i] : 0.f) : 1.f;
        s += w[i];
    }
    if (!(s > 0))
        for (int i = 0; i < n; i++) w[i] = 1.f;
}

/* Weights of the squared round-trip error for one block (sub-blocks of `sub`).
 * With an importance vector they are imp as given (calib.c already folds x into it,
 * llama.cpp-style). Without one, q2_K and q4_K weigh each element by rms(sub-block) + |x|:
 * measured on stories-llama256 (calibration text, KL-divergence against F32) this lowers
 * KLD (pure q2_K -7 %, pure q4_K -2 %), while for q3_K, q5_K, q6_K and the 32-element types
 * uniform weights were as good or better (x^2 weights, llama.cpp's q3_K/q6_K choice, raised
 * q6_K's KLD by 18 %); see docs/quantization.md. */
void slm_qweights(uint32_t type, int n, int sub, const float *x, const float *imp, float *w)
{
    slm_block_weights(n, imp, w);
    if (imp || (type != SLM_T_Q2_K && type != SLM_T_Q4_K)) return;
    /* each sub-block's sum of squares in element order, up to 16 sub-blocks side by side
     * (independent chains instead of one chain of dependent adds: the same values) */
    float ssv[16];
    const int nsb = n / sub;
    if (nsb <= 16) {
        for (int j = 0; j < nsb; j++) ssv[j] = 0;
        for (int i = 0; i < sub; i++)
            for (int j = 0; j < nsb; j++) ssv[j] += x[j * sub + i] * x[j * sub + i];
    }
    for (int j = 0; j + sub <= n; j += sub) {
        float ss = 0;
        if (nsb <= 16) ss = ssv[j / sub];
        else for (int i = j; i < j + sub; i++) ss += x[i] * x[i];
        const float av = sqrtf(ss / (float)sub);
        for (int i = j; i < j + sub; i++) w[i] = av + fabsf(x[i]);
        if (!(av > 0) || !isfinite(av))
            for (int i = j; i < j + sub; i++) w[i] = 1.f; /* all-zero or overflowing sub-block */
    }
}

/* The weighted error is summed in four lanes (element i into lane i % 4, each lane
 * in element order) and the lanes as (l0 + l2) + (l1 + l3): the AVX2 version
 * (search_avx2.c) computes exactly these operations four elements at a time, so
 * both give the same bits. The tail (n % 4) is always done here, without FMA. */
static inline double sym_term(float x, float w, float d, float id, int qlo, int qhi, int8_t *q_out)
{
    int q = d != 0 ? slm_qclamp(x * id, qlo, qhi) : 0;
    *q_out = (int8_t)q;
    double e = (double)x - (double)(d * (float)q);
    return (double)w * e * e;
}

/* elements [i0, n) into lane[i % 4], levels into L (may be NULL); then the lanes' sum */
static double sym_eval_lanes(int i0, int n, const float *x, const float *w, int qlo, int qhi, float d, float id,
                             double lane[4], int8_t *L)
{
    int8_t q;
    for (int i = i0; i < n; i++) {
        lane[i & 3] += sym_term(x[i], w[i], d, id, qlo, qhi, &q);
        if (L) L[i] = q;
    }
    return (lane[0] + lane[2]) + (lane[1] + lane[3]);
}

double slm_sym_eval_base(int n, const float *x, const float *w, int qlo, int qhi, float d, int8_t *L)
{
    double lane[4] = {0, 0, 0, 0};
    return sym_eval_lanes(0, n, x, w, qlo, qhi, d, d != 0 ? 1.0f / d : 0.0f, lane, L);
}

double slm_sym_eval(int n, const float *x, const float *w, int qlo, int qhi, float d, int8_t *L)
{
    const slm_kset *ks = slm_kset_active();
    if (n < 8 || !ks->sym_eval4)
        return slm_sym_eval_base(n, x, w, qlo, qhi, d, L);
    double lane[4];
    int8_t Lb[QK_K];
    const int n4 = n & ~3;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    ks->sym_eval4(n4, x, w, qlo, qhi, d, id, lane, L ? L : Lb);
    return sym_eval_lanes(n4, n, x, w, qlo, qhi, d, id, lane, L);
}

typedef struct { float t; int16_t i; int8_t dq; } sweep_ev;

static int ev_cmp(const void *a, const void *b)
{
    float x = ((const sweep_ev *)a)->t, y = ((const sweep_ev *)b)->t;
    return x < y ? -1 : x > y;
}

/* Exhaustive sweep over t = 1/|d| for one sign of d. Returns best sum(wxq)^2/sum(wq^2)
 * and the t in the middle of the winning interval. */
static double sweep_sign(int n, const float *x, const float *w, int qlo, int qhi, float sign, sweep_ev *ev,
                         float *best_t)
{
    int ne = 0;
    for (int i = 0; i < n; i++) {
        float xs = sign * x[i];
        if (xs > 0)
            for (int k = 0; k < qhi; k++) ev[ne++] = (sweep_ev){ (k + 0.5f) / xs, (int16_t)i, 1 };
        else if (xs < 0)
            for (int k = 0; k < -qlo; k++) ev[ne++] = (sweep_ev){ (k + 0.5f) / -xs, (int16_t)i, -1 };
    }
    qsort(ev, ne, sizeof *ev, ev_cmp);
    double sxq = 0, sqq = 0, best = -1;
    *best_t = 0;
    int q[QK_K];
    memset(q, 0, sizeof(int) * n);
    for (int e = 0; e < ne;) {
        float t = ev[e].t;
        for (; e < ne && ev[e].t == t; e++) {
            int i = ev[e].i, a = q[i], b = a + ev[e].dq;
            q[i] = b;
            sxq += (double)w[i] * sign * x[i] * (b - a);
            sqq += (double)w[i] * ((double)b * b - (double)a * a);
        }
        if (sqq > 0) {
            double v = sxq * sxq / sqq;
            if (v > best) {
                best = v;
                *best_t = e < ne ? 0.5f * (t + ev[e].t) : t * 1.001f;
            }
        }
    }
    return best;
}

/* Lloyd refinement at fixed levels: d <- LS(d | q), q <- round(x/d) until stable. */
static float sym_refine(int n, const float *x, const float *w, int qlo, int qhi, float d, int8_t *L)
{
    double err = slm_sym_eval(n, x, w, qlo, qhi, d, L);
    for (int it = 0; it < 8; it++) {
        double sxq = 0, sqq = 0;
        for (int i = 0; i < n; i++) { sxq += (double)w[i] * x[i] * L[i]; sqq += (double)w[i] * L[i] * L[i]; }
        if (!(sqq > 0)) break;
        float nd = (float)(sxq / sqq);
        int8_t L2[QK_K];
        double e2 = slm_sym_eval(n, x, w, qlo, qhi, nd, L2);
        if (!(e2 < err)) break;
        err = e2; d = nd;
        memcpy(L, L2, n);
    }
    return d;
}

float slm_sym_search(int n, const float *x, const float *w, int qlo, int qhi, int8_t *L)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
    if (!(amax > 1e-30f)) {
        memset(L, 0, n);
        return 0.f;
    }
    /* work on x / amax so nothing overflows for huge inputs */
    float xn[QK_K];
    for (int i = 0; i < n; i++) xn[i] = x[i] / amax;
    float best_d = 0;
    double best = -1;
    if ((qhi - qlo) <= 64) {
        sweep_ev ev[QK_K * 64];
        for (int s = 0; s < 2; s++) {
            float sign = s ? -1.f : 1.f, t;
            if (qlo == 0 && s) break;
            double v = sweep_sign(n, xn, w, qlo, qhi, sign, ev, &t);
            if (v > best && t > 0) { best = v; best_d = sign / t; }
        }
    } else {
        /* many levels: grid of scales around the end-point choices */
        for (int s = 0; s < 2; s++) {
            float end = s ? (float)qlo : (float)qhi; /* where max maps */
            if (end == 0) continue;
            for (int k = -20; k <= 20; k++) {
                float d = (max / amax) / (end + 0.05f * k * (end > 0 ? 1 : -1));
                double e = slm_sym_eval(n, xn, w, qlo, qhi, d, L);
                double sxq = 0, sqq = 0;
                for (int i = 0; i < n; i++) { sxq += (double)w[i] * xn[i] * L[i]; sqq += (double)w[i] * L[i] * L[i]; }
                (void)e;
                if (sqq > 0 && sxq * sxq / sqq > best) { best = sxq * sxq / sqq; best_d = (float)(sxq / sqq); }
            }
        }
    }
    if (best < 0) {
        memset(L, 0, n);
        return 0.f;
    }
    best_d = sym_refine(n, xn, w, qlo, qhi, best_d, L);
    return best_d * amax;
}

/* Weighted LS for x ~ d*q + m; if mneg and m > 0, m = 0. Returns 0 if degenerate. */
static int asym_ls(int n, const float *x, const float *w, const uint8_t *L, int mneg, float *d, float *m)
{
    double sw = 0, sq = 0, sqq = 0, sx = 0, sxq = 0;
    for (int i = 0; i < n; i++) {
        double wi = w[i], q = L[i];
        sw += wi; sq += wi * q; sqq += wi * q * q; sx += wi * x[i]; sxq += wi * x[i] * q;
    }
    double D = sw * sqq - sq * sq;
    if (D > 1e-30 * sw * sqq) {
        double dd = (sw * sxq - sq * sx) / D, mm = (sqq * sx - sq * sxq) / D;
        if (mneg && mm > 0) { mm = 0; dd = sqq > 0 ? sxq / sqq : 0; }
        if (dd < 0) return 0;
        *d = (float)dd; *m = (float)mm;
        return 1;
    }
    return 0;
}

static double asym_eval(int n, const float *x, const float *w, int nmax, float d, float m, uint8_t *L)
{
    double err = 0;
    float id = d > 0 ? 1.0f / d : 0.0f;
    for (int i = 0; i < n; i++) {
        int q = d > 0 ? slm_qclamp((x[i] - m) * id, 0, nmax) : 0;
        if (L) L[i] = (uint8_t)q;
        double e = (double)x[i] - ((double)(d * (float)q) + m);
        err += w[i] * e * e;
    }
    return err;
}

double slm_asym_search(int n, const float *x, const float *w, int nmax, int mneg, float *dout, float *mout,
                       uint8_t *L)
{
    float xmin = x[0], xmax = x[0];
    for (int i = 1; i < n; i++) { xmin = fminf(xmin, x[i]); xmax = fmaxf(xmax, x[i]); }
    if (mneg && xmin > 0) xmin = 0;
    float span = xmax - xmin;
    if (!(span > 1e-30f * fmaxf(fabsf(xmax), fabsf(xmin))) || !isfinite(span)) {
        /* constant block (or overflow): offset only */
        *dout = 0; *mout = (mneg && xmin > 0) ? 0 : xmin;
        memset(L, 0, n);
        return asym_eval(n, x, w, nmax, 0, *mout, NULL);
    }
    double best = INFINITY;
    float bd = span / nmax, bm = xmin;
    uint8_t Lt[QK_K];
    for (int is = 0; is <= 48; is++) {
        float iscale = (nmax - 1.2f + 0.05f * is) / span;
        if (!(iscale > 0)) continue;
        float d = 1.0f / iscale, m = xmin;
        asym_eval(n, x, w, nmax, d, m, Lt);
        double err = INFINITY;
        for (int it = 0; it < 6; it++) {
            float nd, nm;
            if (!asym_ls(n, x, w, Lt, mneg, &nd, &nm)) break;
            uint8_t L2[QK_K];
            double e2 = asym_eval(n, x, w, nmax, nd, nm, L2);
            if (!(e2 < err)) break;
            err = e2; d = nd; m = nm;
            if (!memcmp(L2, Lt, n)) break;
            memcpy(Lt, L2, n);
        }
        if (err < best) { best = err; bd = d; bm = m; }
    }
    *dout = bd; *mout = bm;
    return asym_eval(n, x, w, nmax, bd, bm, L);
}

/* ======================================================================================
 * Fast searches (used by the k-quants): a grid of candidate scales, each scored by its
 * weighted least-squares fit, then Lloyd refinement of the winner. The inner loops work
 * on 8 lanes with GCC vector extensions (plain SSE2 code on baseline x86-64, no ISA
 * intrinsics); lanes are summed in a fixed order, so results do not depend on threads.
 * ====================================================================================== */
typedef float v8f __attribute__((vector_size(16))); /* 4 lanes: native SSE2 */
typedef int32_t v8i __attribute__((vector_size(16)));
#define RND_MAGIC 12582912.f /* (v + M) - M rounds to nearest even for |v| < 2^22 */
#define VINL static inline __attribute__((always_inline))

VINL float hsum8(v8f v)
{
    return (v[0] + v[2]) + (v[1] + v[3]);
}

VINL v8f vclamp_round(v8f v, float lo, float hi)
{
    const v8f vlo = { lo, lo, lo, lo }, vhi = { hi, hi, hi, hi };
#ifdef __SSE2__
    /* maxps(lo, v) = lo > v ? lo : v, minps(hi, v) = hi < v ? hi : v: the same values as the
     * selects below (NaN and -0 included), two instructions instead of eight */
    v = (v8f)_mm_min_ps((__m128)vhi, _mm_max_ps((__m128)vlo, (__m128)v));
    return (v + RND_MAGIC) - RND_MAGIC;
#endif
    v8i m = v < vlo;
    v = (v8f)(((v8i)vlo & m) | ((v8i)v & ~m));
    m = v > vhi;
    v = (v8f)(((v8i)vhi & m) | ((v8i)v & ~m));
    return (v + RND_MAGIC) - RND_MAGIC;
}

/* L[0..3] = (int8_t)(int)q[i] (or (uint8_t)): the low byte of the truncated value, four at
 * a time (cvttps2dq is what the scalar cast compiles to; masking keeps exactly the low byte) */
VINL void store_levels4(v8f q, void *L)
{
#ifdef __SSE2__
    __m128i v = _mm_and_si128(_mm_cvttps_epi32((__m128)q), _mm_set1_epi32(0xFF));
    v = _mm_packus_epi16(_mm_packs_epi32(v, v), v);
    const int32_t b = _mm_cvtsi128_si32(v);
    memcpy(L, &b, 4);
#else
    uint8_t *o = L;
    for (int i = 0; i < 4; i++) o[i] = (uint8_t)(int)q[i];
#endif
}

/* x, w padded to a multiple of 4 with zeros (w = 0 lanes never count). */
#define PADN(n) (((n) + 3) & ~3)

/* sxq, sqq of q = clamp(round(x * is)) */
VINL void sym_sums(int n8, const v8f *x, const v8f *w, float is, float lo, float hi, float *sxq, float *sqq)
{
    v8f a = { 0 }, b = { 0 };
    for (int k = 0; k < n8; k++) {
        v8f q = vclamp_round(x[k] * is, lo, hi), wq = w[k] * q;
        a += wq * x[k];
        b += wq * q;
    }
    *sxq = hsum8(a);
    *sqq = hsum8(b);
}

/* Sums for a list of candidate scales; the AVX2 version evaluates two at a time with
 * bit-identical results (search_avx2.c). */
#define SEARCH_MAXC 64 /* candidates per side (callers use at most 24) */

void slm_sym_sums_multi_base(int n4, const float *x, const float *w, const float *is, int ncand, float lo, float hi,
                             float *sxq, float *sqq)
{
    for (int c = 0; c < ncand; c++) sym_sums(n4, (const v8f *)x, (const v8f *)w, is[c], lo, hi, &sxq[c], &sqq[c]);
}

static void sym_sums_multi(int n4, const float *x, const float *w, const float *is, int ncand, float lo, float hi,
                           float *sxq, float *sqq)
{
    const slm_kset *ks = slm_kset_active();
    if (ncand > 1 && ks->sym_sums_multi)
        ks->sym_sums_multi(n4, x, w, is, ncand, lo, hi, sxq, sqq);
    else
        slm_sym_sums_multi_base(n4, x, w, is, ncand, lo, hi, sxq, sqq);
}

float slm_sym_search_fast(int n, const float *x, const float *w, int qlo, int qhi, int ncand, int8_t *L)
{
    float amax = 0, max = 0;
#ifdef __SSE2__
    if (n % 4 == 0) {
        /* the largest |x| on 4 lanes, then the first element that has it (as the loop below) */
        const v8i absmask = { 0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff };
        v8f m = { 0, 0, 0, 0 };
        for (int k = 0; k < n; k += 4) {
            v8f v;
            memcpy(&v, x + k, sizeof v);
            m = (v8f)_mm_max_ps((__m128)(v8f)((v8i)v & absmask), (__m128)m);
        }
        float a = m[0] > m[1] ? m[0] : m[1], b = m[2] > m[3] ? m[2] : m[3];
        const float am = a > b ? a : b;
        if (am > 0)
            for (int i = 0; i < n; i++)
                if (fabsf(x[i]) == am) { amax = am; max = x[i]; break; }
    } else
#endif
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
    if (!(amax > 1e-30f) || !isfinite(amax) || n > QK_K) {
        memset(L, 0, n);
        return 0.f;
    }
    v8f xv[QK_K / 4], wv[QK_K / 4];
    const int n8 = PADN(n) / 4;
    float *xs = (float *)xv, *ws = (float *)wv;
    const float inv = 1.0f / amax;
    for (int i = 0; i < n8 * 4; i++) { xs[i] = i < n ? x[i] * inv : 0.f; ws[i] = i < n ? w[i] : 0.f; }
    const float mx = max * inv; /* +-1 */
    float best = -1, best_d = 0;
    /* the element of largest magnitude maps near either end of the level range */
    float isv[2 * SEARCH_MAXC], sxqv[2 * SEARCH_MAXC], sqqv[2 * SEARCH_MAXC];
    int nc = 0;
    if (ncand > SEARCH_MAXC) ncand = SEARCH_MAXC;
    for (int side = 0; side < 2; side++) {
        float end = side ? (float)qlo : (float)qhi;
        if (end == 0 || (side && qlo == -qhi)) continue;
        for (int k = 0; k < ncand; k++) {
            float t = fabsf(end) + 0.9f - (float)k * (0.15f * fabsf(end) + 1.0f) / (float)ncand;
            if (t <= 0.45f) break;
            isv[nc++] = (end > 0 ? t : -t) / mx;
        }
    }
    sym_sums_multi(n8, xs, ws, isv, nc, (float)qlo, (float)qhi, sxqv, sqqv);
    for (int c = 0; c < nc; c++) {
        const float sxq = sxqv[c], sqq = sqqv[c];
        if (sqq > 0 && sxq * sxq > best * sqq) { best = sxq * sxq / sqq; best_d = sxq / sqq; }
    }
    if (!(best > 0)) { memset(L, 0, n); return 0.f; }
    /* Lloyd: re-round at the fitted d, refit, while the fit improves */
    for (int it = 0; it < 3; it++) {
        float sxq, sqq;
        sym_sums(n8, xv, wv, 1.0f / best_d, (float)qlo, (float)qhi, &sxq, &sqq);
        if (!(sqq > 0) || !(sxq * sxq > best * sqq * (1 + 1e-6f))) break;
        best = sxq * sxq / sqq;
        best_d = sxq / sqq;
    }
    const float id = 1.0f / best_d;
    for (int k = 0; k < n8; k++) { /* slm_qclamp(xs * id) four at a time (same values) */
        v8f q = vclamp_round(xv[k] * id, (float)qlo, (float)qhi);
        if (4 * k + 4 <= n) store_levels4(q, L + 4 * k);
        else for (int i = 0; i < 4 && 4 * k + i < n; i++) L[4 * k + i] = (int8_t)(int)q[i];
    }
    return best_d * amax;
}

/* Asymmetric: x ~ d*q + m, q in [0, nmax]. Candidates iscale = (nmax + r)/span with the
 * offset at the minimum, each followed by the 2x2 weighted least-squares fit (m <= 0 when
 * mneg, as k-quant mins are stored negated). Scores are exact errors of the fitted pair. */
VINL void asym_sums(int n8, const v8f *x, const v8f *w, float xmin, float is, float nmax, float *sq,
                             float *sqq, float *sxq)
{
    v8f a = { 0 }, b = { 0 }, c = { 0 };
    for (int k = 0; k < n8; k++) {
        v8f q = vclamp_round((x[k] - xmin) * is, 0.f, nmax), wq = w[k] * q;
        a += wq;
        b += wq * q;
        c += wq * x[k];
    }
    *sq = hsum8(a); *sqq = hsum8(b); *sxq = hsum8(c);
}

void slm_asym_sums_multi_base(int n4, const float *x, const float *w, float xmin, const float *is, int ncand,
                              float nmax, float *sq, float *sqq, float *sxq)
{
    for (int c = 0; c < ncand; c++)
        asym_sums(n4, (const v8f *)x, (const v8f *)w, xmin, is[c], nmax, &sq[c], &sqq[c], &sxq[c]);
}

static void asym_sums_multi(int n4, const float *x, const float *w, float xmin, const float *is, int ncand,
                            float nmax, float *sq, float *sqq, float *sxq)
{
    const slm_kset *ks = slm_kset_active();
    if (ncand > 1 && ks->asym_sums_multi)
        ks->asym_sums_multi(n4, x, w, xmin, is, ncand, nmax, sq, sqq, sxq);
    else
        slm_asym_sums_multi_base(n4, x, w, xmin, is, ncand, nmax, sq, sqq, sxq);
}

/* The weighted least-squares (d, m) for fixed levels (m = 0 when mneg and it would be
 * positive), and its error. At the least-squares point the normal equations give
 * sum w (x - d q - m)^2 = sxx - d sxq - m sx (with m = 0: sxx - d sxq). */
static inline int asym_fit(double sw, double sx, double sxx, double sq, double sqq, double sxq, int mneg, float *d,
                           float *m, double *err)
{
    double D = sw * sqq - sq * sq, dd, mm;
    if (!(D > 1e-20 * sw * sqq)) return 0;
    const double iD = 1.0 / D;
    mm = (sqq * sx - sq * sxq) * iD;
    if (mneg && mm > 0) { mm = 0; dd = sxq / sqq; }
    else dd = (sw * sxq - sq * sx) * iD;
    if (!(dd > 0)) return 0;
    *err = sxx - dd * sxq - mm * sx;
    *d = (float)dd; *m = (float)mm;
    return 1;
}

double slm_asym_search_fast(int n, const float *x, const float *w, int nmax, int mneg, int ncand, float *dout,
                            float *mout, uint8_t *L)
{
    float xmin = x[0], xmax = x[0];
    if (n % 4 == 0 && n <= QK_K) { /* min and max on 4 lanes (exact, any order) */
        v8f lo, hi;
        memcpy(&lo, x, sizeof lo);
        hi = lo;
        for (int k = 4; k < n; k += 4) {
            v8f v;
            memcpy(&v, x + k, sizeof v);
#ifdef __SSE2__
            lo = (v8f)_mm_min_ps((__m128)v, (__m128)lo);
            hi = (v8f)_mm_max_ps((__m128)v, (__m128)hi);
#else
            lo = (v8f)(((v8i)v & (v < lo)) | ((v8i)lo & ~(v < lo)));
            hi = (v8f)(((v8i)v & (v > hi)) | ((v8i)hi & ~(v > hi)));
#endif
        }
        for (int i = 0; i < 4; i++) { xmin = lo[i] < xmin ? lo[i] : xmin; xmax = hi[i] > xmax ? hi[i] : xmax; }
    } else {
        for (int i = 1; i < n; i++) { xmin = x[i] < xmin ? x[i] : xmin; xmax = x[i] > xmax ? x[i] : xmax; }
    }
    if (mneg && xmin > 0) xmin = 0;
    float span = xmax - xmin;
    if (!(span > 1e-30f * fmaxf(fabsf(xmax), fabsf(xmin))) || !isfinite(span) || n > QK_K)
        return slm_asym_search(n, x, w, nmax, mneg, dout, mout, L); /* degenerate: the careful path */
    v8f xv[QK_K / 4], wv[QK_K / 4];
    const int n8 = PADN(n) / 4;
    float *xs = (float *)xv, *ws = (float *)wv;
    const float inv = 1.0f / span;
    if (n % 4 == 0) { /* the same products four at a time */
        for (int k = 0; k < n8; k++) {
            v8f v;
            memcpy(&v, x + 4 * k, sizeof v);
            xv[k] = v * inv;
            memcpy(&wv[k], w + 4 * k, sizeof v);
        }
    } else {
        for (int i = 0; i < n; i++) { xs[i] = x[i] * inv; ws[i] = w[i]; }
        for (int i = n; i < n8 * 4; i++) { xs[i] = 0.f; ws[i] = 0.f; }
    }
    /* sums of w, w x, w x^2 on the 4 lanes (x is scaled to span 1: float is ample) */
    double sw, sx, sxx;
    {
        v8f a = { 0 }, b = { 0 }, c = { 0 };
        for (int k = 0; k < n8; k++) {
            v8f wx = wv[k] * xv[k];
            a += wv[k]; b += wx; c += wx * xv[k];
        }
        sw = hsum8(a); sx = hsum8(b); sxx = hsum8(c);
    }
    const float mn = xmin * inv;
    double best = INFINITY;
    float bd = 1.0f / nmax, bm = mn;
    float isv[SEARCH_MAXC], sqv[SEARCH_MAXC], sqqv[SEARCH_MAXC], sxqv[SEARCH_MAXC];
    if (ncand > SEARCH_MAXC) ncand = SEARCH_MAXC;
    for (int k = 0; k < ncand; k++) isv[k] = (float)nmax - 1.0f + 1.4f * (float)k / (float)(ncand > 1 ? ncand - 1 : 1);
    asym_sums_multi(n8, xs, ws, mn, isv, ncand, (float)nmax, sqv, sqqv, sxqv);
    {
        /* asym_fit of every candidate, two at a time and without branches (the same values
         * as asym_fit), then the first candidate of least error */
        typedef double v2d __attribute__((vector_size(16)));
        typedef int64_t v2l __attribute__((vector_size(16)));
        double ev[SEARCH_MAXC + 1], dv[SEARCH_MAXC + 1], mv[SEARCH_MAXC + 1];
        const v2d vsw = { sw, sw }, vsx = { sx, sx }, vsxx = { sxx, sxx }, one = { 1.0, 1.0 }, zero = { 0, 0 },
                  tiny = { 1e-20 * sw, 1e-20 * sw }, inf = { INFINITY, INFINITY };
        const v2l vmneg = { mneg ? -1 : 0, mneg ? -1 : 0 };
        for (int k = 0; k < ncand; k += 2) {
            const int k2 = k + 1 < ncand ? k + 1 : k;
            const v2d sq = { sqv[k], sqv[k2] }, sqq = { sqqv[k], sqqv[k2] }, sxq = { sxqv[k], sxqv[k2] };
            const v2d D = vsw * sqq - sq * sq;
            const v2l okD = D > tiny * sqq;
            const v2d iD = one / (v2d)(((v2l)D & okD) | ((v2l)one & ~okD));
            v2d mm = (sqq * vsx - sq * sxq) * iD, dd = (vsw * sxq - sq * vsx) * iD;
            const v2l clip = vmneg & (mm > zero);
            if (clip[0] | clip[1]) { /* m clipped to 0: d = sxq / sqq (rare: a division saved) */
                const v2d dc = sxq / (v2d)(((v2l)sqq & (sqq > zero)) | ((v2l)one & ~(sqq > zero)));
                mm = (v2d)((v2l)mm & ~clip);
                dd = (v2d)(((v2l)dc & clip) | ((v2l)dd & ~clip));
            }
            const v2l ok = okD & (dd > zero);
            const v2d e = (v2d)(((v2l)(vsxx - dd * sxq - mm * vsx) & ok) | ((v2l)inf & ~ok));
            ev[k] = e[0]; dv[k] = dd[0]; mv[k] = mm[0];
            ev[k + 1] = e[1]; dv[k + 1] = dd[1]; mv[k + 1] = mm[1];
        }
        int kb = -1;
        for (int k = 0; k < ncand; k++)
            if (ev[k] < best) { best = ev[k]; kb = k; }
        if (kb >= 0) { bd = (float)dv[kb]; bm = (float)mv[kb]; }
    }
    /* Lloyd: re-round at the fitted (d, m), refit */
    for (int it = 0; it < 3 && isfinite(best); it++) {
        float sq = 0, sqq = 0, sxq = 0, d, m;
        double e;
        asym_sums(n8, xv, wv, bm, 1.0f / bd, (float)nmax, &sq, &sqq, &sxq);
        if (!asym_fit(sw, sx, sxx, sq, sqq, sxq, mneg, &d, &m, &e) || !(e < best * (1 - 1e-6))) break;
        best = e; bd = d; bm = m;
    }
    *dout = bd * span;
    *mout = bm * span;
    /* the levels of the winner, rounded as its fit was scored */
    const float id = 1.0f / bd;
    for (int k = 0; k < n8; k++) {
        v8f q = vclamp_round((xv[k] - bm) * id, 0.f, (float)nmax);
        if (4 * k + 4 <= n) store_levels4(q, L + 4 * k);
        else for (int i = 0; i < 4 && 4 * k + i < n; i++) L[4 * k + i] = (uint8_t)(int)q[i];
    }
    return isfinite(best) ? best * (double)span * span : asym_eval(n, x, w, nmax, *dout, *mout, NULL);
}

/* Errors of one sub-block at a fixed scale (len a multiple of 4), for the refinement
 * rounds; levels are round(x * (1/d)) exactly as the scalar packers compute them. */
float slm_sym_err_fast(int len, const float *x, const float *w, float d1, int qlo, int qhi, int8_t *L)
{
    v8f acc = { 0 };
    const float id = d1 != 0 ? 1.0f / d1 : 0.0f;
    for (int k = 0; k < len; k += 4) {
        v8f xv, wv;
        memcpy(&xv, x + k, sizeof xv);
        memcpy(&wv, w + k, sizeof wv);
        v8f q = vclamp_round(xv * id, (float)qlo, (float)qhi), e = xv - d1 * q;
        acc += wv * e * e;
        if (L) store_levels4(q, L + k);
    }
    return hsum8(acc);
}

float slm_asym_err_fast(int len, const float *x, const float *w, float d1, float m1, int nmax, uint8_t *L)
{
    v8f acc = { 0 };
    const float id = d1 > 0 ? 1.0f / d1 : 0.0f;
    for (int k = 0; k < len; k += 4) {
        v8f xv, wv;
        memcpy(&xv, x + k, sizeof xv);
        memcpy(&wv, w + k, sizeof wv);
        v8f q = vclamp_round((xv + m1) * id, 0.f, (float)nmax), e = xv - (d1 * q - m1);
        acc += wv * e * e;
        if (L) store_levels4(q, L + k);
    }
    return hsum8(acc);
}
