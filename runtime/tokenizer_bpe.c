/* runtime/tokenizer_bpe.c — GPT-2 style byte-level BPE ("gpt2" vocabularies:
 * GPT-2, Llama 3, Qwen2/Qwen3, SmolLM), as llama.cpp's llm_tokenizer_bpe: a
 * pre-tokenizer regex (PCRE2, UTF + UCP) cuts the text into words, each
 * word's bytes go through GPT-2's bytes_to_unicode table and are merged by
 * merge rank. */
#include "tok_internal.h"

/* Re-encode text as strictly valid UTF-8: each invalid byte becomes U+FFFD
 * (what llama.cpp's BPE path does before pre-tokenizing); surrogates and
 * code points above U+10FFFF, which PCRE2 rejects, become U+FFFD too. */
static int utf8_clean(const char *text, size_t len, sbuf *out)
{
    const unsigned char *s = (const unsigned char *)text;
    out->n = 0;
    if (sbuf_reserve(out, len + 16)) return -1;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t adv;
        if (!utf8_decode(s + i, len - i, &cp, &adv)) {
            cp = 0xfffd;
            adv = 1;
        } else if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
            cp = 0xfffd;
        }
        unsigned char o[4];
        size_t k = utf8_encode(cp, o);
        if (sbuf_add(out, o, k)) return -1;
        i += adv;
    }
    return 0;
}

/* ---- pre-tokenizer regexes (llama.cpp's, per tokenizer.ggml.pre) -------- */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_CONTRACT "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3 RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2 RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct pre_def {
    const char *names;        /* '|'-separated tokenizer.ggml.pre values */
    const char *re[MAX_REGEX];
    int ignore_merges, add_bos;
} pre_def;

static const pre_def PRE_DEFS[] = {
    {"gpt-2|gpt2|phi-2|mpt|olmo|jais|trillion|granite-docling|exaone4|roberta-bpe", {RE_GPT2}, 0, -1},
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, 0, -1},
    {"llama3|llama-v3|llama-bpe|falcon3|pixtral|dbrx|smaug-bpe", {RE_LLAMA3}, 1, 1},
    {"qwen2|deepseek-r1-qwen|stablelm2|megrez|hunyuan", {RE_QWEN2}, 0, -1},
    {"smollm|starcoder|refact|command-r|codeshell|exaone|minerva-7b", {"\\p{N}", RE_GPT2}, 0, -1},
};

static const pre_def *find_pre(const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < sizeof PRE_DEFS / sizeof PRE_DEFS[0]; i++) {
        const char *p = PRE_DEFS[i].names;
        while (*p) {
            const char *e = strchr(p, '|');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            if (l == nl && memcmp(p, name, l) == 0) return &PRE_DEFS[i];
            p += l + (e ? 1 : 0);
        }
    }
    return NULL;
}

static void build_byte_tables(slm_tokenizer *t)
{
    int n = 0;
    for (int i = 0; i < 324; i++) t->byte_dec[i] = -1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp;
        if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)) cp = (uint32_t)b;
        else cp = 256u + (uint32_t)n++;
        unsigned char o[4];
        t->byte_enc_len[b] = (uint8_t)utf8_encode(cp, o);
        memcpy(t->byte_enc[b], o, t->byte_enc_len[b]);
        t->byte_dec[cp] = (int16_t)b;
    }
}

static int compile_regexes(slm_tokenizer *t, const pre_def *pd, const char *path, slm_err *err)
{
    for (int i = 0; i < MAX_REGEX && pd->re[i]; i++) {
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)pd->re[i], PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                       &ec, &eo, NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(ec, msg, sizeof msg);
            return slm_err_set(err, SLM_EINTERNAL, "%s: pre-tokenizer regex %d: %s at offset %zu", path, i,
                               (const char *)msg, (size_t)eo);
        }
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if unavailable */
        t->re[t->n_re++] = re;
    }
    return 0;
}

/* ---- byte-level BPE (llm_tokenizer_bpe) --------------------------------- */
typedef struct bpe_bigram { int left, right; int32_t rank; uint32_t size; } bpe_bigram;

static bool bpe_higher(const bpe_bigram *a, const bpe_bigram *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

/* The SPM heap's storage is reused for BPE bigrams (same size and layout). */
_Static_assert(sizeof(bpe_bigram) == sizeof(spm_bigram), "bigram layouts");

static int bpe_push(spm_heap *h, bpe_bigram x)
{
    if (h->n == h->cap) {
        size_t nc = h->cap ? 2 * h->cap : 256;
        spm_bigram *p = realloc(h->v, nc * sizeof *p);
        if (!p) return -1;
        h->v = p;
        h->cap = nc;
    }
    bpe_bigram *v = (bpe_bigram *)(void *)h->v;
    size_t i = h->n++;
    while (i > 0) {
        size_t par = (i - 1) / 2;
        if (!bpe_higher(&x, &v[par])) break;
        v[i] = v[par];
        i = par;
    }
    v[i] = x;
    return 0;
}

static bpe_bigram bpe_pop(spm_heap *h)
{
    bpe_bigram *v = (bpe_bigram *)(void *)h->v;
    bpe_bigram top = v[0], x = v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bpe_higher(&v[c + 1], &v[c])) c++;
        if (!bpe_higher(&v[c], &x)) break;
        v[i] = v[c];
        i = c;
    }
    if (h->n) v[i] = x;
    return top;
}

