/* runtime/tok_internal.h — what the tokenizer files share: the tokenizer
 * struct, a byte-string hash map, growable buffers, llama.cpp's lenient UTF-8
 * helpers and the symbol list both BPE flavours merge on. Private to
 * runtime/tokenizer*.c (the public face is runtime.h). */
#ifndef SLM_TOK_INTERNAL_H
#define SLM_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

/* llama.cpp token attributes (bit flags, as in llama.h) */
enum {
    ATTR_UNKNOWN = 1 << 0, ATTR_UNUSED = 1 << 1, ATTR_NORMAL = 1 << 2,
    ATTR_CONTROL = 1 << 3, ATTR_USER_DEFINED = 1 << 4, ATTR_BYTE = 1 << 5,
    ATTR_LSTRIP = 1 << 7, ATTR_RSTRIP = 1 << 8,
};
enum { KIND_SPM = 1, KIND_BPE = 2 };
#define MAX_REGEX 4

/* ---- a small open-addressing hash map: byte string -> int32 ------------- */
typedef struct hslot { const char *s; uint32_t n; int32_t v; } hslot;
typedef struct hmap { hslot *slot; size_t mask; } hmap;

static inline uint64_t hash_bytes(const char *s, size_t n)
{
    const uint64_t h = slm_fnv1a(s, n);
    return h ^ (h >> 29);
}

static inline int hmap_init(hmap *m, size_t n_items)
{
    size_t cap = 16;
    while (cap < 2 * n_items) cap <<= 1;
    m->slot = calloc(cap, sizeof *m->slot);
    m->mask = cap - 1;
    return m->slot ? 0 : -1;
}

static inline int32_t hmap_get(const hmap *m, const char *s, size_t n)
{
    size_t i = hash_bytes(s, n) & m->mask;
    for (;;) {
        const hslot *e = &m->slot[i];
        if (!e->s) return -1;
        if (e->n == n && memcmp(e->s, s, n) == 0) return e->v;
        i = (i + 1) & m->mask;
    }
}

/* Insert unless present (h = hash_bytes(s, n)); returns the value already
 * stored, or -1 if inserted. */
static inline int32_t hmap_put_hashed(hmap *m, const char *s, uint32_t n, int32_t v, uint64_t h)
{
    size_t i = h & m->mask;
    for (;;) {
        hslot *e = &m->slot[i];
        if (!e->s) {
            e->s = s;
            e->n = n;
            e->v = v;
            return -1;
        }
        if (e->n == n && memcmp(e->s, s, n) == 0) return e->v;
        i = (i + 1) & m->mask;
    }
}

/* ---- growable buffers --------------------------------------------------- */
typedef struct ivec { int32_t *v; size_t n, cap; } ivec;

static inline int ivec_push(ivec *a, int32_t x)
{
    if (a->n == a->cap) {
        size_t nc = a->cap ? 2 * a->cap : 256;
        int32_t *p = realloc(a->v, nc * sizeof *p);
        if (!p) return -1;
        a->v = p;
        a->cap = nc;
    }
    a->v[a->n++] = x;
    return 0;
}

typedef struct sbuf { char *p; size_t n, cap; } sbuf;

static inline int sbuf_reserve(sbuf *b, size_t extra)
{
    if (b->n + extra <= b->cap) return 0;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->n + extra) nc *= 2;
    char *p = realloc(b->p, nc);
    if (!p) return -1;
    b->p = p;
    b->cap = nc;
    return 0;
}

static inline int sbuf_add(sbuf *b, const void *d, size_t n)
{
    if (n == 0) return 0;
    if (sbuf_reserve(b, n)) return -1;
    memcpy(b->p + b->n, d, n);
    b->n += n;
    return 0;
}

/* ---- the tokenizer ------------------------------------------------------ */
struct slm_tokenizer {
    int kind;
    int32_t n_vocab;
    char *arena;              /* every token text, NUL-terminated, back to back */
    const char **text;        /* n_vocab */
    uint32_t *len;
    float *score;
    uint16_t *attr;
    hmap vocab;               /* text -> id */
    char *merge_arena;        /* "left right" strings of the BPE merges */
    hmap merges;              /* "left right" -> rank */
    int32_t bos, eos, unk, pad, eot;
    int add_bos, add_eos, add_space_prefix, ignore_merges;
    int32_t *special;         /* CONTROL/USER_DEFINED/UNKNOWN ids, longest text first */
    size_t n_special;
    uint8_t *eog;             /* n_vocab flags */
    int32_t byte_tok[256];    /* SPM byte fallback ids (-1: none) */
    pcre2_code *re[MAX_REGEX];
    int n_re;
    uint8_t byte_enc[256][2]; /* GPT-2 bytes_to_unicode, UTF-8 (1 or 2 bytes) */
    uint8_t byte_enc_len[256];
    int16_t byte_dec[324];    /* code point -> byte, -1 when not in the table */
};

/* ---- UTF-8 helpers (llama.cpp's lenient rules) -------------------------- */
/* Length of a UTF-8 sequence from its lead byte, as unicode_len_utf8. */
static inline size_t utf8_len(unsigned char c)
{
    static const uint8_t lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lut[c >> 4];
}

