/* libquant/calib_gptq.c — GPTQ (Frantar et al., 2022, arXiv 2210.17323) writing
 * standard ggml blocks.
 *
 * Given W (rows x n) and H = X^T X of the activations it multiplies, columns are
 * quantized one at a time and each column's rounding error, scaled by the
 * Cholesky factor of H^-1, is pushed onto the columns not yet quantized:
 *   err = (w_i - q_i) / U_ii;  w_j -= err * U_ij  (j > i)
 * where H^-1 = U^T U (U upper triangular). Updates inside a sub-block of 32
 * columns are applied immediately, the rest of the lazy block gets one sgemm per
 * sub-block, the rest of the matrix one sgemm per lazy block
 * (W[:, i2:] -= E U[i1:i2, i2:]). U is made once per H (slm_gptq_factor) and
 * shared by the matrices that multiply the same activations.
 *
 * ggml blocks: when the first column of a quantization block (32 columns for
 * legacy types, a 256-column super-block for k-quants) is reached, its scales
 * (super-block d/dmin and the sub-block scales/mins) are chosen by the type's
 * own quantizer from the values as they are then, i.e. already compensated for
 * every earlier column; the block's columns are then rounded one by one onto
 * that fixed grid as compensation goes on, and the integer levels are packed
 * into the block under those scales. The output is plain ggml data.
 *
 * act-order: blocks are taken in decreasing order of their summed diag(H), and
 * the columns of a block in decreasing diag(H) (the block structure of the
 * format forbids a free column order).
 *
 * Rows are independent given U, so they are processed in fixed tiles of 64
 * rows spread over threads: the bytes do not depend on the thread count.
 */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "qimpl.h"
#include "iq1.h"
#include "iquants.h"

#define TILE 64
#define SUB 32 /* columns updated one by one before an sgemm carries their errors on */


typedef struct {
    uint32_t type;
    const slm_qtraits *qt;
    int64_t nrows, n;
    int blck;                /* quantization block (columns) */
    int lazy;                /* lazy block (multiple of blck) */
    const float *U;          /* n x n, permuted order, upper */
    const int *perm;         /* permuted position -> original column */
    const int *pos_in_blk;   /* permuted position -> index inside its original block */
    const float *imp;        /* per original column, for the scale search (>= 0) */
    float *W;                /* nrows x n, original order (read), unchanged */
    unsigned char *dst;      /* nrows x row bytes */
    size_t rb;
    int64_t next_tile, n_tiles;
    pthread_mutex_t mu;
    int fail;
} gptq_job;