typedef struct bpe_ctx { sbuf key; } bpe_ctx;

static int bpe_try_add(const slm_tokenizer *t, work *w, bpe_ctx *c, int left, int right)
{
    if (left < 0 || right < 0) return 0;
    const sym *l = &w->syms[left], *r = &w->syms[right];
    c->key.n = 0;
    if (sbuf_reserve(&c->key, l->n + r->n + 1)) return -1;
    memcpy(c->key.p, w->buf.p + l->off, l->n);
    c->key.p[l->n] = ' ';
    memcpy(c->key.p + l->n + 1, w->buf.p + r->off, r->n);
    int32_t rank = hmap_get(&t->merges, c->key.p, l->n + 1 + r->n);
    if (rank < 0) return 0;
    return bpe_push(&w->heap, (bpe_bigram){left, right, rank, l->n + r->n});
}

/* Encode one pre-tokenized word: raw bytes word[0..n). */
static int bpe_word(const slm_tokenizer *t, work *w, bpe_ctx *c, const char *word, size_t n, ivec *out)
{
    w->buf.n = 0;
    if (sbuf_reserve(&w->buf, 2 * n)) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)word[i];
        memcpy(w->buf.p + w->buf.n, t->byte_enc[b], t->byte_enc_len[b]);
        w->buf.n += t->byte_enc_len[b];
    }
    if (t->ignore_merges) {
        int32_t id = hmap_get(&t->vocab, w->buf.p, w->buf.n);
        if (id >= 0) return ivec_push(out, id);
    }
    if (split_chars(w)) return -1;
    w->heap.n = 0;
    for (size_t i = 1; i < w->n_syms; i++)
        if (bpe_try_add(t, w, c, (int)i - 1, (int)i)) return -1;
    while (w->heap.n) {
        bpe_bigram b = bpe_pop(&w->heap);
        sym *l = &w->syms[b.left], *r = &w->syms[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->syms[r->next].prev = b.left;
        if (bpe_try_add(t, w, c, l->prev, b.left) || bpe_try_add(t, w, c, b.left, l->next)) return -1;
    }
    for (int i = w->n_syms ? 0 : -1; i != -1; i = w->syms[i].next) {
        const sym *s = &w->syms[i];
        int32_t id = hmap_get(&t->vocab, w->buf.p + s->off, s->n);
        if (id >= 0) {
            if (ivec_push(out, id)) return -1;
            continue;
        }
        /* llama.cpp: look each byte of the mapped text up alone, drop misses */
        for (uint32_t j = 0; j < s->n; j++) {
            int32_t bid = hmap_get(&t->vocab, w->buf.p + s->off + j, 1);
            if (bid >= 0 && ivec_push(out, bid)) return -1;
        }
    }
    return 0;
}

typedef struct span { size_t off, len; } span;
typedef struct spvec { span *v; size_t n, cap; } spvec;

static int spvec_push(spvec *a, size_t off, size_t len)
{
    if (a->n == a->cap) {
        size_t nc = a->cap ? 2 * a->cap : 256;
        span *p = realloc(a->v, nc * sizeof *p);
        if (!p) return -1;
        a->v = p;
        a->cap = nc;
    }
    a->v[a->n].off = off;
    a->v[a->n].len = len;
    a->n++;
    return 0;
}

/* llama.cpp's unicode_regex_split: each regex in turn splits every current
 * piece into its matches and the gaps between them. */