/* Decode one code point like llama.cpp's unicode_cpt_from_utf8: continuation
 * bytes are checked but overlong forms are accepted. Returns 0 and sets *adv
 * on an invalid sequence (the caller substitutes U+FFFD for one byte). */
static inline int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp, size_t *adv)
{
    unsigned char c = s[0];
    if (!(c & 0x80)) { *cp = c; *adv = 1; return 1; }
    if (!(c & 0x40)) return 0;
    if (!(c & 0x20)) {
        if (n < 2 || (s[1] & 0xc0) != 0x80) return 0;
        *cp = ((uint32_t)(c & 0x1f) << 6) | (s[1] & 0x3f);
        *adv = 2;
        return 1;
    }
    if (!(c & 0x10)) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) return 0;
        *cp = ((uint32_t)(c & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
        *adv = 3;
        return 1;
    }
    if (!(c & 0x08)) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80) return 0;
        *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
              ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
        *adv = 4;
        return 1;
    }
    return 0;
}

static inline size_t utf8_encode(uint32_t cp, unsigned char *o)
{
    if (cp <= 0x7f) { o[0] = (unsigned char)cp; return 1; }
    if (cp <= 0x7ff) {
        o[0] = (unsigned char)(0xc0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp <= 0xffff) {
        o[0] = (unsigned char)(0xe0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* ---- symbols merged by both BPE flavours --------------------------------- */
typedef struct sym { int prev, next; uint32_t off, n; } sym;
typedef struct spm_bigram { int left, right; float score; uint32_t size; } spm_bigram;
typedef struct spm_heap { spm_bigram *v; size_t n, cap; } spm_heap; /* BPE reuses its storage */

typedef struct work {
    sbuf buf;        /* normalised text of the current fragment / word */
    sym *syms;
    size_t n_syms, cap_syms;
    spm_heap heap;
} work;

static inline int work_syms(work *w, size_t n)
{
    if (n <= w->cap_syms) return 0;
    size_t nc = w->cap_syms ? w->cap_syms : 256;
    while (nc < n) nc *= 2;
    sym *p = realloc(w->syms, nc * sizeof *p);
    if (!p) return -1;
    w->syms = p;
    w->cap_syms = nc;
    return 0;
}

/* Cut buf into UTF-8 "characters" by lead byte, as llama.cpp does (a bad
 * lead byte may swallow the next bytes; byte fallback restores them). */
static inline int split_chars(work *w)
{
    const unsigned char *s = (const unsigned char *)w->buf.p;
    size_t n = w->buf.n;
    if (work_syms(w, n)) return -1;
    size_t k = 0, off = 0;
    while (off < n) {
        size_t l = utf8_len(s[off]);
        if (l > n - off) l = n - off;
        w->syms[k].off = (uint32_t)off;
        w->syms[k].n = (uint32_t)l;
        w->syms[k].prev = (int)k - 1;
        off += l;
        w->syms[k].next = off == n ? -1 : (int)k + 1;
        k++;
    }
    w->n_syms = k;
    return 0;
}

static inline size_t put(char *buf, size_t cap, size_t at, const void *src, size_t n)
{
    if (at < cap) memcpy(buf + at, src, at + n <= cap ? n : cap - at);
    return at + n;
}

/* ---- SentencePiece side (tokenizer_spm.c) -------------------------------- */
/* Encode one text fragment: spaces -> U+2581 (plus a leading one when
 * space_prefix), then llama.cpp's score-driven merges and byte fallback. */
int tok_spm_encode(const slm_tokenizer *t, work *w, const char *s, size_t n, int space_prefix, ivec *out,
                   slm_err *err);
/* Text of a NORMAL token ("▁" -> space), lstrip: drop one leading space. */
size_t tok_spm_normal_piece(const char *s, size_t n, int lstrip, char *buf, size_t cap);

/* ---- byte-level BPE side (tokenizer_bpe.c) ------------------------------- */
/* Whether tokenizer.ggml.pre is known; *ignore_merges and *add_bos (-1: no
 * opinion) give its defaults. */
int tok_bpe_pre_known(const char *pre, int *ignore_merges, int *add_bos);
/* Regexes of pre and GPT-2's byte table into t. */
int tok_bpe_init(slm_tokenizer *t, const char *pre, const char *path, slm_err *err);
typedef struct tok_bpe_scratch tok_bpe_scratch;
tok_bpe_scratch *tok_bpe_scratch_new(void);
void tok_bpe_scratch_free(tok_bpe_scratch *s);
/* Encode one text fragment: U+FFFD for invalid UTF-8, the pre-tokenizer, merges by rank. */
int tok_bpe_encode(const slm_tokenizer *t, tok_bpe_scratch *s, const char *text, size_t n, ivec *out, slm_err *err);
/* Text of a NORMAL token (each code point back to its byte). */
size_t tok_bpe_normal_piece(const slm_tokenizer *t, const char *s, size_t n, int lstrip, char *buf, size_t cap);

#endif
