/* runtime/tokenizer.c — tokenizers built from GGUF tokenizer.ggml.* metadata:
 * what both kinds share. Loading and validating the metadata, llama.cpp's
 * special-token rules (end of generation, forced control tokens, strip
 * attributes), the special-token partition of the input
 * (tokenizer_st_partition), and decoding. The two encoders, written to give
 * the same ids as llama.cpp (src/llama-vocab.cpp), live in
 * runtime/tokenizer_spm.c ("llama": SentencePiece-style BPE) and
 * runtime/tokenizer_bpe.c ("gpt2": byte-level BPE). See docs/tokenizers.md.
 */
#include <ctype.h>

#include "tok_internal.h"

/* Caps on untrusted metadata (far above any real vocabulary). */
#define MAX_VOCAB   (1u << 24)
#define MAX_MERGES  (1u << 24)
#define MAX_TOKLEN  (1u << 16)

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

/* Inserts keys[i] -> i for i in [0, n), first occurrence winning. The hashes
 * are computed first and each slot is prefetched a few keys ahead: a 262k
 * vocabulary otherwise waits on a cache miss per insert. With dup set, stops
 * at the first repeated key and returns 1 with *dup its index and *prev the
 * index stored first; -1 when out of memory. */
static int hmap_put_all(hmap *m, const char *const *keys, const uint32_t *lens, uint32_t n, uint32_t *dup,
                        int32_t *prev)
{
    enum { AHEAD = 16 };
    uint64_t *h = malloc((n ? n : 1) * sizeof *h);
    if (!h) return -1;
    for (uint32_t i = 0; i < n; i++) h[i] = hash_bytes(keys[i], lens[i]);
    int rc = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i + AHEAD < n) __builtin_prefetch(&m->slot[h[i + AHEAD] & m->mask], 1);
        int32_t p = hmap_put_hashed(m, keys[i], lens[i], (int32_t)i, h[i]);
        if (p >= 0 && dup) {
            *dup = i;
            *prev = p;
            rc = 1;
            break;
        }
    }
    free(h);
    return rc;
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
    int pre_ignore_merges = 0, pre_add_bos = -1;
    if (kind == KIND_BPE) {
        if (!pre[0]) snprintf(pre, sizeof pre, "default");
        if (!tok_bpe_pre_known(pre, &pre_ignore_merges, &pre_add_bos))
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
    {
        uint32_t dup = 0;
        int32_t prev = -1;
        int r2 = hmap_put_all(&t->vocab, t->text, t->len, n, &dup, &prev);
        if (r2 < 0) goto oom;
        if (r2 > 0) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.tokens: ids %d and %u have the same text", f->path,
                             prev, dup);
            goto fail;
        }
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
        const char **mkeys = malloc((nm ? nm : 1) * sizeof *mkeys);
        uint32_t *mlens = malloc((nm ? nm : 1) * sizeof *mlens);
        if (!mkeys || !mlens) {
            free(mkeys);
            free(mlens);
            goto oom;
        }
        for (uint32_t i = 0; i < nm; i++) {
            gguf_str s;
            (void)gguf_arr_str(kmg, i, &s);
            const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
            if (!sp) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.merges[%u] '%.*s' is not of the form 'left right'",
                                 f->path, i, (int)(s.len > 60 ? 60 : s.len), s.ptr);
                free(mkeys);
                free(mlens);
                goto fail;
            }
            memcpy(q, s.ptr, s.len);
            q[s.len] = 0;
            mkeys[i] = q;
            mlens[i] = (uint32_t)s.len;
            q += s.len + 1;
        }
        int r2 = hmap_put_all(&t->merges, mkeys, mlens, nm, NULL, NULL); /* first rank wins, as in llama.cpp */
        free(mkeys);
        free(mlens);
        if (r2 < 0) goto oom;
    }

    /* special ids and flags, with llama.cpp's defaults */
    if (kind == KIND_SPM) {
        t->bos = 1; t->eos = 2; t->unk = 0; t->pad = -1;
        t->add_bos = 1; t->add_eos = 0; t->add_space_prefix = 1;
    } else {
        t->bos = 11; t->eos = 11; t->unk = -1; t->pad = -1;
        t->add_bos = pre_add_bos > 0; t->add_eos = 0; t->add_space_prefix = 0;
        t->ignore_merges = pre_ignore_merges;
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
    if (kind == KIND_BPE && (rc = tok_bpe_init(t, pre, f->path, err)) != 0) goto fail;

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

int slm_tokenize(const slm_tokenizer *t, const char *text, size_t len, int add_bos, int parse_special,
                 int32_t **ids, size_t *n_ids, slm_err *err)
{
    *ids = NULL;
    *n_ids = 0;
    ivec out = {0};
    fvec frags = {0};
    work w = {0};
    tok_bpe_scratch *bs = NULL;
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
            if ((rc = tok_spm_encode(t, &w, s, fr->len, t->add_space_prefix && prev_special, &out, err)) != 0) goto done;
        } else {
            if (!bs && !(bs = tok_bpe_scratch_new())) goto oom;
            if ((rc = tok_bpe_encode(t, bs, s, fr->len, &out, err)) != 0) goto done;
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
    tok_bpe_scratch_free(bs);
    return rc;
}

/* ---- decoding ----------------------------------------------------------- */
/* Piece of one token with up to lstrip leading spaces removed. */
static size_t piece(const slm_tokenizer *t, int32_t id, int special, int lstrip, char *buf, size_t cap)
{
    if (id < 0 || id >= t->n_vocab) return 0;
    uint16_t a = t->attr[id];
    if (!special && (a & (ATTR_UNKNOWN | ATTR_CONTROL))) return 0;
    const char *s = t->text[id];
    size_t n = t->len[id];
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
    if (t->kind == KIND_SPM) return tok_spm_normal_piece(s, n, lstrip, buf, cap);
    return tok_bpe_normal_piece(t, s, n, lstrip, buf, cap);
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

int slm_tokenize_prompt(const slm_tokenizer *t, const char *text, size_t len, int add_bos, int parse_special,
                        int32_t **ids, size_t *n_ids, slm_err *err)
{
    int rc = slm_tokenize(t, text, len, add_bos, parse_special, ids, n_ids, err);
    if (rc || *n_ids)
        return rc;
    int32_t start = slm_tokenizer_bos(t) >= 0 ? slm_tokenizer_bos(t) : slm_tokenizer_eos(t);
    if (start < 0)
        return slm_err_set(err, SLM_EINPUT, "empty prompt and the model has no BOS/EOS token to start from");
    free(*ids);
    if (!(*ids = malloc(sizeof **ids)))
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    (*ids)[0] = start;
    *n_ids = 1;
    return SLM_OK;
}
