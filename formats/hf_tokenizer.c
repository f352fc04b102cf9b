/* formats/hf_tokenizer.c — Hugging Face tokenizer.json -> llama.cpp tokenizer metadata.
 *
 * Two families are understood, as llama.cpp's convert_hf_to_gguf.py sees them:
 *  - SentencePiece-style BPE (byte_fallback, "▁" normalizer or Metaspace):
 *    tokenizer.ggml.model "llama", pre "default", scores = -rank of the
 *    normal pieces (what the sentencepiece .model stores for BPE models);
 *  - GPT-2 byte-level BPE: model "gpt2", merges as "a b" strings, pre chosen
 *    from the pre-tokenizer's shape (gpt-2, qwen2, llama-bpe, smollm).
 * Per architecture, the rules of llama.cpp's converter class are followed:
 * Gemma 3 (its SentencePiece path: added tokens of tokenizer_config.json become
 * CONTROL/USER_DEFINED with score -1000, add_space_prefix false), Phi-3 (every
 * added token USER_DEFINED or CONTROL by its "special" flag, score -1000),
 * Llama (add_prefix_space of tokenizer_config.json). See docs/tokenizers.md.
 * Everything read from the files is untrusted: ids, counts and merge
 * references are validated and refused with one-line messages.
 */
#include "formats.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HF_TOK_MAX_TOKENS 10000000u           /* documented cap on n_tokens */
#define HF_TOK_MAX_FILE (1024ull * 1024 * 1024) /* 1 GiB for any tokenizer file */

/* ---- small helpers ------------------------------------------------------ */

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* Reads a whole file (NUL-terminated). *out = NULL (and OK) when the file is
 * absent and optional. */
static int read_small_file(const char *dir, const char *name, bool optional, char **out, size_t *out_n,
                           slm_err *err)
{
    *out = NULL;
    char *path = path_join(dir, name);
    if (!path)
        return slm_err_set(err, SLM_EINTERNAL, "%s: out of memory", name);
    /* O_NONBLOCK: a FIFO is refused below (not a regular file), never waited on */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!f) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (optional && e == ENOENT) {
            free(path);
            return SLM_OK;
        }
        slm_err_set(err, SLM_EIO, "%s: cannot open: %s", path, strerror(e));
        free(path);
        return SLM_EIO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        slm_err_set(err, SLM_EIO, "%s: not a regular file", path);
        free(path);
        return SLM_EIO;
    }
    if ((unsigned long long)st.st_size > HF_TOK_MAX_FILE) {
        fclose(f);
        slm_err_set(err, SLM_EINPUT, "%s: %lld bytes is larger than the 1 GiB limit for tokenizer files",
                    path, (long long)st.st_size);
        free(path);
        return SLM_EINPUT;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        free(path);
        return slm_err_set(err, SLM_EINTERNAL, "%s: out of memory", name);
    }
    size_t got = fread(buf, 1, n, f);
    int rd_err = ferror(f);
    fclose(f);
    if (got != n || rd_err) {
        slm_err_set(err, SLM_EIO, "%s: read error", path);
        free(buf);
        free(path);
        return SLM_EIO;
    }
    buf[n] = 0;
    free(path);
    *out = buf;
    *out_n = n;
    return SLM_OK;
}

/* Reads and parses a JSON file. *out = NULL (and OK) when the file is absent
 * and optional. */
static int load_json(const char *dir, const char *name, bool optional, cJSON **out, slm_err *err)
{
    *out = NULL;
    char *buf;
    size_t n;
    int rc = read_small_file(dir, name, optional, &buf, &n, err);
    if (rc || !buf)
        return rc;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, n, &end, 0);
    if (!j) {
        long off = end ? (long)(end - buf) : -1;
        slm_err_set(err, SLM_EINPUT, "%s/%s: malformed JSON near byte %ld", dir, name, off);
        free(buf);
        return SLM_EINPUT;
    }
    free(buf);
    *out = j;
    return SLM_OK;
}

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A special token entry of tokenizer_config.json / special_tokens_map.json:
 * a string or an object {"content": "..."}. */
static const char *special_content(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsObject(v))
        return json_str(v, "content");
    return NULL;
}

/* Integer-valued JSON number in [0, limit). */
static bool json_id(const cJSON *v, double limit, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d < limit) || d != floor(d))
        return false;
    *out = (int64_t)d;
    return true;
}

/* ---- string -> id hash table (open addressing) ------------------------- */

typedef struct str_map {
    const char **keys;
    int32_t *ids;
    size_t cap; /* power of two */
} str_map;

static uint64_t str_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a: a table index, not security */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int map_init(str_map *m, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n + 1)
        cap <<= 1;
    m->cap = cap;
    m->keys = calloc(cap, sizeof *m->keys);
    m->ids = malloc(cap * sizeof *m->ids);
    return m->keys && m->ids ? 0 : -1;
}

static void map_free(str_map *m)
{
    free(m->keys);
    free(m->ids);
    memset(m, 0, sizeof *m);
}

/* Looks up s[0..n); returns the id or -1. */
static int32_t map_get_n(const str_map *m, const char *s, size_t n)
{
    size_t mask = m->cap - 1, i = str_hash(s, n) & mask;
    while (m->keys[i]) {
        if (strlen(m->keys[i]) == n && memcmp(m->keys[i], s, n) == 0)
            return m->ids[i];
        i = (i + 1) & mask;
    }
    return -1;
}

static int32_t map_get(const str_map *m, const char *s) { return map_get_n(m, s, strlen(s)); }

