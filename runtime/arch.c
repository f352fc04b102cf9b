/* runtime/arch.c — one row per architecture: everything the single forward pass
 * (forward.c) and the tensor binder (model.c) need to know about a family. The
 * rows follow llama.cpp's graphs for the same general.architecture (src/models/),
 * which in turn follow each family's transformers modeling code. */
#include "runtime.h"

#include <string.h>

static const slm_arch_desc k_arch[] = {
    /* Llama 1-3, Mistral: RMSNorm, SwiGLU, RoPE on adjacent pairs (the converter permutes
     * q/k rows), optional rope_freqs (llama3 rope scaling), optional biases */
    {.arch = SLM_ARCH_LLAMA, .name = "llama", .norm = SLM_NORM_RMS, .qkv = SLM_QKV_SPLIT,
     .ffn = SLM_FFN_GATED, .act = SLM_ACT_SILU, .rope = SLM_ROPE_NORM,
     .eps_key = "attention.layer_norm_rms_epsilon"},
    /* Qwen2 / Qwen2.5: Llama plus required q/k/v biases, NEOX RoPE */
    {.arch = SLM_ARCH_QWEN2, .name = "qwen2", .norm = SLM_NORM_RMS, .qkv = SLM_QKV_SPLIT, .qkv_bias = 1,
     .ffn = SLM_FFN_GATED, .act = SLM_ACT_SILU, .rope = SLM_ROPE_NEOX,
     .eps_key = "attention.layer_norm_rms_epsilon"},
    /* Qwen3: no biases, per-head RMSNorm of q and k before RoPE */
    {.arch = SLM_ARCH_QWEN3, .name = "qwen3", .norm = SLM_NORM_RMS, .qk_norm = 1, .qkv = SLM_QKV_SPLIT,
     .ffn = SLM_FFN_GATED, .act = SLM_ACT_SILU, .rope = SLM_ROPE_NEOX,
     .eps_key = "attention.layer_norm_rms_epsilon"},
    /* Gemma 3 (text): embeddings x sqrt(n_embd), (1+w) RMSNorms (the +1 is in the file), norms
     * before and after attention and FFN, q/k norms, GELU-tanh gated FFN, local layers with a
     * sliding window and RoPE base 10000 (five of every six), global layers with the file's base */
    {.arch = SLM_ARCH_GEMMA3, .name = "gemma3", .norm = SLM_NORM_RMS, .sandwich = 1, .qk_norm = 1,
     .qkv = SLM_QKV_SPLIT, .ffn = SLM_FFN_GATED, .act = SLM_ACT_GELU_TANH, .rope = SLM_ROPE_NEOX,
     .embd_scale = 1, .swa = 1, .swa_pattern = 6, .rope_base_swa = 10000.0f,
     .eps_key = "attention.layer_norm_rms_epsilon"},
    /* Phi-3: fused qkv (or split), ffn_up holding [gate; up], NEOX RoPE; its sliding window
     * (every layer) is applied as transformers applies it (llama.cpp ignores it, which only
     * differs beyond the window) */
    {.arch = SLM_ARCH_PHI3, .name = "phi3", .norm = SLM_NORM_RMS, .qkv = SLM_QKV_ANY,
     .ffn = SLM_FFN_GATED_FUSED, .act = SLM_ACT_SILU, .rope = SLM_ROPE_NEOX, .swa = 1,
     .eps_key = "attention.layer_norm_rms_epsilon"},
    /* GPT-2: LayerNorm with biases, learned positions, fused qkv, GELU MLP, biases everywhere.
     * Its GELU goes through llama.cpp's f16 table (logits within ~1e-6 of llama.cpp's, 1.5e-4
     * from the exact form); Gemma 3's is exact (5e-4 from the table on its test model, where
     * the float64 reference decides) */
    {.arch = SLM_ARCH_GPT2, .name = "gpt2", .norm = SLM_NORM_LAYER, .qkv = SLM_QKV_FUSED, .all_bias = 1,
     .ffn = SLM_FFN_PLAIN, .act = SLM_ACT_GELU_F16, .rope = SLM_ROPE_NONE,
     .eps_key = "attention.layer_norm_epsilon"},
};

const slm_arch_desc *slm_arch_find(const char *name)
{
    for (size_t i = 0; i < sizeof k_arch / sizeof k_arch[0]; i++)
        if (!strcmp(k_arch[i].name, name))
            return &k_arch[i];
    return NULL;
}