static void tile_run(gptq_job *j, int64_t r0, int64_t R, float *Wt, float *E, float *ga, float *gb, uint8_t *Lv,
                     float *seg, float *wseg, unsigned char *blkbuf)
{
    const int64_t n = j->n;
    const int blck = j->blck, lazy = j->lazy;
    const float *U = j->U;
    /* copy the tile in permuted column order */
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < n; c++) Wt[r * n + c] = j->W[(r0 + r) * n + j->perm[c]];
    const size_t bb = j->qt->bytes;
    int nlev = 0;
    const int8_t *lev = slm_qgrid_levels(j->type, &nlev);
    float wseg2[QK_K];
    /* 4-d grids (IQ3) and IQ2's 8-d codebooks: an octet is rounded as one when its first
     * column comes up (IQ2: each element weighted by 1 / [H^-1]_cc, as IQ1's groups) */
    const int iq2 = slm_iq2_is(j->type);
    const int vec = slm_iq3_is_vector(j->type) || iq2;
    int inv[QK_K];
    uint8_t dec[TILE][QK_K / 8];
    for (int64_t i1 = 0; i1 < n; i1 += lazy) {
        const int64_t i2 = i1 + lazy < n ? i1 + lazy : n, B = i2 - i1;
        for (int64_t qb = i1; qb < i2; qb += blck) {
            const int64_t ob = j->perm[qb] / blck; /* original block index */
            int zero = 0, qmax = 0;
            for (int64_t r = 0; r < R; r++) {
                /* scales from the current (compensated) values, in original order */
                for (int t = 0; t < blck; t++) {
                    seg[j->pos_in_blk[qb + t]] = Wt[r * n + qb + t];
                    wseg[j->pos_in_blk[qb + t]] = j->imp ? j->imp[j->perm[qb + t]] : 1.0f;
                }
                unsigned char *blk = j->dst + (size_t)(r0 + r) * j->rb + (size_t)ob * bb;
                /* the imatrix form (imp * (rms + |x|) for k-quants, slm_calib_row_weights):
                 * on the calibration text it lowered Q2_K's KLD from 0.0450 to 0.0403 */
                memcpy(wseg2, wseg, sizeof(float) * blck);
                slm_calib_row_weights(j->type, seg, blck, wseg2, wseg);
                j->qt->quantize_row(seg, blk, blck, wseg);
                float a[QK_K], b[QK_K];
                slm_qgrid_decode(j->type, blk, a, b, &zero, &qmax);
                for (int t = 0; t < blck; t++) {
                    ga[r * blck + t] = a[j->pos_in_blk[qb + t]];
                    gb[r * blck + t] = b[j->pos_in_blk[qb + t]];
                }
            }
            if (vec) {
                for (int k = 0; k < blck; k++) inv[j->pos_in_blk[qb + k]] = (int)(qb + k);
                memset(dec, 0, sizeof dec);
            }
            /* IQ1: a level is chosen among those that keep its group of 8 on the grid (iq1.c) */
            const int grouped = slm_iq1_is(j->type);
            if (grouped) {
                memset(Lv, 0xff, (size_t)R * blck);
                for (int t = 0; t < blck; t++) inv[j->pos_in_blk[qb + t]] = (int)(qb + t);
            }
            for (int64_t i = qb; i < qb + blck; i++) {
                const int t = (int)(i - qb);
                const float dinv = 1.0f / U[i * n + i];
                const float *urow = U + i * n;
                /* updates inside a sub-block of SUB columns one by one; the rest of the lazy
                 * block gets one sgemm per sub-block (below) */
                const int64_t s1 = i1 + (i - i1) / SUB * SUB, s2 = s1 + SUB < i2 ? s1 + SUB : i2;
                for (int64_t r = 0; r < R; r++) {
                    float *wr = Wt + r * n;
                    const float w = wr[i], a = ga[r * blck + t], b = gb[r * blck + t];
                    int q;
                    float v;
                    if (vec) {
                        const int t0 = j->pos_in_blk[i], o = t0 / 8;
                        if (!dec[r][o]) {
                            float w8[8];
                            for (int k = 0; k < 8; k++) w8[k] = wr[inv[8 * o + k]];
                            if (iq2) {
                                float gw[8];
                                for (int k = 0; k < 8; k++) {
                                    const int64_t col = inv[8 * o + k];
                                    const float ue = U[col * n + col];
                                    gw[k] = 1.0f / (ue * ue);
                                }
                                slm_iq2_round_group(j->type, a, w8, gw, Lv + r * blck + 8 * o);
                            } else {
                                slm_iq3_round_octet(j->type, a, w8, Lv + r * blck + 8 * o);
                            }
                            dec[r][o] = 1;
                        }
                        q = Lv[r * blck + t0];
                        v = !isfinite(a) ? 0.0f : iq2 ? a * slm_iq2_level_value(q) : a * slm_iq3_level_value(j->type, q);
                    } else if (a != 0.0f && isfinite(a) && lev) { /* non-linear levels (IQ4) */
                        q = slm_qgrid_nearest(lev, nlev, (w - b) / a);
                        v = a * (float)lev[q] + b;
                    } else if (grouped && a != 0.0f && isfinite(a)) {
                        /* the group's grid point when its first column comes: nearest to the
                         * group's current (compensated) values, each weighted by 1 / [H^-1]_cc */
                        uint8_t *Lr = Lv + r * blck;
                        const int p = j->pos_in_blk[i], g0 = p / 8 * 8;
                        if (Lr[p] > 2) {
                            float gv[8], gw[8];
                            for (int e = 0; e < 8; e++) {
                                const int col = inv[g0 + e];
                                const float ue = U[(int64_t)col * n + col];
                                gv[e] = (wr[col] - b) / a;
                                gw[e] = 1.0f / (ue * ue);
                            }
                            slm_iq1_gptq_group(gv, gw, Lr + g0);
                        }
                        q = Lr[p];
                        v = a * (float)(q - zero) + b;
                    } else if (a != 0.0f && isfinite(a)) {
                        q = slm_qclamp((w - b) / a + (float)zero, 0, qmax);
                        v = a * (float)(q - zero) + b;
                    } else {
                        q = grouped ? slm_iq1_gptq_pick(Lv + r * blck, j->pos_in_blk[i], (float)zero) : zero;
                        v = b;
                    }
                    Lv[r * blck + j->pos_in_blk[i]] = (uint8_t)q;
                    const float err = (w - v) * dinv;
                    E[r * lazy + (i - i1)] = err;
                    for (int64_t c = i + 1; c < s2; c++) wr[c] -= err * urow[c];
                }
                if (i + 1 == s2 && s2 < i2)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, (int)(i2 - s2), (int)(s2 - s1), -1.0f,
                                E + (s1 - i1), lazy, U + s1 * n + s2, (int)n, 1.0f, Wt + s2, (int)n);
            }
            for (int64_t r = 0; r < R; r++) {
                unsigned char *blk = j->dst + (size_t)(r0 + r) * j->rb + (size_t)ob * bb;
                memcpy(blkbuf, blk, bb);
                slm_qgrid_pack(j->type, blkbuf, Lv + r * blck);
                memcpy(blk, blkbuf, bb);
            }
        }
        if (i2 < n)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, (int)(n - i2), (int)B, -1.0f, E, lazy,
                        U + i1 * n + i2, (int)n, 1.0f, Wt + i2, (int)n);
    }
}