/* Inserts; returns the existing id when s is already present, else -1. */
static int32_t map_put(str_map *m, const char *s, int32_t id)
{
    size_t n = strlen(s), mask = m->cap - 1, i = str_hash(s, n) & mask;
    while (m->keys[i]) {
        if (strcmp(m->keys[i], s) == 0)
            return m->ids[i];
        i = (i + 1) & mask;
    }
    m->keys[i] = s;
    m->ids[i] = id;
    return -1;
}

/* ---- family and pre-tokenizer detection -------------------------------- */

/* Split regexes as they appear in tokenizer.json (facts from llama.cpp's
 * llama-vocab.cpp, which quotes the original patterns). */
static const char RE_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
static const char RE_GPT2_TAIL[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static bool is_type(const cJSON *o, const char *type)
{
    const char *t = cJSON_IsObject(o) ? json_str(o, "type") : NULL;
    return t && strcmp(t, type) == 0;
}

/* True when o is (or is a Sequence holding) a component of the given type. */
static bool has_component(const cJSON *o, const char *list_key, const char *type)
{
    if (is_type(o, type))
        return true;
    if (is_type(o, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, list_key);
        const cJSON *it;
        cJSON_ArrayForEach(it, arr)
        {
            if (has_component(it, list_key, type))
                return true;
        }
    }
    return false;
}

static bool bool_or(const cJSON *o, const char *key, bool dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* tokenizer.ggml.pre for a byte-level tokenizer, from the pre-tokenizer's
 * shape. Returns NULL (and names the problem in why) when not recognised. */
static const char *detect_pre(const cJSON *pre, char *why, size_t why_n)
{
    if (is_type(pre, "ByteLevel")) {
        if (!bool_or(pre, "use_regex", true)) {
            snprintf(why, why_n, "ByteLevel pre-tokenizer without its regex");
            return NULL;
        }
        return "gpt-2";
    }
    if (!is_type(pre, "Sequence")) {
        snprintf(why, why_n, "pre-tokenizer type '%s'",
                 cJSON_IsObject(pre) && json_str(pre, "type") ? json_str(pre, "type") : "none");
        return NULL;
    }
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
    int n = cJSON_GetArraySize(arr);
    const cJSON *a = n == 2 ? cJSON_GetArrayItem(arr, 0) : NULL;
    const cJSON *b = n == 2 ? cJSON_GetArrayItem(arr, 1) : NULL;
    if (n == 2 && is_type(a, "Digits") && bool_or(a, "individual_digits", false) && is_type(b, "ByteLevel") &&
        bool_or(b, "use_regex", true))
        return "smollm"; /* digits one by one, then the GPT-2 regex */
    if (n == 2 && is_type(a, "Split") && is_type(b, "ByteLevel") && !bool_or(b, "use_regex", true)) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(a, "pattern");
        const char *re = cJSON_IsObject(pat) ? json_str(pat, "Regex") : NULL;
        if (re) {
            if (strcmp(re, RE_GPT2) == 0 || strcmp(re, RE_GPT2_TAIL) == 0)
                return "gpt-2";
            if (strcmp(re, RE_QWEN2) == 0)
                return "qwen2";
            if (strcmp(re, RE_LLAMA3) == 0)
                return "llama-bpe";
        }
        snprintf(why, why_n, "Split pre-tokenizer regex %.200s%s", re ? re : "(not a regex)",
                 re && strlen(re) > 200 ? "..." : "");
        return NULL;
    }
    snprintf(why, why_n, "Sequence pre-tokenizer of %d parts not matching a known layout", n);
    return NULL;
}

/* Added tokens that are not flagged special but that llama.cpp's converter
 * still treats as control tokens by their spelling. */
static bool looks_special(const char *s)
{
    size_t n = strlen(s);
    if (!strcmp(s, "<pad>") || !strcmp(s, "<mask>") || !strcmp(s, "<2mass>") || !strcmp(s, "[@BOS@]"))
        return true;
    if (n >= 4 && !strncmp(s, "<|", 2) && !strcmp(s + n - 2, "|>"))
        return true;
    static const char fw_open[] = "<\xef\xbd\x9c", fw_close[] = "\xef\xbd\x9c>"; /* "<｜" "｜>" */
    if (n >= 8 && !strncmp(s, fw_open, 4) && !strcmp(s + n - 4, fw_close))
        return true;
    if (n >= 8 && !strncmp(s, "<unused", 7) && s[n - 1] == '>')
        return true;
    return false;
}

static bool is_byte_piece(const char *s)
{
    static const char hex[] = "0123456789ABCDEFabcdef";
    return strlen(s) == 6 && !strncmp(s, "<0x", 3) && s[3] && strchr(hex, s[3]) && s[4] &&
           strchr(hex, s[4]) && s[5] == '>';
}

/* ---- loader ------------------------------------------------------------- */

enum { ADDED_NONE = 0, ADDED_SPECIAL = 1, ADDED_PLAIN = 2 };

/* Which of llama.cpp's converter paths a SentencePiece-style tokenizer takes. */
enum { FAM_DEFAULT = 0, FAM_GEMMA3 = 1, FAM_PHI3 = 2, FAM_LLAMA = 3 };

typedef struct loader {
    const char *dir;
    slm_err *err;
    cJSON *tj, *tcfg, *stmap, *gen, *cfgj;
    hf_tokenizer *tok;
    str_map map;
    uint8_t *added;      /* per id: ADDED_* */
    int32_t *first_rank; /* per id: rank of the first merge producing it, or -1 */
    bool llama;
    int family;
    uint32_t n_merges_seen;
    uint32_t vocab_cap;  /* SentencePiece paths: added ids at or above config.json vocab_size are ignored */
} loader;

static int oom(loader *L) { return slm_err_set(L->err, SLM_EINTERNAL, "tokenizer.json: out of memory"); }

/* Id of a special token's text: added tokens first (as llama.cpp does), then
 * the whole vocabulary. -1 when unknown. */
static int64_t id_of_content(loader *L, const char *content)
{
    if (!content)
        return -1;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(L->tj, "added_tokens");
    const cJSON *it;
    cJSON_ArrayForEach(it, added)
    {
        const char *c = json_str(it, "content");
        int64_t id;
        if (c && !strcmp(c, content) && json_id(cJSON_GetObjectItemCaseSensitive(it, "id"), L->tok->n_tokens, &id))
            return id;
    }
    return map_get(&L->map, content);
}

static int64_t pick_special(loader *L, const char *key)
{
    int64_t id = -1;
    if (L->tcfg)
        id = id_of_content(L, special_content(L->tcfg, key));
    if (id < 0 && L->stmap)
        id = id_of_content(L, special_content(L->stmap, key));
    return id;
}

/* {typ}_token_id of config.json (an integer only, as llama.cpp's SpecialVocab). */
static int64_t cfg_id(loader *L, const char *key)
{
    if (!L->cfgj)
        return -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(L->cfgj, key);
    if (!v) {
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(L->cfgj, "text_config");
        v = cJSON_IsObject(tc) ? cJSON_GetObjectItemCaseSensitive(tc, key) : NULL;
    }
    int64_t id;
    return json_id(v, L->tok->n_tokens, &id) ? id : -1;
}

/* bos_token_id / eos_token_id of generation_config.json (an int or a list). */
static int64_t gen_id(loader *L, const char *key)
{
    if (!L->gen)
        return -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(L->gen, key);
    if (cJSON_IsArray(v))
        v = cJSON_GetArrayItem(v, 0);
    int64_t id;
    return json_id(v, L->tok->n_tokens, &id) ? id : -1;
}

static int read_vocab(loader *L, const cJSON *model, const hf_config *cfg)
{
    hf_tokenizer *tok = L->tok;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab))
        return slm_err_set(L->err, SLM_EINPUT, "tokenizer.json: model.vocab is not an object");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(L->tj, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return slm_err_set(L->err, SLM_EINPUT, "tokenizer.json: added_tokens is not an array");

    /* Pass 1: ids valid, highest id. */
    int64_t max_id = -1, id;
    size_t n_entries = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab)
    {
        if (!json_id(it, HF_TOK_MAX_TOKENS, &id))
            return slm_err_set(L->err, SLM_EINPUT,
                               "tokenizer.json: vocab entry '%.100s': id is not an integer in [0, %u)",
                               it->string, HF_TOK_MAX_TOKENS);
        if (id > max_id)
            max_id = id;
        n_entries++;
    }
    cJSON_ArrayForEach(it, added)
    {
        const char *c = json_str(it, "content");
        if (!c)
            return slm_err_set(L->err, SLM_EINPUT, "tokenizer.json: an added token has no \"content\" string");
        if (!json_id(cJSON_GetObjectItemCaseSensitive(it, "id"), HF_TOK_MAX_TOKENS, &id))
            return slm_err_set(L->err, SLM_EINPUT,
                               "tokenizer.json: added token '%.100s': id is not an integer in [0, %u)", c,
                               HF_TOK_MAX_TOKENS);
        if (L->vocab_cap && id >= L->vocab_cap)
            continue; /* llama.cpp: "ignore token: id is out of range" */
        if (id > max_id)
            max_id = id;
        n_entries++;
    }
    if (max_id < 0)
        return slm_err_set(L->err, SLM_EINPUT, "tokenizer.json: the vocabulary is empty");
    uint64_t n = (uint64_t)max_id + 1;
    /* gaps become [PAD] tokens; a handful is normal, but a tiny file must not
     * make us build millions of them */
    if (n > 2 * (uint64_t)n_entries + 1024)
        return slm_err_set(L->err, SLM_EINPUT,
                           "tokenizer.json: ids go up to %lld but only %zu tokens are defined (too sparse)",
                           (long long)max_id, n_entries);
    if (cfg && cfg->n_vocab > 0) {
        if ((uint64_t)cfg->n_vocab < n)
            return slm_err_set(L->err, SLM_EINPUT,
                               "tokenizer.json: %llu tokens but config.json vocab_size is only %d",
                               (unsigned long long)n, cfg->n_vocab);
        if ((uint64_t)cfg->n_vocab > HF_TOK_MAX_TOKENS)
            return slm_err_set(L->err, SLM_EINPUT, "config.json: vocab_size %d is above the %u-token cap",
                               cfg->n_vocab, HF_TOK_MAX_TOKENS);
        n = (uint64_t)cfg->n_vocab; /* padded embedding: pad with [PAD<id>] */
    }
    tok->n_tokens = (uint32_t)n;
    tok->tokens = calloc(n, sizeof *tok->tokens);
    tok->types = calloc(n, sizeof *tok->types);
    L->added = calloc(n, 1);
    if (!tok->tokens || !tok->types || !L->added || map_init(&L->map, n_entries + 1) != 0)
        return oom(L);

    /* Pass 2: place the strings; no id twice, no string twice. */
    cJSON_ArrayForEach(it, vocab)
    {
        (void)json_id(it, HF_TOK_MAX_TOKENS, &id);
        if (tok->tokens[id])
            return slm_err_set(L->err, SLM_EINPUT, "tokenizer.json: id %lld is used by both '%.100s' and '%.100s'",
                               (long long)id, tok->tokens[id], it->string);
        if (!(tok->tokens[id] = strdup(it->string)))
            return oom(L);
        int32_t prev = map_put(&L->map, tok->tokens[id], (int32_t)id);
        if (prev >= 0)
            return slm_err_set(L->err, SLM_EINPUT, "tokenizer.json: token '%.100s' appears twice (ids %d and %lld)",
                               it->string, prev, (long long)id);
    }
    cJSON_ArrayForEach(it, added)
    {
        const char *c = json_str(it, "content");
        (void)json_id(cJSON_GetObjectItemCaseSensitive(it, "id"), HF_TOK_MAX_TOKENS, &id);
        if (L->vocab_cap && id >= L->vocab_cap)
            continue;
        if (L->added[id])
            return slm_err_set(L->err, SLM_EINPUT, "tokenizer.json: added token id %lld appears twice", (long long)id);
        L->added[id] = bool_or(it, "special", false) ? ADDED_SPECIAL : ADDED_PLAIN;
        if (tok->tokens[id]) {
            /* Added tokens often repeat a vocab entry (e.g. <unk>); they must agree. */
            if (strcmp(tok->tokens[id], c) != 0)
                return slm_err_set(L->err, SLM_EINPUT,
                                   "tokenizer.json: added token '%.100s' has id %lld, which the vocab gives to '%.100s'",
                                   c, (long long)id, tok->tokens[id]);
            continue;
        }
        if (!(tok->tokens[id] = strdup(c)))
            return oom(L);
        int32_t prev = map_put(&L->map, tok->tokens[id], (int32_t)id);
        if (prev >= 0)
            return slm_err_set(L->err, SLM_EINPUT,
                               "tokenizer.json: added token '%.100s' (id %lld) duplicates token id %d", c,
                               (long long)id, prev);
    }
    return SLM_OK;
}

