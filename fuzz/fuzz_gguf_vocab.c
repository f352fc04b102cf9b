/* fuzz/fuzz_gguf_vocab.c — the runtime tokenizer built from a GGUF's
 * tokenizer.ggml.* metadata (runtime/tokenizer.c), behind the GGUF reader:
 * build it, then encode a few texts (valid, invalid UTF-8, special-token
 * spellings), decode the result, and render every token id. */
#include "fuzz_common.h"
#include "runtime.h"

static const char *const k_texts[] = {
    "Once upon a time, there was a little girl named Lily.",
    " leading space,  two  spaces\tand\nnewlines\r\n 123 4567 'll 's",
    "<s></s><unk><|endoftext|><0x0A> \xe2\x96\x81 \xc4\xa0",
    "invalid \xff\xfe \xc3 \xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80 end\x80",
    "",
};

int fuzz_gguf_vocab(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return SLM_EIO;
    slm_err err = {0};
    gguf_file *f = NULL;
    int rc = gguf_open(path, &f, &err);
    close(fd);
    if (rc)
        return rc;
    slm_tokenizer *t = NULL;
    rc = slm_tokenizer_from_gguf(f, &t, &err);
    if (rc) {
        gguf_close(f);
        return rc;
    }
    int32_t n_vocab = slm_tokenizer_n_vocab(t);
    for (size_t i = 0; i < sizeof k_texts / sizeof k_texts[0]; i++) {
        for (int mode = 0; mode < 4; mode++) {
            int32_t *ids = NULL;
            size_t n = 0;
            if (slm_tokenize(t, k_texts[i], strlen(k_texts[i]), mode & 1, mode >> 1, &ids, &n, &err) == 0) {
                for (size_t k = 0; k < n; k++)
                    if (ids[k] < 0 || ids[k] >= n_vocab)
                        abort(); /* an id outside the vocabulary */
                free(slm_detokenize(t, ids, n, mode >> 1));
            }
            free(ids);
        }
    }
    char piece[64];
    for (int32_t id = -1; id <= n_vocab; id++) {
        (void)slm_token_to_piece(t, id, 1, piece, sizeof piece);
        (void)slm_tokenizer_is_eog(t, id);
    }
    (void)slm_tokenizer_bos(t);
    (void)slm_tokenizer_eos(t);
    (void)slm_tokenizer_add_bos(t);
    slm_tokenizer_free(t);
    gguf_close(f);
    return 0;
}

FUZZ_ENTRY(fuzz_gguf_vocab)