static void *gptq_worker(void *arg)
{
    gptq_job *j = arg;
    const int64_t n = j->n;
    const int blck = j->blck;
    float *Wt = malloc(sizeof(float) * TILE * (size_t)n);
    float *E = malloc(sizeof(float) * TILE * (size_t)j->lazy);
    float *ga = malloc(sizeof(float) * TILE * blck), *gb = malloc(sizeof(float) * TILE * blck);
    uint8_t *Lv = malloc((size_t)TILE * blck);
    float *seg = malloc(sizeof(float) * blck), *wseg = malloc(sizeof(float) * blck);
    unsigned char *blkbuf = malloc(j->qt->bytes);
    if (!Wt || !E || !ga || !gb || !Lv || !seg || !wseg || !blkbuf) {
        pthread_mutex_lock(&j->mu);
        j->fail = 1;
        pthread_mutex_unlock(&j->mu);
    } else {
        for (;;) {
            pthread_mutex_lock(&j->mu);
            int64_t t = j->fail ? j->n_tiles : j->next_tile++;
            pthread_mutex_unlock(&j->mu);
            if (t >= j->n_tiles) break;
            const int64_t r0 = t * TILE, R = j->nrows - r0 < TILE ? j->nrows - r0 : TILE;
            tile_run(j, r0, R, Wt, E, ga, gb, Lv, seg, wseg, blkbuf);
        }
    }
    free(Wt); free(E); free(ga); free(gb); free(Lv); free(seg); free(wseg); free(blkbuf);
    return NULL;
}

