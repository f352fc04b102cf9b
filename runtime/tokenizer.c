/* runtime/tokenizer.c — tokenizers built from GGUF tokenizer.ggml.* metadata.
 *
 * Two models, written to give the same ids as llama.cpp (src/llama-vocab.cpp):
 *  - "llama": SentencePiece-style BPE. Spaces become U+2581, a leading U+2581
 *    is added, the text is cut into UTF-8 characters and the adjacent pair
 *    whose concatenation is the highest-scoring vocabulary entry is merged
 *    until none is left; leftovers become <0xNN> byte tokens.
 *  - "gpt2": byte-level BPE. A pre-tokenizer regex (PCRE2) cuts the text into
 *    words, each word's bytes are mapped through GPT-2's bytes_to_unicode
 *    table and merged by merge rank.
 * Special (control / user-defined) token texts are cut out first, as
 * llama.cpp's tokenizer_st_partition does. See docs/tokenizers.md.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <ctype.h>
#include <stdbool.h>
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
/* Caps on untrusted metadata (far above any real vocabulary). */
#define MAX_VOCAB   (1u << 24)
#define MAX_MERGES  (1u << 24)
#define MAX_TOKLEN  (1u << 16)

/* ---- a small open-addressing hash map: byte string -> int32 ------------- */
typedef struct hslot { const char *s; uint32_t n; int32_t v; } hslot;
typedef struct hmap { hslot *slot; size_t mask; } hmap;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static int hmap_init(hmap *m, size_t n_items)
{
    size_t cap = 16;
    while (cap < 2 * n_items) cap <<= 1;
    m->slot = calloc(cap, sizeof *m->slot);
    m->mask = cap - 1;
    return m->slot ? 0 : -1;
}

static int32_t hmap_get(const hmap *m, const char *s, size_t n)
{
    size_t i = hash_bytes(s, n) & m->mask;
    for (;;) {
        const hslot *e = &m->slot[i];
        if (!e->s) return -1;
        if (e->n == n && memcmp(e->s, s, n) == 0) return e->v;
        i = (i + 1) & m->mask;
    }
}

/* Insert unless present; returns the value already stored, or -1 if inserted. */
static int32_t hmap_put(hmap *m, const char *s, uint32_t n, int32_t v)
{
    size_t i = hash_bytes(s, n) & m->mask;
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

static int ivec_push(ivec *a, int32_t x)
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

static int sbuf_reserve(sbuf *b, size_t extra)
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

static int sbuf_add(sbuf *b, const void *d, size_t n)
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

int32_t slm_tokenizer_n_vocab(const slm_tokenizer *t) { return t->n_vocab; }
int32_t slm_tokenizer_bos(const slm_tokenizer *t) { return t->bos; }
int32_t slm_tokenizer_eos(const slm_tokenizer *t) { return t->eos; }
int slm_tokenizer_add_bos(const slm_tokenizer *t) { return t->add_bos && t->bos >= 0; }
int slm_tokenizer_is_eog(const slm_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && t->eog[id];
}

void slm_tokenizer_free(slm_tokenizer *t)
{
    if (!t) return;
    free(t->arena);
    free(t->text);
    free(t->len);
    free(t->score);
    free(t->attr);
    free(t->vocab.slot);
    free(t->merge_arena);
    free(t->merges.slot);
    free(t->special);
    free(t->eog);
    for (int i = 0; i < t->n_re; i++) pcre2_code_free(t->re[i]);
    free(t);
}

/* ---- UTF-8 helpers (llama.cpp's lenient rules) -------------------------- */
/* Length of a UTF-8 sequence from its lead byte, as unicode_len_utf8. */
static size_t utf8_len(unsigned char c)
{
    static const uint8_t lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lut[c >> 4];
}

/* Decode one code point like llama.cpp's unicode_cpt_from_utf8: continuation
 * bytes are checked but overlong forms are accepted. Returns 0 and sets *adv
 * on an invalid sequence (the caller substitutes U+FFFD for one byte). */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp, size_t *adv)
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

