/* api/qsample.c — token sources for --self-calibrate without generation (api/qsample.h; docs/quantization.md, "Without calibration data").
 *
 * GPTQ needs H = E[x x^T] of every product's input. calib_generate gets the tokens by letting
 * the model sample its own text, one decode step per position; here the tokens are drawn
 * i.i.d. from a fixed distribution instead, so the only model run is GPTQ's own batched
 * forward over the chunks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qsample.h"

const char *const qsample_source_names[] = { "generate", "uniform", "unigram", NULL };

/* splitmix64: a small, portable generator (the same stream on every machine) */
static uint64_t sm64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* GGUF token types (llama.cpp's llama_token_type) */
enum { TT_NORMAL = 1, TT_BYTE = 6 };

typedef struct { int32_t id; float score; } scored;
static int by_score_desc(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The distribution: ids[0..n) with cumulative weights cum[0..n) (cum[n-1] = total). */
static int make_dist(const slm_model *m, const slm_tokenizer *tok, int source, int32_t **ids_out, double **cum_out,
                     int *n_out, slm_err *err)
{
    const gguf_file *g = slm_model_gguf(m);
    const int32_t nv = slm_tokenizer_n_vocab(tok);
    const int64_t kt = gguf_find_key(g, "tokenizer.ggml.token_type"), ks = gguf_find_key(g, "tokenizer.ggml.scores");
    const gguf_kv *ty = kt >= 0 && g->kv[kt].arr_n == (uint64_t)nv ? &g->kv[kt] : NULL;
    const gguf_kv *sc = ks >= 0 && g->kv[ks].arr_n == (uint64_t)nv ? &g->kv[ks] : NULL;
    const int32_t bos = slm_tokenizer_bos(tok), eos = slm_tokenizer_eos(tok);
    scored *t = malloc(sizeof *t * (size_t)(nv > 0 ? nv : 1));
    int32_t *ids = malloc(sizeof *ids * (size_t)(nv > 0 ? nv : 1));
    double *cum = malloc(sizeof *cum * (size_t)(nv > 0 ? nv : 1));
    if (!t || !ids || !cum) {
        free(t); free(ids); free(cum);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    /* the candidates: normal and byte tokens (no control, unknown, unused or user-defined) */
    int n = 0, logprob = 0;
    for (int32_t i = 0; i < nv; i++) {
        const int type = ty ? (int)gguf_arr_num(ty, (uint64_t)i) : TT_NORMAL;
        if ((type != TT_NORMAL && type != TT_BYTE) || i == bos || i == eos) continue;
        const double s = sc ? gguf_arr_num(sc, (uint64_t)i) : 0.0;
        /* bytes after every normal token in the score order */
        t[n++] = (scored){ i, type == TT_BYTE ? -INFINITY : isfinite(s) ? (float)s : -INFINITY };
        if (type == TT_NORMAL && isfinite(s) && s != floor(s)) logprob = 1; /* SentencePiece unigram: log-probabilities */
    }
    if (n == 0) {
        free(t); free(ids); free(cum);
        return slm_err_set(err, SLM_EINPUT, "self-calibration: the vocabulary has no normal token to draw");
    }
    double total = 0;
    if (source == QSAMPLE_UNIFORM) {
        for (int i = 0; i < n; i++) { ids[i] = t[i].id; cum[i] = total += 1.0; }
    } else if (logprob) {
        /* p ~ exp(score); byte tokens (score -inf here) get the smallest normal weight */
        double mx = -INFINITY, mn = INFINITY;
        for (int i = 0; i < n; i++)
            if (isfinite(t[i].score)) { mx = fmax(mx, t[i].score); mn = fmin(mn, t[i].score); }
        for (int i = 0; i < n; i++) {
            ids[i] = t[i].id;
            cum[i] = total += exp((isfinite(t[i].score) ? t[i].score : mn) - mx);
        }
    } else {
        /* integer scores are BPE merge ranks (-rank), not frequencies: Zipf's law over that
         * order, p ~ 1 / (rank + 1), as a stand-in for the unigram distribution */
        qsort(t, (size_t)n, sizeof *t, by_score_desc);
        for (int i = 0; i < n; i++) { ids[i] = t[i].id; cum[i] = total += 1.0 / (double)(i + 1); }
    }
    free(t);
    *ids_out = ids;
    *cum_out = cum;
    *n_out = n;
    return SLM_OK;
}

int qsample_iid(const slm_model *m, const slm_tokenizer *tok, int n_ctx, int n_chunks, uint64_t seed, int source,
                calib_text *ct, slm_err *err)
{
    memset(ct, 0, sizeof *ct);
    if (source != QSAMPLE_UNIFORM && source != QSAMPLE_UNIGRAM)
        return slm_err_set(err, SLM_EUSAGE, "self-calibration: unknown token source %d", source);
    int32_t start;
    int rc = calib_self_begin(m, tok, n_ctx, n_chunks, ct, &start, err);
    if (rc) return rc;
    int32_t *ids = NULL;
    double *cum = NULL;
    int n = 0;
    if ((rc = make_dist(m, tok, source, &ids, &cum, &n, err))) {
        calib_free(ct);
        return rc;
    }
    const double total = cum[n - 1];
    for (int c = 0; c < n_chunks; c++) {
        uint64_t st = seed + (uint64_t)c;
        int32_t *row = ct->tokens + (size_t)c * (size_t)n_ctx;
        row[0] = start;
        for (int p = 1; p < n_ctx; p++) {
            const double u = (double)(sm64(&st) >> 11) * 0x1.0p-53 * total; /* [0, total) */
            int lo = 0, hi = n - 1; /* the first i with cum[i] > u */
            while (lo < hi) {
                const int mid = (lo + hi) / 2;
                if (cum[mid] > u) hi = mid;
                else lo = mid + 1;
            }
            row[p] = ids[lo];
        }
    }
    free(ids);
    free(cum);
    return SLM_OK;
}
