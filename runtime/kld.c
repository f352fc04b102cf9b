/* runtime/kld.c — base log-probabilities and KL-divergence, in llama.cpp's
 * file layout (tools/perplexity/perplexity.cpp), so base files can be
 * exchanged with llama-perplexity's --kl-divergence-base:
 *   "_logits_", int32 n_ctx, int32 n_vocab, int32 n_chunk,
 *   int32 tokens[n_chunk * n_ctx]   (the tokenized text, BOS not substituted),
 *   then per chunk, per scored position (n_ctx - 1 - n_ctx/2 of them),
 *   nv = 2*((n_vocab+1)/2) + 4 uint16: float scale, float min_log_prob, then
 *   one uint16 per token: round((logit - min_logit) / scale), where
 *   min_logit = max(min logit, max logit - 16) (0 below it).
 * The statistics follow llama.cpp's definitions (mean KLD and its
 * uncertainty, median, percentiles with linear interpolation, RMS of the
 * probability difference of the correct token, same-top-token rate). */
#include "rt_kld.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct slm_kld_state {
    int writing;
    slm_afile *out;
    FILE *in;
    const char *path;
    int n_vocab, nv;
    uint16_t *row;          /* nv uint16 */
    /* sums as llama.cpp keeps them */
    double sum_nll, sum_nll2, sum_nll_base, sum_nll_base2, sum_nll_nll_base;
    double sum_kld, sum_kld2, sum_p_diff, sum_p_diff2, sum_p_diff4;
    float max_p_diff;
    int64_t n_same_top, count, cap;
    float *kld_values, *p_diff_values;
};

static int nv_of(int n_vocab) { return 2 * ((n_vocab + 1) / 2) + 4; }

int slm_kld_begin(slm_kld_state **out, const slm_ppl_params *p, const int32_t *ids, size_t n_ids, int n_ctx,
                  int n_chunk, int n_vocab, slm_err *err)
{
    *out = NULL;
    slm_kld_state *s = calloc(1, sizeof *s);
    if (!s)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    s->n_vocab = n_vocab;
    s->nv = nv_of(n_vocab);
    s->row = calloc((size_t)s->nv, sizeof(uint16_t));
    s->cap = (int64_t)n_chunk * (n_ctx - 1 - n_ctx / 2);
    s->kld_values = malloc(sizeof(float) * (size_t)(s->cap ? s->cap : 1));
    s->p_diff_values = malloc(sizeof(float) * (size_t)(s->cap ? s->cap : 1));
    if (!s->row || !s->kld_values || !s->p_diff_values) {
        slm_kld_free(s);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    int rc;
    size_t n_tok = (size_t)n_chunk * (size_t)n_ctx;
    if (n_tok > n_ids) {
        slm_kld_free(s);
        return slm_err_set(err, SLM_EINTERNAL, "chunk count exceeds the tokens");
    }
    if (p->kld_base_out) {
        s->writing = 1;
        s->path = p->kld_base_out;
        if ((rc = slm_afile_open(p->kld_base_out, &s->out, err))) {
            slm_kld_free(s);
            return rc;
        }
        int32_t hdr[3] = {n_ctx, n_vocab, n_chunk};
        if ((rc = slm_afile_write(s->out, "_logits_", 8, err)) || (rc = slm_afile_write(s->out, hdr, sizeof hdr, err)) ||
            (rc = slm_afile_write(s->out, ids, n_tok * sizeof(int32_t), err))) {
            slm_kld_free(s);
            return rc;
        }
        *out = s;
        return SLM_OK;
    }
    s->path = p->kld_base_in;
    s->in = fopen(p->kld_base_in, "rb");
    if (!s->in) {
        slm_kld_free(s);
        return slm_err_set(err, SLM_EIO, "%s: cannot open the base log-probabilities file", p->kld_base_in);
    }
    char magic[8];
    int32_t hdr[3];
    if (fread(magic, 1, 8, s->in) != 8 || memcmp(magic, "_logits_", 8) || fread(hdr, sizeof hdr, 1, s->in) != 1) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: not a base log-probabilities file (no _logits_ header)", s->path);
        goto fail;
    }
    if (hdr[0] != n_ctx || hdr[1] != n_vocab || hdr[2] != n_chunk) {
        rc = slm_err_set(err, SLM_EINPUT,
                         "%s: base file was made with n_ctx %d, vocabulary %d, %d chunks; this run has n_ctx %d, "
                         "vocabulary %d, %d chunks",
                         s->path, hdr[0], hdr[1], hdr[2], n_ctx, n_vocab, n_chunk);
        goto fail;
    }
    struct stat st;
    uint64_t want = 8 + sizeof hdr + n_tok * 4 + (uint64_t)s->cap * (uint64_t)s->nv * 2;
    if (fstat(fileno(s->in), &st) || (uint64_t)st.st_size != want) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: file size %lld differs from the %llu bytes its header implies", s->path,
                         (long long)st.st_size, (unsigned long long)want);
        goto fail;
    }
    int32_t buf[1024];
    for (size_t done = 0; done < n_tok;) {
        size_t k = n_tok - done < 1024 ? n_tok - done : 1024;
        if (fread(buf, sizeof(int32_t), k, s->in) != k) {
            rc = slm_err_set(err, SLM_EIO, "%s: read error in the token list", s->path);
            goto fail;
        }
        if (memcmp(buf, ids + done, k * sizeof(int32_t))) {
            size_t i = 0;
            while (buf[i] == ids[done + i])
                i++;
            rc = slm_err_set(err, SLM_EINPUT,
                             "%s: base file was computed on other text (token %zu differs: %d vs %d)", s->path,
                             done + i, buf[i], ids[done + i]);
            goto fail;
        }
        done += k;
    }
    *out = s;
    return SLM_OK;