static int regex_split(const slm_tokenizer *t, const char *s, size_t n, spvec *pieces, slm_err *err)
{
    spvec cur = {0}, next = {0};
    int rc = SLM_EINTERNAL;
    pcre2_match_data *md = NULL;
    if (n == 0) {
        pieces->n = 0;
        return 0;
    }
    if (spvec_push(&cur, 0, n)) goto oom;
    for (int k = 0; k < t->n_re; k++) {
        md = pcre2_match_data_create_from_pattern(t->re[k], NULL);
        if (!md) goto oom;
        next.n = 0;
        for (size_t i = 0; i < cur.n; i++) {
            const char *sub = s + cur.v[i].off;
            size_t sl = cur.v[i].len, pos = 0, last = 0;
            while (pos < sl) {
                int m = pcre2_match(t->re[k], (PCRE2_SPTR)sub, sl, pos, PCRE2_NO_UTF_CHECK, md, NULL);
                if (m == PCRE2_ERROR_NOMATCH) break;
                if (m < 0) {
                    PCRE2_UCHAR msg[256];
                    pcre2_get_error_message(m, msg, sizeof msg);
                    rc = slm_err_set(err, SLM_EINTERNAL, "tokenize: pre-tokenizer regex failed: %s", (const char *)msg);
                    goto fail;
                }
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                size_t ms = ov[0], me = ov[1];
                if (me == ms) { /* empty match: step one character */
                    pos = ms + 1;
                    while (pos < sl && ((unsigned char)sub[pos] & 0xc0) == 0x80) pos++;
                    continue;
                }
                if (ms > last && spvec_push(&next, cur.v[i].off + last, ms - last)) goto oom;
                if (spvec_push(&next, cur.v[i].off + ms, me - ms)) goto oom;
                last = pos = me;
            }
            if (last < sl && spvec_push(&next, cur.v[i].off + last, sl - last)) goto oom;
        }
        pcre2_match_data_free(md);
        md = NULL;
        spvec tmp = cur;
        cur = next;
        next = tmp;
    }
    free(next.v);
    free(pieces->v);
    *pieces = cur;
    return 0;
oom:
    rc = slm_err_set(err, SLM_EINTERNAL, "tokenize: out of memory");
fail:
    if (md) pcre2_match_data_free(md);
    free(cur.v);
    free(next.v);
    return rc;
}

int tok_bpe_pre_known(const char *pre, int *ignore_merges, int *add_bos)
{
    const pre_def *pd = find_pre(pre);
    if (!pd) return 0;
    *ignore_merges = pd->ignore_merges;
    *add_bos = pd->add_bos;
    return 1;
}

int tok_bpe_init(slm_tokenizer *t, const char *pre, const char *path, slm_err *err)
{
    build_byte_tables(t);
    const pre_def *pd = find_pre(pre);
    if (!pd) return slm_err_set(err, SLM_EINTERNAL, "%s: tokenizer.ggml.pre '%s' unknown", path, pre);
    return compile_regexes(t, pd, path, err);
}

struct tok_bpe_scratch {
    work w;
    bpe_ctx bc;
    sbuf clean;
    spvec pieces;
};

tok_bpe_scratch *tok_bpe_scratch_new(void) { return calloc(1, sizeof(tok_bpe_scratch)); }

void tok_bpe_scratch_free(tok_bpe_scratch *s)
{
    if (!s) return;
    free(s->w.buf.p);
    free(s->w.syms);
    free(s->w.heap.v);
    free(s->bc.key.p);
    free(s->clean.p);
    free(s->pieces.v);
    free(s);
}

int tok_bpe_encode(const slm_tokenizer *t, tok_bpe_scratch *s, const char *text, size_t n, ivec *out, slm_err *err)
{
    int rc;
    if (utf8_clean(text, n, &s->clean)) return slm_err_set(err, SLM_EINTERNAL, "tokenize: out of memory");
    if ((rc = regex_split(t, s->clean.p, s->clean.n, &s->pieces, err)) != 0) return rc;
    for (size_t k = 0; k < s->pieces.n; k++)
        if (bpe_word(t, &s->w, &s->bc, s->clean.p + s->pieces.v[k].off, s->pieces.v[k].len, out))
            return slm_err_set(err, SLM_EINTERNAL, "tokenize: out of memory");
    return 0;
}

size_t tok_bpe_normal_piece(const slm_tokenizer *t, const char *s, size_t n, int lstrip, char *buf, size_t cap)
{
    /* every code point maps back to one byte (llama_decode_text) */
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t adv;
        if (!utf8_decode(u + i, n - i, &cp, &adv)) { cp = 0xfffd; adv = 1; }
        if (cp < 324 && t->byte_dec[cp] >= 0) {
            char b = (char)t->byte_dec[cp];
            if (!(lstrip && o == 0 && b == ' ')) o = put(buf, cap, o, &b, 1);
        } else { /* llama.cpp writes this marker for code points outside the table */
            unsigned char e[4];
            size_t k = utf8_encode(cp, e);
            char hx[16];
            o = put(buf, cap, o, "[UNK_BYTE_0x", 12);
            for (size_t j = 0; j < k; j++) {
                snprintf(hx, sizeof hx, "%02x", e[j]);
                o = put(buf, cap, o, hx, 2);
            }
            o = put(buf, cap, o, s, n);
            o = put(buf, cap, o, "]", 1);
        }
        lstrip = 0;
        i += adv;
    }
    return o;
}