static size_t utf8_encode(uint32_t cp, unsigned char *o)
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

/* ---- GGUF metadata access ------------------------------------------------ */
static const gguf_kv *find_kv(const gguf_file *f, const char *key)
{
    int64_t i = gguf_find_key(f, key);
    return i < 0 ? NULL : &f->kv[i];
}

/* Copy a string value into buf (NUL-terminated); 0 when present. */
static int get_str(const gguf_file *f, const char *key, char *buf, size_t cap, slm_err *err)
{
    gguf_str s;
    if (gguf_get_str(f, key, &s) != 0) return 1;
    if (s.len >= cap) {
        slm_err_set(err, SLM_EINPUT, "%s: %s: value of %llu bytes is too long", f->path, key,
                    (unsigned long long)s.len);
        return -1;
    }
    memcpy(buf, s.ptr, s.len);
    buf[s.len] = 0;
    return 0;
}

static const gguf_kv *get_arr(const gguf_file *f, const char *key, uint32_t want_type, int required,
                              slm_err *err, int *bad)
{
    const gguf_kv *kv = find_kv(f, key);
    *bad = 0;
    if (!kv) {
        if (required) {
            slm_err_set(err, SLM_EINPUT, "%s: missing key %s", f->path, key);
            *bad = 1;
        }
        return NULL;
    }
    if (kv->type != GGUF_T_ARRAY || (want_type != GGUF_T_COUNT && kv->arr_type != want_type)) {
        slm_err_set(err, SLM_EINPUT, "%s: %s: expected an array of %s, found %s", f->path, key,
                    gguf_vtype_name(want_type), gguf_vtype_name(kv->type == GGUF_T_ARRAY ? kv->arr_type : kv->type));
        *bad = 1;
        return NULL;
    }
    return kv;
}

/* Optional special-token id: llama.cpp keeps the default when the stored
 * value is out of range (converters write 0xFFFFFFFF for "none"). */
static void get_special_id(const gguf_file *f, const char *key, int32_t n_vocab, int32_t *id)
{
    int64_t v;
    if (gguf_get_int(f, key, &v) == 0 && v >= 0 && v < n_vocab) *id = (int32_t)v;
}

/* llama.cpp recognises these texts as end-of-generation tokens and forces
 * them to be control tokens (llama_vocab::impl::load). */
static const char *const EOG_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", "[e~[",
};
static const char *const EOT_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>",
    "<end_of_utterance>",
};

/* Fill-in-the-middle tokens, found by text; llama.cpp forces them to control
 * tokens, and pad/repo/file-separator also end generation. */
#define FW_BAR_OPEN "<\xef\xbd\x9c"
#define FW_BAR_CLOSE "\xef\xbd\x9c>"
static const char *const FIM_PRE_TEXTS[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
    FW_BAR_OPEN "fim\xe2\x96\x81" "begin" FW_BAR_CLOSE, "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"};
static const char *const FIM_SUF_TEXTS[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
    FW_BAR_OPEN "fim\xe2\x96\x81" "hole" FW_BAR_CLOSE, "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"};
static const char *const FIM_MID_TEXTS[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
    FW_BAR_OPEN "fim\xe2\x96\x81" "end" FW_BAR_CLOSE, "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"};
