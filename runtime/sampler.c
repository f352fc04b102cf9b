/* runtime/sampler.c — next-token choice: repetition penalty, then greedy, or
 * top-k -> top-p -> min-p -> temperature -> draw (llama.cpp's default chain
 * order). The PRNG is xoshiro256** seeded through splitmix64, so a seed gives
 * the same text on every machine. */
#include "runtime.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    int32_t id;
    float logit;
    float p;
} cand;

struct slm_sampler {
    slm_sampler_params p;
    int n_vocab;
    cand *c;
    int32_t *recent;        /* ring of the last repeat_last_n tokens */
    int n_recent, head;
    uint64_t rng[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void slm_rng_seed(uint64_t st[4], uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        st[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4])
{
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double slm_rng_uniform(uint64_t st[4])
{
    return (double)(xoshiro_next(st) >> 11) * 0x1.0p-53;
}

void slm_sampler_defaults(slm_sampler_params *p)
{
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = 0;
}

slm_sampler *slm_sampler_new(const slm_sampler_params *p, int n_vocab)
{
    slm_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->p = *p;
    if (s->p.repeat_last_n < 0)
        s->p.repeat_last_n = 0;
    s->n_vocab = n_vocab;
    s->c = malloc(sizeof(cand) * (size_t)(n_vocab > 0 ? n_vocab : 1));
    s->recent = malloc(sizeof(int32_t) * (size_t)(s->p.repeat_last_n + 1));
    if (!s->c || !s->recent) {
        slm_sampler_free(s);
        return NULL;
    }
    slm_rng_seed(s->rng, p->seed);
    return s;
}

void slm_sampler_free(slm_sampler *s)
{
    if (!s)
        return;
    free(s->c);
    free(s->recent);
    free(s);
}

void slm_sampler_accept(slm_sampler *s, int32_t tok)
{
    int n = s->p.repeat_last_n;
    if (n <= 0)
        return;
    s->recent[s->head] = tok;
    s->head = (s->head + 1) % n;
    if (s->n_recent < n)
        s->n_recent++;
}

static int by_logit_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* probabilities of c[0..n) (sorted descending) at temperature 1/inv_t */
static void softmax(cand *c, int n, float inv_t)
{
    float mx = c[0].logit;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        c[i].p = expf((c[i].logit - mx) * inv_t);
        sum += c[i].p;
    }
    for (int i = 0; i < n; i++)
        c[i].p = (float)(c[i].p / sum);
}

int32_t slm_sampler_sample(slm_sampler *s, const float *logits)
{
    const int n_vocab = s->n_vocab;
    cand *c = s->c;
    for (int i = 0; i < n_vocab; i++)
        c[i] = (cand){i, logits[i], 0};
    /* repetition penalty over distinct recent tokens */
    if (s->p.repeat_penalty != 1.0f && s->n_recent > 0) {
        for (int k = 0; k < s->n_recent; k++) {
            int32_t id = s->recent[k];
            if (id < 0 || id >= n_vocab)
                continue;
            int seen = 0;
            for (int j = 0; j < k; j++)
                if (s->recent[j] == id)
                    seen = 1;
            if (seen)
                continue;
            float *l = &c[id].logit;
            *l = *l <= 0 ? *l * s->p.repeat_penalty : *l / s->p.repeat_penalty;
        }
    }
    int32_t chosen;
    if (s->p.temp <= 0) {
        int best = 0;
        for (int i = 1; i < n_vocab; i++)
            if (c[i].logit > c[best].logit)
                best = i;
        chosen = best;
    } else {
        qsort(c, (size_t)n_vocab, sizeof *c, by_logit_desc);
        int n = n_vocab;
        if (s->p.top_k > 0 && s->p.top_k < n)
            n = s->p.top_k;
        if (s->p.top_p < 1.0f) {
            softmax(c, n, 1.0f);
            double cum = 0;
            for (int i = 0; i < n; i++) {
                cum += c[i].p;
                if (cum >= s->p.top_p) {
                    n = i + 1;
                    break;
                }
            }
        }
        if (s->p.min_p > 0) {
            softmax(c, n, 1.0f);
            float cut = s->p.min_p * c[0].p;
            int k = 1;
            while (k < n && c[k].p >= cut)
                k++;
            n = k;
        }
        softmax(c, n, 1.0f / s->p.temp);
        double r = slm_rng_uniform(s->rng), cum = 0;
        chosen = c[n - 1].id;
        for (int i = 0; i < n; i++) {
            cum += c[i].p;
            if (r < cum) {
                chosen = c[i].id;
                break;
            }
        }
    }
    slm_sampler_accept(s, chosen);
    return chosen;
}