/* Sort helper for act-order (descending key, ties by index: deterministic). */
typedef struct { double key; int idx; } keyed;
static int cmp_desc(const void *pa, const void *pb)
{
    const keyed *a = pa, *b = pb;
    if (a->key != b->key) return a->key > b->key ? -1 : 1;
    return a->idx - b->idx;
}

/* H^-1 = U^T U with U upper triangular, in float (as the GPTQ reference implementation;
 * double took twice as long: 2.5 s against 1.3 s at n = 5632, one thread). With J the
 * reversal of the column order, J H J = M M^T (M lower) gives H = (J M J)(J M J)^T where
 * J M J is upper triangular, so U = (J M J)^-1 = J M^-1 J. A holds J H J (symmetric: row-
 * and column-major agree), column-major as LAPACK and BLAS see it.
 *
 * Both steps are blocked here, each parallel step cut into FPIECES fixed pieces that the
 * threads take in turn (pieces t, t + nt, ...), every piece one single-threaded BLAS call
 * on fixed operands: the bytes are the same for any thread count (OpenBLAS's own threads
 * inside spotrf/strtri gave other bytes with 2 or 4 threads than with 1), and the second
 * core no longer idles through the ~1.6 s a 5632 x 5632 factor took on one.
 *   M: right-looking Cholesky in panels of FNB columns: the panel's diagonal block
 *      (spotrf, serial, small), the rows below it (strsm, pieces of rows), the trailing
 *      lower triangle (ssyrk + sgemm, pieces of columns of equal area).
 *   M^-1: column pieces [j0, j1) solved independently, M[j0:, j0:] X = I[j0:, j0:j1]
 *      (strsm; pieces of equal work, (n - j0)^2 per column).
 * On return U[i][k] = M^-1[n-1-i][n-1-k] for k >= i. */
#define FNB 256
#define FPIECES 8

typedef struct {
    float *A, *B;            /* J H J -> M (in place); B: M^-1, column-major */
    int64_t n, k0, kb;       /* the current panel: columns [k0, k0 + kb) */
    int step;                /* 0: rows below the panel, 1: trailing update, 2: columns of M^-1 */
    int64_t edge[FPIECES + 1];
    int t, nt;
} fact_job;

static void *fact_run(void *arg)
{
    const fact_job *j = arg;
    const int64_t n = j->n, k0 = j->k0, kb = j->kb;
    float *A = j->A;
    for (int p = j->t; p < FPIECES; p += j->nt) {
        const int64_t a = j->edge[p], b = j->edge[p + 1];
        if (b <= a) continue;
        if (j->step == 0) { /* A[a:b, panel] = A[a:b, panel] L_kk^-T */
            cblas_strsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)(b - a), (int)kb, 1.0f,
                        A + k0 * n + k0, (int)n, A + k0 * n + a, (int)n);
        } else if (j->step == 1) { /* columns [a, b) of the trailing triangle -= panel panel^T */
            cblas_ssyrk(CblasColMajor, CblasLower, CblasNoTrans, (int)(b - a), (int)kb, -1.0f, A + k0 * n + a, (int)n,
                        1.0f, A + a * n + a, (int)n);
            if (b < n)
                cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)(n - b), (int)(b - a), (int)kb, -1.0f,
                            A + k0 * n + b, (int)n, A + k0 * n + a, (int)n, 1.0f, A + a * n + b, (int)n);
        } else { /* columns [a, b) of M^-1: rows >= a, from the identity */
            float *X = j->B + a * n;
            for (int64_t c = a; c < b; c++) {
                memset(X + (c - a) * n + a, 0, sizeof(float) * (size_t)(n - a));
                X[(c - a) * n + c] = 1.0f;
            }
            cblas_strsm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, (int)(n - a), (int)(b - a),
                        1.0f, A + a * n + a, (int)n, X + a, (int)n);
        }
    }
    return NULL;
}

/* fn on each of the n jobs (n <= RUN_MAX, `size` bytes apart): jobs 1..n-1 on threads of their own
 * (run here if a thread cannot start), job 0 on the caller's; every job runs exactly once */