/* SentencePiece scores. A .model file scores its normal pieces by merge
 * priority; tokenizer.json keeps that priority only as the order of the
 * merges. When the ids of the merged pieces follow the merge order (the usual
 * sentencepiece layout) the score is -(rank among normal pieces by id), which
 * is exactly what the .model stores; otherwise (Llama 2's "▁▁" pieces, Gemma
 * 3's whitespace runs) it is -(rank of the first merge producing the piece),
 * which gives llama.cpp's score-driven merging the order HF's BPE uses. */
static bool merge_order_follows_ids(const loader *L)
{
    const hf_tokenizer *tok = L->tok;
    int32_t last = -1;
    for (uint32_t i = 0; i < tok->n_tokens; i++) {
        if (tok->types[i] != SLM_TOK_NORMAL || L->first_rank[i] < 0)
            continue;
        if (L->first_rank[i] < last)
            return false;
        last = L->first_rank[i];
    }
    return true;
}

/* Token types (and scores for the llama family). Ids without a token (gaps,
 * or a padded embedding) become "[PAD<id>]" UNUSED, as llama.cpp does. */
static int assign_types(loader *L, const char *unk_text)
{
    hf_tokenizer *tok = L->tok;
    if (L->llama && !(tok->scores = calloc(tok->n_tokens, sizeof *tok->scores)))
        return oom(L);
    /* Gemma 3 / Phi-3: llama.cpp overwrites every added token (score -1000). */
    bool overlay = L->llama && (L->family == FAM_GEMMA3 || L->family == FAM_PHI3);
    for (uint32_t i = 0; i < tok->n_tokens; i++) {
        int32_t t;
        if (!tok->tokens[i]) {
            char buf[32];
            snprintf(buf, sizeof buf, "[PAD%u]", i);
            if (!(tok->tokens[i] = strdup(buf)))
                return oom(L);
            tok->types[i] = SLM_TOK_UNUSED;
            if (L->llama)
                tok->scores[i] = -10000.0f; /* llama.cpp's score for padding pieces */
            continue;
        }
        const char *s = tok->tokens[i];
        if (overlay && L->added[i]) {
            if (L->family == FAM_PHI3)
                t = L->added[i] == ADDED_SPECIAL ? SLM_TOK_CONTROL : SLM_TOK_USER_DEFINED;
            else
                t = L->added[i] == ADDED_SPECIAL || looks_special(s) ? SLM_TOK_CONTROL : SLM_TOK_USER_DEFINED;
            tok->scores[i] = -1000.0f;
            tok->types[i] = t;
            continue;
        }
        if (unk_text && !strcmp(s, unk_text))
            t = SLM_TOK_UNKNOWN;
        else if (L->added[i] == ADDED_SPECIAL || (L->added[i] && !L->llama && looks_special(s)))
            t = SLM_TOK_CONTROL;
        else if (L->added[i] == ADDED_PLAIN)
            t = SLM_TOK_USER_DEFINED;
        else if (L->llama && is_byte_piece(s))
            t = SLM_TOK_BYTE;
        else
            t = SLM_TOK_NORMAL;
        tok->types[i] = t;
    }
    if (!L->llama)
        return SLM_OK;
    bool by_id = merge_order_follows_ids(L);
    uint32_t normal_rank = 0;
    for (uint32_t i = 0; i < tok->n_tokens; i++) {
        if (tok->types[i] != SLM_TOK_NORMAL)
            continue;
        if (by_id)
            tok->scores[i] = -(float)normal_rank; /* sentencepiece BPE: score = -merge rank */
        else if (L->first_rank[i] >= 0)
            tok->scores[i] = -(float)L->first_rank[i];
        else
            tok->scores[i] = -(float)(L->n_merges_seen + normal_rank); /* never a merge result */
        normal_rank++;
    }
    return SLM_OK;
}

