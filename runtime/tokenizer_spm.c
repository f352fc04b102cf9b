/* runtime/tokenizer_spm.c — SentencePiece-style BPE ("llama" vocabularies:
 * Llama 2, Phi-3, Gemma 3), as llama.cpp's llm_tokenizer_spm: spaces become
 * U+2581, the text is cut into UTF-8 characters, and the adjacent pair whose
 * concatenation is the highest-scoring vocabulary entry is merged until none
 * is left; what is not a token then falls back to <0xNN> byte tokens. */
#include "tok_internal.h"

static bool spm_higher(const spm_bigram *a, const spm_bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int spm_push(spm_heap *h, spm_bigram x)
{
    if (h->n == h->cap) {
        size_t nc = h->cap ? 2 * h->cap : 256;
        spm_bigram *p = realloc(h->v, nc * sizeof *p);
        if (!p) return -1;
        h->v = p;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t par = (i - 1) / 2;
        if (!spm_higher(&x, &h->v[par])) break;
        h->v[i] = h->v[par];
        i = par;
    }
    h->v[i] = x;
    return 0;
}

static spm_bigram spm_pop(spm_heap *h)
{
    spm_bigram top = h->v[0], x = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && spm_higher(&h->v[c + 1], &h->v[c])) c++;
        if (!spm_higher(&h->v[c], &x)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = x;
    return top;
}

static int spm_try_add(const slm_tokenizer *t, work *w, int left, int right)
{
    if (left < 0 || right < 0) return 0;
    uint32_t size = w->syms[left].n + w->syms[right].n;
    int32_t id = hmap_get(&t->vocab, w->buf.p + w->syms[left].off, size);
    if (id < 0) return 0;
    return spm_push(&w->heap, (spm_bigram){left, right, t->score[id], size});
}

static int spm_encode(const slm_tokenizer *t, work *w, ivec *out, slm_err *err)
{
    if (split_chars(w)) goto oom;
    w->heap.n = 0;
    for (size_t i = 1; i < w->n_syms; i++)
        if (spm_try_add(t, w, (int)i - 1, (int)i)) goto oom;
    while (w->heap.n) {
        spm_bigram b = spm_pop(&w->heap);
        sym *l = &w->syms[b.left], *r = &w->syms[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->syms[r->next].prev = b.left;
        if (spm_try_add(t, w, l->prev, b.left) || spm_try_add(t, w, b.left, l->next)) goto oom;
    }
    /* Every merged symbol is a vocabulary entry; the rest fall back to bytes
     * (llama.cpp's resegment: its rev_merge path is never reached). */
    for (int i = w->n_syms ? 0 : -1; i != -1; i = w->syms[i].next) {
        const sym *s = &w->syms[i];
        int32_t id = hmap_get(&t->vocab, w->buf.p + s->off, s->n);
        if (id >= 0) {
            if (ivec_push(out, id)) goto oom;
            continue;
        }
        for (uint32_t j = 0; j < s->n; j++) {
            unsigned char c = (unsigned char)w->buf.p[s->off + j];
            int32_t bid = t->byte_tok[c] >= 0 ? t->byte_tok[c] : t->unk;
            if (bid < 0)
                return slm_err_set(err, SLM_EINPUT, "tokenize: byte 0x%02X has no token (no <0x%02X>, no unknown token)",
                                   c, c);
            if (ivec_push(out, bid)) goto oom;
        }
    }
    return 0;
oom:
    return slm_err_set(err, SLM_EINTERNAL, "tokenize: out of memory");
}

int tok_spm_encode(const slm_tokenizer *t, work *w, const char *s, size_t n, int space_prefix, ivec *out,
                   slm_err *err)
{
    w->buf.n = 0;
    if (sbuf_reserve(&w->buf, 3 * n + 3)) return slm_err_set(err, SLM_EINTERNAL, "tokenize: out of memory");
    char *o = w->buf.p;
    if (space_prefix) {
        memcpy(o, "\xe2\x96\x81", 3);
        o += 3;
    }
    for (size_t j = 0; j < n; j++) {
        if (s[j] == ' ') {
            memcpy(o, "\xe2\x96\x81", 3);
            o += 3;
        } else {
            *o++ = s[j];
        }
    }
    w->buf.n = (size_t)(o - w->buf.p);
    return spm_encode(t, w, out, err);
}

size_t tok_spm_normal_piece(const char *s, size_t n, int lstrip, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (n - i >= 3 && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
            if (!lstrip || o > 0) o = put(buf, cap, o, " ", 1);
            lstrip = 0;
            i += 3;
        } else {
            if (lstrip && s[i] == ' ' && o == 0) { lstrip = 0; i++; continue; }
            lstrip = 0;
            o = put(buf, cap, o, s + i, 1);
            i++;
        }
    }
    return o;
}