#define RUN_MAX 8
_Static_assert(FPIECES <= RUN_MAX, "fact_step's pieces fit run_jobs");
static void run_jobs(void *(*fn)(void *), void *jobs, size_t size, int n)
{
    pthread_t tid[RUN_MAX];
    int started[RUN_MAX] = { 0 };
    char *j = jobs;
    for (int t = 1; t < n; t++) started[t] = !pthread_create(&tid[t], NULL, fn, j + (size_t)t * size);
    for (int t = 1; t < n; t++)
        if (!started[t]) fn(j + (size_t)t * size);
    fn(j);
    for (int t = 1; t < n; t++)
        if (started[t]) pthread_join(tid[t], NULL);
}

/* the pieces of one step on nt threads (the caller's thread takes piece 0, nt, ...) */
static void fact_step(fact_job *jb, int nt)
{
    fact_job js[FPIECES];
    for (int t = 0; t < nt; t++) {
        js[t] = *jb;
        js[t].t = t;
        js[t].nt = nt;
    }
    run_jobs(fact_run, js, sizeof *js, nt);
}

/* *A: J H J, column-major; *U: scratch of n x n. On success the result is in *U (the two
 * buffers swapped); -1 if not positive definite. */
static int chol_inverse_upper(float **Ap, int64_t n, float **Up, int n_threads)
{
    float *A = *Ap, *B = *Up;
    const int nt = n_threads < 1 ? 1 : n_threads > FPIECES ? FPIECES : n_threads;
    fact_job jb = { .A = A, .B = B, .n = n };
    for (int64_t k0 = 0; k0 < n; k0 += FNB) {
        const int64_t kb = n - k0 < FNB ? n - k0 : FNB, s = k0 + kb, m = n - s;
        if (LAPACKE_spotrf(LAPACK_COL_MAJOR, 'L', (lapack_int)kb, A + k0 * n + k0, (lapack_int)n)) return -1;
        if (!m) break;
        jb.k0 = k0;
        jb.kb = kb;
        jb.step = 0; /* rows s..n-1 in equal parts */
        for (int p = 0; p <= FPIECES; p++) jb.edge[p] = s + m * p / FPIECES;
        fact_step(&jb, nt);
        jb.step = 1; /* columns of equal area of the trailing lower triangle */
        jb.edge[0] = s;
        for (int p = 1; p < FPIECES; p++) {
            const int64_t e = n - (int64_t)((double)m * sqrt(1.0 - (double)p / FPIECES));
            jb.edge[p] = e < jb.edge[p - 1] ? jb.edge[p - 1] : e > n ? n : e;
        }
        jb.edge[FPIECES] = n;
        fact_step(&jb, nt);
    }
    for (int64_t c = 0; c < n; c++) /* a pivot that came out NaN or infinite */
        if (!isfinite(A[c * n + c]) || !(A[c * n + c] > 0)) return -1;
    jb.step = 2; /* columns of M^-1, equal work ((n - j)^2 per column) */
    jb.edge[0] = 0;
    for (int p = 1; p < FPIECES; p++) {
        const int64_t e = n - (int64_t)((double)n * cbrt(1.0 - (double)p / FPIECES));
        jb.edge[p] = e < jb.edge[p - 1] ? jb.edge[p - 1] : e > n ? n : e;
    }
    jb.edge[FPIECES] = n;
    fact_step(&jb, nt);
    /* column-major M^-1(p, q) sits at B[q * n + p]; copied into A in 64 x 64 tiles (a
     * column walk per row of U missed the cache on every element) */
    enum { T = 64 };
    for (int64_t i0 = 0; i0 < n; i0 += T)
        for (int64_t k0 = 0; k0 < n; k0 += T)
            for (int64_t i = i0; i < i0 + T && i < n; i++)
                for (int64_t k = k0; k < k0 + T && k < n; k++)
                    A[i * n + k] = k >= i ? B[(n - 1 - k) * n + (n - 1 - i)] : 0.0f;
    *Ap = B;
    *Up = A;
    return 0;
}