/* llama.cpp pre-normalizes "▁" to a space in user-defined gpt2 tokens. Done
 * last: the strings are the keys of the lookup map until then. */
static void unmark_user_spaces(hf_tokenizer *tok)
{
    for (uint32_t i = 0; i < tok->n_tokens; i++) {
        if (tok->types[i] != SLM_TOK_USER_DEFINED)
            continue;
        char *p;
        while ((p = strstr(tok->tokens[i], "\xe2\x96\x81")) != NULL) {
            *p = ' ';
            memmove(p + 1, p + 3, strlen(p + 3) + 1);
        }
    }
}

/* One character of a merge part; a space becomes U+0120 ("\xc4\xa0"). */
static char *put_merge_char(char *p, char c)
{
    if (c == ' ') {
        *p++ = (char)0xc4;
        *p++ = (char)0xa0;
    } else {
        *p++ = c;
    }
    return p;
}

static int read_merges(loader *L, const cJSON *model)
{
    hf_tokenizer *tok = L->tok;
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!merges || cJSON_IsNull(merges))
        return SLM_OK;
    if (!cJSON_IsArray(merges))
        return slm_err_set(L->err, SLM_EINPUT, "tokenizer.json: model.merges is not an array");
    int n = cJSON_GetArraySize(merges);
    bool keep = !L->llama; /* llama.cpp stores merges only for gpt2-style vocabularies */
    L->n_merges_seen = (uint32_t)n;
    if (L->llama) {
        if (!(L->first_rank = malloc(tok->n_tokens * sizeof *L->first_rank)))
            return oom(L);
        memset(L->first_rank, 0xff, tok->n_tokens * sizeof *L->first_rank); /* -1 */
    }
    if (keep && n > 0 && !(tok->merges = calloc((size_t)n, sizeof *tok->merges)))
        return oom(L);
    const cJSON *it;
    int k = 0;
    cJSON_ArrayForEach(it, merges)
    {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(it)) {
            /* legacy "a b": exactly one space between two non-empty parts */
            const char *s = it->valuestring, *sp = strchr(s, ' ');
            if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' '))
                return slm_err_set(L->err, SLM_EINPUT, "tokenizer.json: merge %d '%.100s' is not \"a b\"", k, s);
            a = s, la = (size_t)(sp - s), b = sp + 1, lb = strlen(b);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            a = cJSON_GetArrayItem(it, 0)->valuestring, la = strlen(a);
            b = cJSON_GetArrayItem(it, 1)->valuestring, lb = strlen(b);
            if (!la || !lb)
                return slm_err_set(L->err, SLM_EINPUT, "tokenizer.json: merge %d has an empty part", k);
        } else {
            return slm_err_set(L->err, SLM_EINPUT,
                               "tokenizer.json: merge %d is neither an \"a b\" string nor a pair of strings", k);
        }
        if (map_get_n(&L->map, a, la) < 0 || map_get_n(&L->map, b, lb) < 0)
            return slm_err_set(L->err, SLM_EINPUT, "tokenizer.json: merge %d ('%.*s' '%.*s') names a token not in the vocab",
                               k, (int)(la > 100 ? 100 : la), a, (int)(lb > 100 ? 100 : lb), b);
        char *joined = malloc(la + lb + 1);
        if (!joined)
            return oom(L);
        memcpy(joined, a, la);
        memcpy(joined + la, b, lb);
        joined[la + lb] = 0;
        int32_t jid = map_get(&L->map, joined);
        bool ok = jid >= 0;
        free(joined);
        if (ok && L->first_rank && L->first_rank[jid] < 0)
            L->first_rank[jid] = k;
        if (!ok)
            return slm_err_set(L->err, SLM_EINPUT,
                               "tokenizer.json: merge %d ('%.*s' '%.*s') makes a token not in the vocab", k,
                               (int)(la > 100 ? 100 : la), a, (int)(lb > 100 ? 100 : lb), b);
        if (keep) {
            /* "a b" form; a space inside a part is written as U+0120 ("Ġ"), as llama.cpp does */
            size_t spaces = 0;
            for (size_t i = 0; i < la; i++)
                spaces += a[i] == ' ';
            for (size_t i = 0; i < lb; i++)
                spaces += b[i] == ' ';
            char *m = malloc(la + lb + 2 + spaces);
            if (!m)
                return oom(L);
            char *p = m;
            for (size_t i = 0; i < la; i++)
                p = put_merge_char(p, a[i]);
            *p++ = ' ';
            for (size_t i = 0; i < lb; i++)
                p = put_merge_char(p, b[i]);
            *p = 0;
            tok->merges[k] = m;
            tok->n_merges = (uint32_t)(k + 1);
        }
        k++;
    }
    return SLM_OK;
}