static const char *const FIM_PAD_TEXTS[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
static const char *const FIM_REP_TEXTS[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"};
static const char *const FIM_SEP_TEXTS[] = {"<|file_sep|>"};
static const char *const EOM_TEXTS[] = {"<|eom_id|>"};
#define COUNT(a) (sizeof (a) / sizeof (a)[0])

/* Id of the first text of list that is a token, or -1. (llama.cpp takes the
 * first token of its hash map's order; vocabularies hold at most one of a
 * list in practice.) */
static int32_t find_text(const slm_tokenizer *t, const char *const *list, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        int32_t id = hmap_get(&t->vocab, list[i], strlen(list[i]));
        if (id >= 0) return id;
    }
    return -1;
}

static int32_t text_id(const slm_tokenizer *t, const char *s) { return hmap_get(&t->vocab, s, strlen(s)); }

static int cmp_special(const void *a, const void *b, void *ctx)
{
    const slm_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->len[x] != t->len[y]) return t->len[x] > t->len[y] ? -1 : 1;
    return (x > y) - (x < y);
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

int slm_tokenizer_from_gguf(const gguf_file *f, slm_tokenizer **out, slm_err *err)
{
    *out = NULL;
    char model[32], pre[64];
    int r = get_str(f, "tokenizer.ggml.model", model, sizeof model, err);
    if (r < 0) return SLM_EINPUT;
    if (r > 0) return slm_err_set(err, SLM_EINPUT, "%s: missing key tokenizer.ggml.model", f->path);
    int kind;
    if (strcmp(model, "llama") == 0) kind = KIND_SPM;
    else if (strcmp(model, "gpt2") == 0) kind = KIND_BPE;
    else
        return slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.model '%s' is not supported (only 'llama' and 'gpt2')",
                           f->path, model);
    r = get_str(f, "tokenizer.ggml.pre", pre, sizeof pre, err);
    if (r < 0) return SLM_EINPUT;
    if (r > 0) pre[0] = 0;
    const pre_def *pd = NULL;
    if (kind == KIND_BPE) {
        pd = find_pre(pre[0] ? pre : "default");
        if (!pd)
            return slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.pre '%s' is not supported (known: gpt-2, default, "
                               "llama3, qwen2, smollm and their aliases)", f->path, pre);
    }

    int bad;
    const gguf_kv *ktok = get_arr(f, "tokenizer.ggml.tokens", GGUF_T_STRING, 1, err, &bad);
    if (bad) return SLM_EINPUT;
    if (ktok->arr_n == 0 || ktok->arr_n > MAX_VOCAB)
        return slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.tokens: %llu tokens (expected 1..%u)", f->path,
                           (unsigned long long)ktok->arr_n, MAX_VOCAB);
    uint32_t n = (uint32_t)ktok->arr_n;
    const gguf_kv *ksc = get_arr(f, "tokenizer.ggml.scores", GGUF_T_COUNT, 0, err, &bad);
    if (bad) return SLM_EINPUT;
    if (ksc && ksc->arr_type != GGUF_T_FLOAT32 && ksc->arr_type != GGUF_T_INT32)
        return slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.scores: expected float32 or int32 elements, found %s",
                           f->path, gguf_vtype_name(ksc->arr_type));
    if (ksc && ksc->arr_n != n)
        return slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.scores has %llu entries but tokenizer.ggml.tokens has %u",
                           f->path, (unsigned long long)ksc->arr_n, n);
    const gguf_kv *kty = get_arr(f, "tokenizer.ggml.token_type", GGUF_T_INT32, 0, err, &bad);
    if (bad) return SLM_EINPUT;
    if (kty && kty->arr_n != n)
        return slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.token_type has %llu entries but tokenizer.ggml.tokens has %u",
                           f->path, (unsigned long long)kty->arr_n, n);
    const gguf_kv *kmg = NULL;
    if (kind == KIND_BPE) {
        kmg = get_arr(f, "tokenizer.ggml.merges", GGUF_T_STRING, 1, err, &bad);
        if (bad) return SLM_EINPUT;
        if (kmg->arr_n > MAX_MERGES)
            return slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.merges: %llu merges (cap %u)", f->path,
                               (unsigned long long)kmg->arr_n, MAX_MERGES);
    }

    slm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    t->kind = kind;
    t->n_vocab = (int32_t)n;
    int rc = SLM_EINTERNAL;

    /* token texts: one arena; llama.cpp renames empty texts "[EMPTY_<id>]" */
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        gguf_str s;
        if (gguf_arr_str(ktok, i, &s) != 0) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.tokens[%u] cannot be read", f->path, i);
            goto fail;
        }
        if (s.len > MAX_TOKLEN) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.tokens[%u]: %llu bytes (cap %u)", f->path, i,
                             (unsigned long long)s.len, MAX_TOKLEN);
            goto fail;
        }
        total += (s.len ? s.len : 24) + 1;
    }
    t->arena = malloc(total);
    t->text = malloc(n * sizeof *t->text);
    t->len = malloc(n * sizeof *t->len);
    t->score = calloc(n, sizeof *t->score);
    t->attr = malloc(n * sizeof *t->attr);
    t->eog = calloc(n, 1);
    if (!t->arena || !t->text || !t->len || !t->score || !t->attr || !t->eog || hmap_init(&t->vocab, n)) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory loading %u tokens", n);
        goto fail;
    }
    char *p = t->arena;
    for (uint32_t i = 0; i < n; i++) {
        gguf_str s;
        (void)gguf_arr_str(ktok, i, &s);
        size_t l = s.len;
        if (l == 0) l = (size_t)snprintf(p, 25, "[EMPTY_%u]", i);
        else memcpy(p, s.ptr, l);
        p[l] = 0;
        t->text[i] = p;
        t->len[i] = (uint32_t)l;
        p += l + 1;
        int32_t prev = hmap_put(&t->vocab, t->text[i], t->len[i], (int32_t)i);
        if (prev >= 0) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.tokens: ids %d and %u have the same text", f->path,
                             prev, i);
            goto fail;
        }
        t->score[i] = ksc ? (float)gguf_arr_num(ksc, i) : 0.0f;
        uint16_t a = ATTR_NORMAL;
        if (kty) {
            switch ((int)gguf_arr_num(kty, i)) {
            case SLM_TOK_NORMAL: a = ATTR_NORMAL; break;
            case SLM_TOK_UNKNOWN: a = ATTR_UNKNOWN; break;
            case SLM_TOK_CONTROL: a = ATTR_CONTROL; break;
            case SLM_TOK_USER_DEFINED: a = ATTR_USER_DEFINED; break;
            case SLM_TOK_UNUSED: a = ATTR_UNUSED; break;
            case SLM_TOK_BYTE: a = ATTR_BYTE; break;
            default: a = 0; break; /* undefined: decodes to nothing, like llama.cpp */
            }
        }
        t->attr[i] = a;
    }

    /* BPE merges: "left right" (split at the first space after position 0) */
    if (kmg) {
        uint32_t nm = (uint32_t)kmg->arr_n;
        size_t mtotal = 1;
        for (uint32_t i = 0; i < nm; i++) {
            gguf_str s;
            if (gguf_arr_str(kmg, i, &s) != 0 || s.len > MAX_TOKLEN) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.merges[%u] cannot be read or is too long", f->path, i);
                goto fail;
            }
            mtotal += s.len + 1;
        }
        t->merge_arena = malloc(mtotal);
        if (!t->merge_arena || hmap_init(&t->merges, nm)) {
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory loading %u merges", nm);
            goto fail;
        }
        char *q = t->merge_arena;
        for (uint32_t i = 0; i < nm; i++) {
            gguf_str s;
            (void)gguf_arr_str(kmg, i, &s);
            const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
            if (!sp) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.merges[%u] '%.*s' is not of the form 'left right'",
                                 f->path, i, (int)(s.len > 60 ? 60 : s.len), s.ptr);
                goto fail;
            }
            memcpy(q, s.ptr, s.len);
            q[s.len] = 0;
            (void)hmap_put(&t->merges, q, (uint32_t)s.len, (int32_t)i); /* first rank wins, as in llama.cpp */
            q += s.len + 1;
        }
    }

    /* special ids and flags, with llama.cpp's defaults */
    if (kind == KIND_SPM) {
        t->bos = 1; t->eos = 2; t->unk = 0; t->pad = -1;
        t->add_bos = 1; t->add_eos = 0; t->add_space_prefix = 1;
    } else {
        t->bos = 11; t->eos = 11; t->unk = -1; t->pad = -1;
        t->add_bos = pd->add_bos > 0; t->add_eos = 0; t->add_space_prefix = 0;
        t->ignore_merges = pd->ignore_merges;
    }
    t->eot = -1;
    if (t->bos >= t->n_vocab) t->bos = -1;
    if (t->eos >= t->n_vocab) t->eos = -1;
    if (t->unk >= t->n_vocab) t->unk = -1;
    get_special_id(f, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos);
    get_special_id(f, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos);
    get_special_id(f, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk);
    get_special_id(f, "tokenizer.ggml.padding_token_id", t->n_vocab, &t->pad);
    get_special_id(f, "tokenizer.ggml.eot_token_id", t->n_vocab, &t->eot);
    int bv;
    if (gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &bv) == 0) t->add_bos = bv != 0;
    if (gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &bv) == 0) t->add_eos = bv != 0;
    if (gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", &bv) == 0) t->add_space_prefix = bv != 0;
    if (t->add_bos && t->bos < 0) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.add_bos_token is true but there is no BOS token", f->path);
        goto fail;
    }
    if (t->add_eos && t->eos < 0) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.add_eos_token is true but there is no EOS token", f->path);
        goto fail;
    }

    /* end-of-generation set, found by text as llama.cpp does (llama_vocab::impl::load):
     * EOT, EOM and FIM tokens by their keys or texts, every EOG text, then EOS/EOT/EOM */
    {
        int32_t eom = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
        get_special_id(f, "tokenizer.ggml.eom_token_id", t->n_vocab, &eom);
        get_special_id(f, "tokenizer.ggml.fim_pad_token_id", t->n_vocab, &fim_pad);
        get_special_id(f, "tokenizer.ggml.fim_rep_token_id", t->n_vocab, &fim_rep);
        get_special_id(f, "tokenizer.ggml.fim_sep_token_id", t->n_vocab, &fim_sep);
        int32_t forced[8];
        if (t->eot < 0) t->eot = find_text(t, EOT_TEXTS, COUNT(EOT_TEXTS));
        if (eom < 0) eom = find_text(t, EOM_TEXTS, COUNT(EOM_TEXTS));
        if (fim_pad < 0) fim_pad = find_text(t, FIM_PAD_TEXTS, COUNT(FIM_PAD_TEXTS));
        if (fim_rep < 0) fim_rep = find_text(t, FIM_REP_TEXTS, COUNT(FIM_REP_TEXTS));
        if (fim_sep < 0) fim_sep = find_text(t, FIM_SEP_TEXTS, COUNT(FIM_SEP_TEXTS));
        forced[0] = t->eot;
        forced[1] = eom;
        forced[2] = find_text(t, FIM_PRE_TEXTS, COUNT(FIM_PRE_TEXTS));
        forced[3] = find_text(t, FIM_SUF_TEXTS, COUNT(FIM_SUF_TEXTS));
        forced[4] = find_text(t, FIM_MID_TEXTS, COUNT(FIM_MID_TEXTS));
        forced[5] = fim_pad;
        forced[6] = fim_rep;
        forced[7] = fim_sep;
        for (int k = 0; k < 8; k++)
            if (forced[k] >= 0) t->attr[forced[k]] |= ATTR_CONTROL;
        for (int k = 5; k < 8; k++)
            if (forced[k] >= 0) t->eog[forced[k]] = 1;
        for (size_t k = 0; k < COUNT(EOG_TEXTS); k++) {
            int32_t id = text_id(t, EOG_TEXTS[k]);
            if (id < 0) continue;
            t->eog[id] = 1;
            t->attr[id] |= ATTR_CONTROL;
        }
        if (t->eos >= 0) t->eog[t->eos] = 1;
        if (t->eot >= 0) t->eog[t->eot] = 1;
        if (eom >= 0) t->eog[eom] = 1;
        /* llama.cpp's two exceptions: with <|return|> and <|call|> (or <|calls|> and
         * <|flush|>), <|end|> is not EOG but user-defined; with <|tool_response>, </s> is not
         * EOG but normal */
#define IS_EOG(s) (text_id(t, s) >= 0 && t->eog[text_id(t, s)])
        int32_t end_id = text_id(t, "<|end|>");
        if (end_id >= 0 && t->eog[end_id] &&
            ((IS_EOG("<|return|>") && (IS_EOG("<|call|>") || IS_EOG("<|calls|>"))) ||
             ((IS_EOG("<|call|>") || IS_EOG("<|calls|>")) && IS_EOG("<|flush|>")))) {
            t->eog[end_id] = 0;
            t->attr[end_id] = ATTR_USER_DEFINED;
        }
        int32_t s_id = text_id(t, "</s>");
        if (s_id >= 0 && t->eog[s_id] && IS_EOG("<|tool_response>")) {
            t->eog[s_id] = 0;
            t->attr[s_id] = ATTR_NORMAL;
        }
#undef IS_EOG
    }

    /* llama.cpp sets strip attributes by model name: Phi-3's special tokens
     * swallow the whitespace after them (except <unk>, <s>, <|endoftext|>) */
    {
        char name[256];
        slm_err ignore = {0}; /* a missing or overlong name just means "no rule" */
        if (get_str(f, "general.name", name, sizeof name, &ignore) == 0) {
            for (char *c = name; *c; c++)
                if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
            if (strstr(name, "phi-3") || strstr(name, "phi3")) {
                for (uint32_t i = 0; i < n; i++)
                    if (t->attr[i] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)) t->attr[i] |= ATTR_RSTRIP;
                int32_t id = hmap_get(&t->vocab, "</s>", 4);
                if (id >= 0) t->attr[id] |= ATTR_RSTRIP;
                static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
                for (int k = 0; k < 3; k++)
                    if ((id = hmap_get(&t->vocab, keep[k], strlen(keep[k]))) >= 0) t->attr[id] &= ~ATTR_RSTRIP;
            }
        }
    }

    /* special-token cache: longest text first */
    t->special = malloc(n * sizeof *t->special);
    if (!t->special) goto oom;
    for (uint32_t i = 0; i < n; i++)
        if (t->attr[i] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)) t->special[t->n_special++] = (int32_t)i;
    qsort_r(t->special, t->n_special, sizeof *t->special, cmp_special, t);

    /* byte fallback ids (SPM: "<0xNN>", else the byte itself as a token) */
    for (int b = 0; b < 256; b++) {
        char hx[8];
        snprintf(hx, sizeof hx, "<0x%02X>", b);
        int32_t id = hmap_get(&t->vocab, hx, 6);
        if (id < 0) {
            char c = (char)b;
            id = hmap_get(&t->vocab, &c, 1);
        }
        t->byte_tok[b] = id;
    }
    build_byte_tables(t);
    if (kind == KIND_BPE && (rc = compile_regexes(t, pd, f->path, err)) != 0) goto fail;

    *out = t;
    return 0;