fail:
    slm_kld_free(s);
    return rc;
}

/* llama.cpp's 16-bit encoding of one row of log-probabilities */
static void encode_row(const float *l, int n, uint16_t *row)
{
    float mx = l[0], mn = l[0];
    for (int i = 1; i < n; i++) {
        if (l[i] > mx)
            mx = l[i];
        if (l[i] < mn)
            mn = l[i];
    }
    if (mn < mx - 16)
        mn = mx - 16;
    double sum_exp = 0;
    for (int i = 0; i < n; i++)
        sum_exp += expf(l[i] - mx);
    const float log_sum_exp = (float)log(sum_exp);
    const float min_log_prob = mn - mx - log_sum_exp;
    const float scale = (mx - mn) / 65535.f;
    float d[2] = {scale, min_log_prob};
    memcpy(row, d, sizeof d);
    uint16_t *q = row + 4;
    memset(q, 0, sizeof(uint16_t) * (size_t)(nv_of(n) - 4));
    if (scale) {
        const float inv = 1 / scale;
        for (int i = 0; i < n; i++)
            q[i] = l[i] > mn ? (uint16_t)lrintf(inv * (l[i] - mn)) : 0;
    }
}

static void compare_row(slm_kld_state *s, const float *l, const uint16_t *row, int tok, int64_t idx)
{
    const int n = s->n_vocab;
    float mx = l[0];
    int imax = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > mx) {
            mx = l[i];
            imax = i;
        }
    double sum_exp = 0;
    for (int i = 0; i < n; i++)
        sum_exp += expf(l[i] - mx);
    const float log_sum_exp = (float)log(sum_exp);
    float d[2];
    memcpy(d, row, sizeof d);
    const float scale = d[0], min_log_prob = d[1];
    const uint16_t *q = row + 4;
    const float nll = mx + log_sum_exp - l[tok];
    const float nll_base = -(scale * q[tok] + min_log_prob);
    s->sum_nll += nll;
    s->sum_nll2 += (double)nll * nll;
    s->sum_nll_base += nll_base;
    s->sum_nll_base2 += (double)nll_base * nll_base;
    s->sum_nll_nll_base += (double)nll * nll_base;
    const float lse = mx + log_sum_exp;
    double kl = 0;
    int imax_base = 0;
    float pmax_base = 0;
    for (int i = 0; i < n; i++) {
        const float lb = scale * q[i] + min_log_prob;
        if (i == 0 || lb > pmax_base) {
            pmax_base = lb;
            imax_base = i;
        }
        if (lb > -16.f)
            kl += expf(lb) * (lb - l[i] + lse);
    }
    s->sum_kld += kl;
    s->sum_kld2 += kl * kl;
    if (imax == imax_base)
        s->n_same_top++;
    const float p_diff = expf(-nll) - expf(-nll_base);
    s->sum_p_diff += p_diff;
    s->sum_p_diff2 += (double)p_diff * p_diff;
    s->sum_p_diff4 += (double)p_diff * p_diff * p_diff * p_diff;
    if (fabsf(p_diff) > s->max_p_diff)
        s->max_p_diff = fabsf(p_diff);
    s->kld_values[idx] = (float)kl;
    s->p_diff_values[idx] = p_diff;
    s->count++;
}