struct slm_gptq_factor {
    int64_t n;
    int blck;                /* quantization block the column order was made for */
    int act_order, block;
    int iq1_damp;            /* made with IQ1's default damping (damp not given) */
    float *U;                /* n x n, permuted order, upper */
    int *perm;               /* permuted position -> original column */
    float *diag;             /* diag(H) per original column (>= 0): the default importance */
};

void slm_gptq_factor_free(slm_gptq_factor *f)
{
    if (!f) return;
    free(f->U); free(f->perm); free(f->diag);
    free(f);
}

int slm_gptq_factor_fits(const slm_gptq_factor *f, uint32_t type, int64_t ncols)
{
    const slm_qtraits *qt = slm_qtraits_get(type);
    return f && qt && ncols == f->n && qt->blck > 0 && ncols % qt->blck == 0 &&
           (!f->act_order || qt->blck == f->blck) && (f->iq1_damp < 0 || f->iq1_damp == slm_iq1_is(type));
}

/* OpenBLAS single-threaded: H's bands and GPTQ's row tiles are spread over our own
 * threads, and its own threads would only spin beside them (they did
 * until the runtime's first product, which sets the same: the H of q/k/v cost 5x its
 * CPU time), and a multi-threaded factorisation gives other bytes than a single-threaded one */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_init(void) { openblas_set_num_threads(1); }


int slm_gptq_factor_new(uint32_t type, const float *H, int64_t ncols, const slm_gptq_params *p, int n_threads,
                        slm_gptq_factor **out)
{
    *out = NULL;
    pthread_once(&blas_once, blas_init);
    const slm_qtraits *qt = slm_qtraits_get(type);
    if (!qt || !qt->quantize_row || !slm_qgrid_supported(type) || ncols < 1 || ncols % qt->blck)
        return SLM_GPTQ_EUNSUPPORTED;
    const int64_t n = ncols;
    const int blck = qt->blck;
    /* damp not given (0): 0.01, and 0.1 for IQ1_S / IQ1_M (chosen on the calibration text:
     * GPTQ on its first half, KLD of stories-llama256 on the rest, IQ1_S at 0.01 / 0.1 / 0.3:
     * 0.2306 / 0.1761 / 0.1942); such a factor serves only types of the same default */
    const int auto_damp = !(p && p->damp > 0);
    const double damp = !auto_damp ? p->damp : slm_iq1_is(type) ? 0.1 : 0.01;
    int rc = SLM_GPTQ_ENOMEM;
    slm_gptq_factor *f = calloc(1, sizeof *f);
    float *A = malloc(sizeof(float) * (size_t)n * (size_t)n);
    keyed *kb = malloc(sizeof(keyed) * (size_t)n);
    if (!f || !A || !kb) goto out;
    f->n = n;
    f->blck = blck;
    f->act_order = p && p->act_order;
    f->iq1_damp = auto_damp ? slm_iq1_is(type) : -1;
    f->block = p && p->block > 0 ? p->block : 128;
    f->U = malloc(sizeof(float) * (size_t)n * (size_t)n);
    f->perm = malloc(sizeof(int) * (size_t)n);
    f->diag = malloc(sizeof(float) * (size_t)n);
    if (!f->U || !f->perm || !f->diag) goto out;
    int *perm = f->perm;

    /* column order */
    const int64_t nb = n / blck;
    for (int64_t c = 0; c < n; c++) perm[c] = (int)c;
    if (f->act_order) {
        for (int64_t b = 0; b < nb; b++) {
            double sum = 0;
            for (int t = 0; t < blck; t++) sum += H[(b * blck + t) * n + b * blck + t];
            kb[b] = (keyed){ sum, (int)b };
        }
        qsort(kb, (size_t)nb, sizeof *kb, cmp_desc);
        for (int64_t k = 0; k < nb; k++) {
            const int64_t b = kb[k].idx;
            keyed in[QK_K];
            for (int t = 0; t < blck; t++) in[t] = (keyed){ H[(b * blck + t) * n + b * blck + t], (int)(b * blck + t) };
            qsort(in, (size_t)blck, sizeof *in, cmp_desc);
            for (int t = 0; t < blck; t++) perm[k * blck + t] = in[t].idx;
        }
    }
    /* damped, permuted H (in reversed order, see chol_inverse_upper); dead columns
     * (never active) get a unit diagonal */
    double mean_diag = 0;
    for (int64_t c = 0; c < n; c++) mean_diag += H[c * n + c];
    mean_diag /= (double)n;
    if (!(mean_diag > 0) || !isfinite(mean_diag)) mean_diag = 1;
    for (int64_t c = 0; c < n; c++) {
        const double d = H[c * n + c];
        f->diag[c] = d > 0 && isfinite(d) ? (float)d : 0.0f;
    }
    double lambda = damp * mean_diag;
    for (int attempt = 0;; attempt++) {
        for (int64_t i = 0; i < n; i++) {
            const float *hrow = H + (int64_t)perm[n - 1 - i] * n;
            float *arow = A + i * n;
            for (int64_t k = 0; k < n; k++) arow[k] = hrow[perm[n - 1 - k]];
            if (!(arow[i] > 0)) arow[i] = (float)mean_diag;
            arow[i] = (float)((double)arow[i] + lambda);
        }
        if (!chol_inverse_upper(&A, n, &f->U, n_threads)) break;
        if (attempt == 6) { rc = SLM_GPTQ_ENOTPD; goto out; }
        lambda *= 10; /* not positive definite in float: damp harder */
    }
    *out = f;
    f = NULL;
    rc = 0;
out:
    slm_gptq_factor_free(f);
    free(A);
    free(kb);
    return rc;
}