oom:
    rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
fail:
    slm_tokenizer_free(t);
    return rc;
}

/* ---- special-token partition (tokenizer_st_partition) ------------------- */
typedef struct frag { int32_t token; size_t off, len; } frag; /* token < 0: raw text [off, off+len) */
typedef struct fvec { frag *v; size_t n, cap; } fvec;

static int fvec_push(fvec *a, frag x)
{
    if (a->n == a->cap) {
        size_t nc = a->cap ? 2 * a->cap : 16;
        frag *p = realloc(a->v, nc * sizeof *p);
        if (!p) return -1;
        a->v = p;
        a->cap = nc;
    }
    a->v[a->n++] = x;
    return 0;
}

static int partition(const slm_tokenizer *t, const char *text, size_t len, int parse_special, fvec *out)
{
    fvec cur = {0}, next = {0};
    if (len > 0 && fvec_push(&cur, (frag){-1, 0, len})) return -1;
    for (size_t k = 0; k < t->n_special; k++) {
        int32_t id = t->special[k];
        if (!parse_special && (t->attr[id] & (ATTR_CONTROL | ATTR_UNKNOWN))) continue;
        const char *st = t->text[id];
        size_t sl = t->len[id];
        next.n = 0;
        for (size_t i = 0; i < cur.n; i++) {
            frag fr = cur.v[i];
            if (fr.token >= 0 || fr.len < sl) {
                if (fvec_push(&next, fr)) goto oom;
                continue;
            }
            size_t pos = fr.off, end = fr.off + fr.len;
            for (;;) {
                const char *m = memmem(text + pos, end - pos, st, sl);
                if (!m) break;
                size_t mo = (size_t)(m - text), left = mo;
                if (t->attr[id] & ATTR_LSTRIP)
                    while (left > pos && isspace((unsigned char)text[left - 1])) left--;
                if (left > pos && fvec_push(&next, (frag){-1, pos, left - pos})) goto oom;
                if (fvec_push(&next, (frag){id, 0, 0})) goto oom;
                pos = mo + sl;
                if (t->attr[id] & ATTR_RSTRIP)
                    while (pos < end && isspace((unsigned char)text[pos])) pos++;
            }
            if (pos < end && fvec_push(&next, (frag){-1, pos, end - pos})) goto oom;
        }
        fvec tmp = cur;
        cur = next;
        next = tmp;
    }
    free(next.v);
    *out = cur;
    return 0;
oom:
    free(cur.v);
    free(next.v);
    return -1;
}