static const char *special_token_id(const cJSON *item)
{
    return json_str(cJSON_GetObjectItemCaseSensitive(item, "SpecialToken"), "id");
}

static const char *sequence_id(const cJSON *item)
{
    return json_str(cJSON_GetObjectItemCaseSensitive(item, "Sequence"), "id");
}

static bool str_in2(const char *s, const char *a, const char *b)
{
    return s && ((a && !strcmp(s, a)) || (b && !strcmp(s, b)));
}

/* add_bos / add_eos / add_sep from the post-processor (TemplateProcessing or
 * RobertaProcessing), like llama.cpp's SpecialVocab: the leading special token
 * of the single template sets add_bos, the trailing one add_eos, and a pair
 * template "A <sep-or-eos> B" sets add_sep (false for any other middle). */
static void post_processor_adds(loader *L, const char *bos_text, const char *eos_text, const char *sep_text,
                                const char *cls_text)
{
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(L->tj, "post_processor");
    if (!cJSON_IsObject(pp))
        return;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pp, "processors");
    int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 1;
    for (int i = 0; i < n; i++) {
        const cJSON *p = cJSON_IsArray(list) ? cJSON_GetArrayItem(list, i) : pp;
        if (is_type(p, "RobertaProcessing")) {
            L->tok->add_bos = 1;
            L->tok->add_eos = 1;
            L->tok->add_sep = 1;
        } else if (is_type(p, "TemplateProcessing")) {
            const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
            const cJSON *pair = cJSON_GetObjectItemCaseSensitive(p, "pair");
            int ns = cJSON_GetArraySize(single);
            const char *fid = NULL, *lid = NULL;
            if (ns > 1) {
                fid = special_token_id(cJSON_GetArrayItem(single, 0));
                lid = special_token_id(cJSON_GetArrayItem(single, ns - 1));
                if (fid)
                    L->tok->add_bos = str_in2(fid, bos_text, cls_text);
                if (lid)
                    L->tok->add_eos = eos_text && !strcmp(lid, eos_text);
            }
            int np = cJSON_GetArraySize(pair);
            if (np <= 0)
                continue;
            int a = fid && str_in2(special_token_id(cJSON_GetArrayItem(pair, 0)), fid, NULL) ? 1 : 0;
            int b = lid && str_in2(special_token_id(cJSON_GetArrayItem(pair, np - 1)), lid, NULL) ? np - 1 : np;
            if (b - a < 3)
                continue; /* no middle part */
            const char *sa = sequence_id(cJSON_GetArrayItem(pair, a));
            const char *sb = sequence_id(cJSON_GetArrayItem(pair, b - 1));
            if (!sa || !sb || strcmp(sa, "A") || strcmp(sb, "B"))
                continue;
            int add_sep = 0;
            const char *m0 = special_token_id(cJSON_GetArrayItem(pair, a + 1));
            if (m0 && str_in2(m0, sep_text, eos_text) && !lid)
                add_sep = 1;
            if (b - a - 2 == 2) {
                const char *m1 = special_token_id(cJSON_GetArrayItem(pair, a + 2));
                if (m1 && str_in2(m1, sep_text, eos_text))
                    add_sep = 1;
            }
            L->tok->add_sep = add_sep;
        }
    }
}