int slm_gptq_quantize_factored(const slm_gptq_factor *f, uint32_t type, const float *W, int64_t nrows,
                               const float *imp, int n_threads, void *dst)
{
    const slm_qtraits *qt = slm_qtraits_get(type);
    if (!slm_gptq_factor_fits(f, type, f ? f->n : 0) || !qt->quantize_row || !slm_qgrid_supported(type) || nrows < 1)
        return SLM_GPTQ_EUNSUPPORTED;
    const int64_t n = f->n;
    const int blck = qt->blck;
    const int lazy = (f->block + blck - 1) / blck * blck;
    /* without act-order the column order is the identity for every block size; with
     * it, fits() guaranteed the block size the order was made for */
    float *impc = malloc(sizeof(float) * (size_t)n);
    int *pib = malloc(sizeof(int) * (size_t)n);
    if (!impc || !pib) { free(impc); free(pib); return SLM_GPTQ_ENOMEM; }
    for (int64_t c = 0; c < n; c++) {
        impc[c] = imp ? (imp[c] > 0 ? imp[c] : 0.0f) : f->diag[c];
        pib[c] = f->perm[c] % blck;
    }
    gptq_job job = { .type = type, .qt = qt, .nrows = nrows, .n = n, .blck = blck, .lazy = lazy, .U = f->U,
                     .perm = f->perm, .pos_in_blk = pib, .imp = impc, .W = (float *)W, .dst = dst,
                     .rb = slm_row_bytes(type, n), .n_tiles = (nrows + TILE - 1) / TILE };
    pthread_mutex_init(&job.mu, NULL);
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 64) n_threads = 64;
    pthread_t tid[64];
    int started[64] = { 0 };
    for (int t = 1; t < n_threads; t++) started[t] = !pthread_create(&tid[t], NULL, gptq_worker, &job);
    gptq_worker(&job);
    for (int t = 1; t < n_threads; t++)
        if (started[t]) pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&job.mu);
    free(impc);
    free(pib);
    return job.fail ? SLM_GPTQ_ENOMEM : 0;
}