/* ---- SentencePiece-style BPE (llm_tokenizer_spm) ------------------------ */
typedef struct sym { int prev, next; uint32_t off, n; } sym;
typedef struct spm_bigram { int left, right; float score; uint32_t size; } spm_bigram;

static bool spm_higher(const spm_bigram *a, const spm_bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct spm_heap { spm_bigram *v; size_t n, cap; } spm_heap;

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

typedef struct work {
    sbuf buf;        /* normalised text of the current fragment / word */
    sym *syms;
    size_t n_syms, cap_syms;
    spm_heap heap;
} work;

static int work_syms(work *w, size_t n)
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
static int split_chars(work *w)
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

int slm_tokenize(const slm_tokenizer *t, const char *text, size_t len, int add_bos, int parse_special,
                 int32_t **ids, size_t *n_ids, slm_err *err)
{
    *ids = NULL;
    *n_ids = 0;
    ivec out = {0};
    fvec frags = {0};
    work w = {0};
    bpe_ctx bc = {{0}};
    sbuf clean = {0};
    spvec pieces = {0};
    int rc = 0;
    if (!text && len) return slm_err_set(err, SLM_EINPUT, "tokenize: NULL text");
    if (len > (size_t)INT32_MAX / 4)
        return slm_err_set(err, SLM_EINPUT, "tokenize: text of %zu bytes is too long", len);
    if (partition(t, text, len, parse_special, &frags)) goto oom;
    if (add_bos) {
        if (t->bos < 0) {
            rc = slm_err_set(err, SLM_EINPUT, "tokenize: BOS requested but the model has no BOS token");
            goto done;
        }
        if (ivec_push(&out, t->bos)) goto oom;
    }
    int prev_special = 1; /* SPM: a space prefix goes before the first text and after specials */
    for (size_t i = 0; i < frags.n; i++) {
        const frag *fr = &frags.v[i];
        if (fr->token >= 0) {
            if (ivec_push(&out, fr->token)) goto oom;
            prev_special = 1;
            continue;
        }
        const char *s = text + fr->off;
        if (t->kind == KIND_SPM) {
            w.buf.n = 0;
            if (sbuf_reserve(&w.buf, 3 * fr->len + 3)) goto oom;
            char *o = w.buf.p;
            if (t->add_space_prefix && prev_special) {
                memcpy(o, "\xe2\x96\x81", 3);
                o += 3;
            }
            for (size_t j = 0; j < fr->len; j++) {
                if (s[j] == ' ') {
                    memcpy(o, "\xe2\x96\x81", 3);
                    o += 3;
                } else {
                    *o++ = s[j];
                }
            }
            w.buf.n = (size_t)(o - w.buf.p);
            if ((rc = spm_encode(t, &w, &out, err)) != 0) goto done;
        } else {
            if (utf8_clean(s, fr->len, &clean)) goto oom;
            if ((rc = regex_split(t, clean.p, clean.n, &pieces, err)) != 0) goto done;
            for (size_t k = 0; k < pieces.n; k++)
                if (bpe_word(t, &w, &bc, clean.p + pieces.v[k].off, pieces.v[k].len, &out)) goto oom;
        }
        prev_special = 0;
    }
    if (add_bos && t->add_eos && t->eos >= 0) { /* llama.cpp adds both under add_special */
        if (ivec_push(&out, t->eos)) goto oom;
    }
    *ids = out.v;
    *n_ids = out.n;
    out.v = NULL;
    goto done;
oom:
    rc = slm_err_set(err, SLM_EINTERNAL, "tokenize: out of memory");
done:
    free(out.v);
    free(frags.v);
    free(w.buf.p);
    free(w.syms);
    free(w.heap.v);
    free(bc.key.p);
    free(clean.p);
    free(pieces.v);
    return rc;
}

/* ---- decoding ----------------------------------------------------------- */
static size_t put(char *buf, size_t cap, size_t at, const void *src, size_t n)
{
    if (at < cap) memcpy(buf + at, src, at + n <= cap ? n : cap - at);
    return at + n;
}

/* Piece of one token with up to lstrip leading spaces removed. */
static size_t piece(const slm_tokenizer *t, int32_t id, int special, int lstrip, char *buf, size_t cap)
{
    if (id < 0 || id >= t->n_vocab) return 0;
    uint16_t a = t->attr[id];
    if (!special && (a & (ATTR_UNKNOWN | ATTR_CONTROL))) return 0;
    const char *s = t->text[id];
    size_t n = t->len[id], o = 0;
    if (a & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED)) {
        if (lstrip && n && s[0] == ' ') { s++; n--; }
        return put(buf, cap, 0, s, n);
    }
    if (a & ATTR_BYTE) {
        if (n < 5) return 0;
        char hx[3] = {s[3], s[4], 0};
        char b = (char)strtol(hx, NULL, 16);
        if (lstrip && b == ' ') return 0;
        return put(buf, cap, 0, &b, 1);
    }
    if (!(a & ATTR_NORMAL)) return 0;
    if (t->kind == KIND_SPM) {
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
    /* GPT-2: every code point maps back to one byte (llama_decode_text) */
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

size_t slm_token_to_piece(const slm_tokenizer *t, int32_t id, int special, char *buf, size_t cap)
{
    return piece(t, id, special, 0, buf, cap);
}

char *slm_detokenize(const slm_tokenizer *t, const int32_t *ids, size_t n, int special)
{
    sbuf out = {0};
    char tmp[256];
    /* llama_detokenize: the first token (whatever it is) loses one leading
     * space when the model adds a space prefix. */
    int lstrip = t->add_space_prefix;
    for (size_t i = 0; i < n; i++) {
        int ls = lstrip;
        lstrip = 0;
        size_t k = piece(t, ids[i], special, ls, tmp, sizeof tmp);
        if (k > sizeof tmp) {
            if (sbuf_reserve(&out, k)) goto oom;
            piece(t, ids[i], special, ls, out.p + out.n, k);
            out.n += k;
        } else if (sbuf_add(&out, tmp, k)) {
            goto oom;
        }
    }
    if (sbuf_reserve(&out, 1)) goto oom;
    out.p[out.n] = 0;
    return out.p;
oom:
    free(out.p);
    return NULL;
}
