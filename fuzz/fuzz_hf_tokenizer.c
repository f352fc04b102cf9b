/* fuzz/fuzz_hf_tokenizer.c — tokenizer.json and its companions
 * (formats/hf_tokenizer.c). The input holds up to four files separated by
 * FZ_SEP: tokenizer.json, tokenizer_config.json, special_tokens_map.json,
 * generation_config.json; a missing part means the file is absent. */
#include "fuzz_common.h"

static const char *const k_files[4] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
};

int fuzz_hf_tokenizer(const uint8_t *data, size_t size)
{
    const char *dir = fz_scratch_dir();
    const uint8_t *part[4];
    size_t len[4];
    int n = fz_split(data, size, part, len, 4);
    for (int i = 0; i < 4; i++) {
        if (i < n)
            fz_put(dir, k_files[i], part[i], len[i]);
        else
            fz_remove(dir, k_files[i]);
    }
    slm_err err = {0};
    hf_tokenizer tok;
    int rc = hf_tokenizer_load(dir, NULL, &tok, &err);
    if (rc)
        return rc;
    /* every id and string the loader returns must be usable */
    size_t sum = 0;
    for (uint32_t i = 0; i < tok.n_tokens; i++) {
        if (!tok.tokens[i] || tok.types[i] < SLM_TOK_NORMAL || tok.types[i] > SLM_TOK_BYTE)
            abort();
        sum += strlen(tok.tokens[i]);
    }
    for (uint32_t i = 0; i < tok.n_merges; i++)
        sum += strlen(tok.merges[i]);
    int64_t ids[4] = {tok.bos_id, tok.eos_id, tok.unk_id, tok.pad_id};
    for (int i = 0; i < 4; i++)
        if (ids[i] < -1 || ids[i] >= (int64_t)tok.n_tokens)
            abort();
    (void)sum;
    hf_tokenizer_free(&tok);
    return 0;
}

FUZZ_ENTRY(fuzz_hf_tokenizer)