/* tokenizer_config.json's chat_template (a string, or a list of named
 * templates whose "default" is taken), else chat_template.jinja, else
 * chat_template.json, as llama.cpp's SpecialVocab reads them. */
static int read_chat_template(loader *L)
{
    const cJSON *ct = L->tcfg ? cJSON_GetObjectItemCaseSensitive(L->tcfg, "chat_template") : NULL;
    const char *text = NULL;
    if (cJSON_IsString(ct)) {
        text = ct->valuestring;
    } else if (cJSON_IsArray(ct)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, ct)
        {
            const char *name = json_str(it, "name");
            if (name && !strcmp(name, "default"))
                text = json_str(it, "template");
        }
    }
    if (text) {
        if (!(L->tok->chat_template = strdup(text)))
            return oom(L);
        return SLM_OK;
    }
    if (ct && !cJSON_IsNull(ct))
        return SLM_OK; /* llama.cpp ignores a chat_template of another type */
    if (!L->tcfg)
        return SLM_OK; /* SpecialVocab reads the alternatives only beside a tokenizer_config.json */
    char *buf = NULL;
    size_t n;
    int rc = read_small_file(L->dir, "chat_template.jinja", true, &buf, &n, L->err);
    if (rc)
        return rc;
    if (buf) {
        L->tok->chat_template = buf;
        return SLM_OK;
    }
    cJSON *j = NULL;
    if ((rc = load_json(L->dir, "chat_template.json", true, &j, L->err)))
        return rc;
    const char *t = j ? json_str(j, "chat_template") : NULL;
    if (t && !(L->tok->chat_template = strdup(t))) {
        cJSON_Delete(j);
        return oom(L);
    }
    cJSON_Delete(j);
    return SLM_OK;
}