int slm_gptq_quantize(uint32_t type, const float *W, int64_t nrows, int64_t ncols, const float *H,
                      const float *imp, const slm_gptq_params *p, int n_threads, void *dst)
{
    if (nrows < 1) return SLM_GPTQ_EUNSUPPORTED;
    slm_gptq_factor *f;
    int rc = slm_gptq_factor_new(type, H, ncols, p, n_threads, &f);
    if (rc) return rc;
    rc = slm_gptq_quantize_factored(f, type, W, nrows, imp, n_threads, dst);
    slm_gptq_factor_free(f);
    return rc;
}

#define N_BANDS 8
_Static_assert(N_BANDS <= RUN_MAX, "the accumulation's bands fit run_jobs");
typedef struct { float *H; const float *x; int64_t T, n, ld; int64_t edge[N_BANDS + 1]; int t, nt; } acc_job;

/* bands t, t + nt, ...: rows [a, b) of H's upper triangle: the diagonal block with ssyrk
 * (its upper half only), H[a:b, b:n] += X[:, a:b]^T X[:, b:n] with sgemm */
static void *acc_run(void *arg)
{
    const acc_job *j = arg;
    const int n = (int)j->n, T = (int)j->T, ld = (int)j->ld;
    for (int k = j->t; k < N_BANDS; k += j->nt) {
        const int64_t a = j->edge[k], b = j->edge[k + 1];
        if (b <= a) continue;
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)(b - a), T, 1.0f, j->x + a, ld, 1.0f,
                    j->H + a * j->n + a, n);
        if (b < j->n)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(b - a), (int)(j->n - b), T, 1.0f, j->x + a, ld,
                        j->x + b, ld, 1.0f, j->H + a * j->n + b, n);
    }
    return NULL;
}

void slm_gptq_accumulate(float *H, const float *x, int64_t n_tokens, int64_t n_in, int n_threads)
{
    slm_gptq_accumulate_ld(H, x, n_tokens, n_in, n_in, n_threads);
}

void slm_gptq_accumulate_ld(float *H, const float *x, int64_t n_tokens, int64_t n_in, int64_t ld, int n_threads)
{
    /* Upper triangle only; slm_gptq_symmetrize fills the lower one. A fixed split into
     * bands of rows of equal work, whatever the thread count, so the sums (and the GPTQ
     * output) are the same bytes for any -t; the caller's BLAS may be single-threaded. */
    pthread_once(&blas_once, blas_init);
    if (n_threads < 1) n_threads = 1;
    if (n_threads > N_BANDS) n_threads = N_BANDS;
    acc_job jb[N_BANDS];
    int64_t edge[N_BANDS + 1];
    const double total = (double)n_in * n_in / 2;
    edge[0] = 0;
    for (int k = 1; k < N_BANDS; k++) {
        /* rows i < e hold ~ n^2/2 - (n - e)^2/2 of the work */
        int64_t e = n_in - (int64_t)sqrt(2.0 * (total - total * k / N_BANDS));
        edge[k] = e < edge[k - 1] ? edge[k - 1] : e > n_in ? n_in : e;
    }
    edge[N_BANDS] = n_in;
    for (int t = 0; t < n_threads; t++) {
        jb[t] = (acc_job){ .H = H, .x = x, .T = n_tokens, .n = n_in, .ld = ld < n_in ? n_in : ld, .t = t, .nt = n_threads };
        memcpy(jb[t].edge, edge, sizeof edge);
    }
    run_jobs(acc_run, jb, sizeof *jb, n_threads);
}

void slm_gptq_symmetrize(float *H, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = i + 1; k < n; k++) H[k * n + i] = H[i * n + k];
}