int slm_kld_chunk(slm_kld_state *s, const float *logits, const int32_t *toks, int n_scored, slm_err *err)
{
    int rc;
    for (int j = 0; j < n_scored; j++) {
        const float *l = logits + (size_t)j * s->n_vocab;
        if (s->writing) {
            encode_row(l, s->n_vocab, s->row);
            if ((rc = slm_afile_write(s->out, s->row, sizeof(uint16_t) * (size_t)s->nv, err)))
                return rc;
            continue;
        }
        if (fread(s->row, sizeof(uint16_t), (size_t)s->nv, s->in) != (size_t)s->nv)
            return slm_err_set(err, SLM_EIO, "%s: read error in the log-probabilities", s->path);
        if (s->count >= s->cap)
            return slm_err_set(err, SLM_EINTERNAL, "more scored tokens than planned");
        compare_row(s, l, s->row, toks[j + 1], s->count);
    }
    return SLM_OK;
}

static void mean_unc(double sum, double sum2, int64_t n, double *mean, double *unc)
{
    *mean = n ? sum / n : 0;
    double v = n ? sum2 / n - *mean * *mean : 0;
    *unc = v > 0 && n > 10 ? sqrt(v / (n - 1)) : 0;
}

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const float *v, int64_t n, double frac)
{
    if (frac <= 0)
        return v[0];
    if (frac >= 1)
        return v[n - 1];
    double p = frac * (n - 1);
    int64_t ip = (int64_t)p;
    p -= ip;
    return (1 - p) * v[ip] + p * v[ip + 1 < n ? ip + 1 : n - 1];
}

int slm_kld_finish(slm_kld_state *s, slm_kld_result *r, slm_err *err)
{
    if (s->writing) {
        int rc = slm_afile_commit(s->out, err);
        s->out = NULL;
        return rc;
    }
    memset(r, 0, sizeof *r);
    int64_t n = s->count;
    if (n < 2)
        return slm_err_set(err, SLM_EINPUT, "too few scored tokens for KL-divergence statistics");
    double lp, lpu, lb, lbu;
    mean_unc(s->sum_nll, s->sum_nll2, n, &lp, &lpu);
    mean_unc(s->sum_nll_base, s->sum_nll_base2, n, &lb, &lbu);
    double cov = n >= 10 ? (s->sum_nll_nll_base / n - (s->sum_nll / n) * (s->sum_nll_base / n)) / (n - 1) : 0;
    double ppl = exp(lp), ppl_u = ppl * lpu;
    r->ppl_base = exp(lb);
    r->ppl_base_stderr = r->ppl_base * lbu;
    r->ppl_ratio = exp(lp - lb);
    r->dppl = ppl - r->ppl_base;
    double dv = ppl_u * ppl_u + r->ppl_base_stderr * r->ppl_base_stderr - 2.0 * ppl * r->ppl_base * cov;
    r->dppl_stderr = dv > 0 ? sqrt(dv) : 0;
    mean_unc(s->sum_kld, s->sum_kld2, n, &r->kld_mean, &r->kld_stderr);
    qsort(s->kld_values, (size_t)n, sizeof(float), cmp_f);
    r->kld_median = n % 2 == 0 ? 0.5 * (s->kld_values[n / 2] + s->kld_values[n / 2 - 1]) : s->kld_values[n / 2];
    r->kld_p99 = percentile(s->kld_values, n, 0.99);
    r->kld_max = s->kld_values[n - 1];
    double mse, mse_u;
    mean_unc(s->sum_p_diff2, s->sum_p_diff4, n, &mse, &mse_u);
    r->rms_dp = sqrt(mse);
    r->rms_dp_stderr = r->rms_dp > 0 ? 0.5 / r->rms_dp * mse_u : 0;
    r->same_top = (double)s->n_same_top / n;
    r->same_top_stderr = sqrt(r->same_top * (1 - r->same_top) / (n - 1));
    r->count = n;
    return SLM_OK;
}

void slm_kld_free(slm_kld_state *s)
{
    if (!s)
        return;
    if (s->out)
        slm_afile_abort(s->out);
    if (s->in)
        fclose(s->in);
    free(s->row);
    free(s->kld_values);
    free(s->p_diff_values);
    free(s);
}