static int load(loader *L, const hf_config *cfg)
{
    hf_tokenizer *tok = L->tok;
    int rc;
    if ((rc = load_json(L->dir, "tokenizer.json", false, &L->tj, L->err)))
        return rc;
    if (!cJSON_IsObject(L->tj))
        return slm_err_set(L->err, SLM_EINPUT, "tokenizer.json: top level is not an object");
    if ((rc = load_json(L->dir, "tokenizer_config.json", true, &L->tcfg, L->err)) ||
        (rc = load_json(L->dir, "special_tokens_map.json", true, &L->stmap, L->err)) ||
        (rc = load_json(L->dir, "generation_config.json", true, &L->gen, L->err)))
        return rc;
    /* config.json is optional here (tests load bare tokenizer directories); a
     * malformed one is reported by hf_config_load, not here */
    slm_err cfg_err = {0};
    if (load_json(L->dir, "config.json", true, &L->cfgj, &cfg_err) != SLM_OK || !cJSON_IsObject(L->cfgj)) {
        cJSON_Delete(L->cfgj);
        L->cfgj = NULL;
    }
    if (L->tcfg && !cJSON_IsObject(L->tcfg))
        return slm_err_set(L->err, SLM_EINPUT, "tokenizer_config.json: top level is not an object");
    if (L->stmap && !cJSON_IsObject(L->stmap))
        return slm_err_set(L->err, SLM_EINPUT, "special_tokens_map.json: top level is not an object");
    if (L->gen && !cJSON_IsObject(L->gen))
        return slm_err_set(L->err, SLM_EINPUT, "generation_config.json: top level is not an object");

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(L->tj, "model");
    if (!cJSON_IsObject(model))
        return slm_err_set(L->err, SLM_EINPUT, "tokenizer.json: no \"model\" object");
    const char *mtype = json_str(model, "type");
    if (!mtype && cJSON_GetObjectItemCaseSensitive(model, "merges"))
        mtype = "BPE"; /* older files omit the type of a BPE model */
    if (!mtype || strcmp(mtype, "BPE") != 0)
        return slm_err_set(L->err, SLM_EINPUT,
                           "tokenizer.json: tokenizer model type '%s' is not supported (only BPE: SentencePiece-style or GPT-2 byte-level)",
                           mtype ? mtype : "(none)");

    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(L->tj, "pre_tokenizer");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(L->tj, "decoder");
    bool byte_fallback = bool_or(model, "byte_fallback", false);
    bool byte_level = has_component(pre, "pretokenizers", "ByteLevel") || has_component(dec, "decoders", "ByteLevel");
    bool metaspace = has_component(pre, "pretokenizers", "Metaspace");
    if ((byte_fallback || metaspace) && !byte_level)
        L->llama = true;
    else if (byte_level && !byte_fallback)
        L->llama = false;
    else
        return slm_err_set(L->err, SLM_EINPUT,
                           "tokenizer.json: BPE tokenizer is neither SentencePiece-style (byte_fallback/Metaspace) nor GPT-2 byte-level");

    const char *arch = cfg ? cfg->hf_arch : "";
    if (!strcmp(arch, "Gemma3ForCausalLM") || !strcmp(arch, "Gemma3ForConditionalGeneration"))
        L->family = FAM_GEMMA3;
    else if (!strcmp(arch, "Phi3ForCausalLM"))
        L->family = FAM_PHI3;
    else if (!strcmp(arch, "LlamaForCausalLM"))
        L->family = FAM_LLAMA;
    if (L->llama) {
        snprintf(tok->model, sizeof tok->model, "llama");
        snprintf(tok->pre, sizeof tok->pre, "default");
        if ((L->family == FAM_GEMMA3 || L->family == FAM_PHI3) && cfg->n_vocab > 0)
            L->vocab_cap = (uint32_t)cfg->n_vocab;
        if (L->family == FAM_GEMMA3)
            tok->add_space_prefix = 0; /* Gemma3Model.set_vocab */
    } else {
        char why[320];
        const char *p = detect_pre(pre, why, sizeof why);
        if (!p)
            return slm_err_set(L->err, SLM_EINPUT, "tokenizer.json: unsupported byte-level pre-tokenizer: %s", why);
        snprintf(tok->model, sizeof tok->model, "gpt2");
        snprintf(tok->pre, sizeof tok->pre, "%s", p);
    }

    if ((rc = read_vocab(L, model, cfg)))
        return rc;

    /* Special tokens: tokenizer_config.json, special_tokens_map.json, then ids. */
    const char *unk_text = NULL;
    tok->bos_id = pick_special(L, "bos_token");
    tok->eos_id = pick_special(L, "eos_token");
    tok->unk_id = pick_special(L, "unk_token");
    tok->pad_id = pick_special(L, "pad_token");
    tok->sep_id = pick_special(L, "sep_token");
    tok->cls_id = pick_special(L, "cls_token");
    tok->mask_id = pick_special(L, "mask_token");
    {
        int64_t *ids[] = {&tok->bos_id, &tok->eos_id, &tok->unk_id, &tok->sep_id,
                          &tok->pad_id, &tok->cls_id, &tok->mask_id};
        static const char *const keys[] = {"bos_token_id", "eos_token_id", "unk_token_id", "sep_token_id",
                                           "pad_token_id", "cls_token_id", "mask_token_id"};
        for (int i = 0; i < 7; i++)
            if (*ids[i] < 0)
                *ids[i] = cfg_id(L, keys[i]);
    }
    if (tok->unk_id < 0) {
        const char *u = json_str(model, "unk_token");
        tok->unk_id = u ? map_get(&L->map, u) : -1;
    }
    if (tok->bos_id < 0)
        tok->bos_id = gen_id(L, "bos_token_id");
    if (tok->eos_id < 0)
        tok->eos_id = gen_id(L, "eos_token_id");
    if (tok->pad_id < 0)
        tok->pad_id = gen_id(L, "pad_token_id");
    if (tok->bos_id < 0 && cfg && cfg->bos_id >= 0 && (uint32_t)cfg->bos_id < tok->n_tokens)
        tok->bos_id = cfg->bos_id;
    if (tok->eos_id < 0 && cfg && cfg->eos_id >= 0 && (uint32_t)cfg->eos_id < tok->n_tokens)
        tok->eos_id = cfg->eos_id;
    /* The UNKNOWN type goes to the model's unk piece (sentencepiece marks only that one). */
    if (L->llama) {
        unk_text = json_str(model, "unk_token");
        if (!unk_text && tok->unk_id >= 0)
            unk_text = tok->tokens[tok->unk_id];
    }
    if ((rc = read_merges(L, model)))
        return rc;
    if (L->llama && !L->first_rank) { /* no merges at all */
        if (!(L->first_rank = malloc(tok->n_tokens * sizeof *L->first_rank)))
            return oom(L);
        memset(L->first_rank, 0xff, tok->n_tokens * sizeof *L->first_rank);
    }
    if ((rc = assign_types(L, unk_text)))
        return rc;
    if (!L->llama || L->family == FAM_GEMMA3)
        unmark_user_spaces(tok);

    const char *bos_text = tok->bos_id >= 0 ? tok->tokens[tok->bos_id] : NULL;
    const char *eos_text = tok->eos_id >= 0 ? tok->tokens[tok->eos_id] : NULL;
    const char *sep_text = tok->sep_id >= 0 ? tok->tokens[tok->sep_id] : NULL;
    const char *cls_text = tok->cls_id >= 0 ? tok->tokens[tok->cls_id] : NULL;
    post_processor_adds(L, bos_text, eos_text, sep_text, cls_text);
    if (L->tcfg) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(L->tcfg, "add_bos_token");
        if (cJSON_IsBool(v))
            tok->add_bos = cJSON_IsTrue(v);
        v = cJSON_GetObjectItemCaseSensitive(L->tcfg, "add_eos_token");
        if (cJSON_IsBool(v))
            tok->add_eos = cJSON_IsTrue(v);
        v = cJSON_GetObjectItemCaseSensitive(L->tcfg, "add_sep_token");
        if (cJSON_IsBool(v))
            tok->add_sep = cJSON_IsTrue(v);
        /* LlamaModel.set_vocab copies add_prefix_space */
        v = cJSON_GetObjectItemCaseSensitive(L->tcfg, "add_prefix_space");
        if (L->family == FAM_LLAMA && cJSON_IsBool(v))
            tok->add_space_prefix = cJSON_IsTrue(v);
    }
    return read_chat_template(L);
}

