/* fuzz/fuzz_hf_config.c — config.json (formats/hf_config.c). */
#include "fuzz_common.h"

int fuzz_hf_config(const uint8_t *data, size_t size)
{
    const char *dir = fz_scratch_dir();
    fz_put(dir, "config.json", data, size);
    slm_err err = {0};
    hf_config cfg;
    int rc = hf_config_load(dir, &cfg, &err);
    if (rc == 0 && (cfg.n_embd <= 0 || cfg.n_head <= 0 || cfg.n_head_kv <= 0 || cfg.n_layer <= 0 ||
                    cfg.n_vocab <= 0 || !cfg.gguf_arch))
        abort(); /* accepted but not usable: the validation has a hole */
    return rc;
}

FUZZ_ENTRY(fuzz_hf_config)