int hf_tokenizer_load(const char *dir, const hf_config *cfg, hf_tokenizer *tok, slm_err *err)
{
    memset(tok, 0, sizeof *tok);
    tok->bos_id = tok->eos_id = tok->unk_id = tok->pad_id = -1;
    tok->sep_id = tok->cls_id = tok->mask_id = -1;
    tok->add_bos = tok->add_eos = tok->add_sep = tok->add_space_prefix = -1;
    loader L = {.dir = dir, .err = err, .tok = tok};
    int rc = load(&L, cfg);
    cJSON_Delete(L.cfgj);
    free(L.first_rank);
    cJSON_Delete(L.tj);
    cJSON_Delete(L.tcfg);
    cJSON_Delete(L.stmap);
    cJSON_Delete(L.gen);
    map_free(&L.map);
    free(L.added);
    if (rc)
        hf_tokenizer_free(tok);
    return rc;
}

void hf_tokenizer_free(hf_tokenizer *tok)
{
    if (!tok)
        return;
    if (tok->tokens)
        for (uint32_t i = 0; i < tok->n_tokens; i++)
            free(tok->tokens[i]);
    free(tok->tokens);
    free(tok->scores);
    free(tok->types);
    if (tok->merges)
        for (uint32_t i = 0; i < tok->n_merges; i++)
            free(tok->merges[i]);
    free(tok->merges);
    free(tok->chat_template);
    memset(tok, 0, sizeof *tok);
    tok->bos_id = tok->eos_id = tok->unk_id = tok->pad_id = -1;
    tok->sep_id = tok->cls_id = tok->mask_id = -1;
    tok->add_bos = tok->add_eos = tok->add_sep = tok->add_space_prefix = -1;
}

int hf_tokenizer_describe(const hf_tokenizer *t, gguf_writer *w)
{
    int rc = 0;
    rc |= gguf_set_str(w, "tokenizer.ggml.model", t->model);
    rc |= gguf_set_str(w, "tokenizer.ggml.pre", t->pre);
    rc |= gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)t->tokens, t->n_tokens);
    if (t->scores)
        rc |= gguf_set_arr_f32(w, "tokenizer.ggml.scores", t->scores, t->n_tokens);
    rc |= gguf_set_arr_i32(w, "tokenizer.ggml.token_type", t->types, t->n_tokens);
    if (t->add_space_prefix >= 0)
        rc |= gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", t->add_space_prefix);
    if (t->merges)
        rc |= gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)t->merges, t->n_merges);
    static const struct { size_t off; const char *key; } ids[] = {
        {offsetof(hf_tokenizer, bos_id), "tokenizer.ggml.bos_token_id"},
        {offsetof(hf_tokenizer, eos_id), "tokenizer.ggml.eos_token_id"},
        {offsetof(hf_tokenizer, unk_id), "tokenizer.ggml.unknown_token_id"},
        {offsetof(hf_tokenizer, sep_id), "tokenizer.ggml.seperator_token_id"}, /* sic, llama.cpp's key */
        {offsetof(hf_tokenizer, pad_id), "tokenizer.ggml.padding_token_id"},
        {offsetof(hf_tokenizer, cls_id), "tokenizer.ggml.cls_token_id"},
        {offsetof(hf_tokenizer, mask_id), "tokenizer.ggml.mask_token_id"},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        int64_t id = *(const int64_t *)(const void *)((const char *)t + ids[i].off);
        if (id >= 0)
            rc |= gguf_set_u32(w, ids[i].key, (uint32_t)id);
    }
    if (t->add_bos >= 0)
        rc |= gguf_set_bool(w, "tokenizer.ggml.add_bos_token", t->add_bos);
    if (t->add_sep >= 0)
        rc |= gguf_set_bool(w, "tokenizer.ggml.add_sep_token", t->add_sep);
    if (t->add_eos >= 0)
        rc |= gguf_set_bool(w, "tokenizer.ggml.add_eos_token", t->add_eos);
    if (t->chat_template)
        rc |= gguf_set_str(w, "tokenizer.chat_template", t->chat_template);
    return rc ? -1 : 0;
}
