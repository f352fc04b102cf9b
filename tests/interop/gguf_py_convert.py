#!/usr/bin/python3
# usage: PYTHONPATH=<llama.cpp>/gguf-py /usr/bin/python3 gguf_py_convert.py HF_DIR OUT.gguf TOKENIZER.gguf
#
# A GGUF in llama.cpp's own layout for the edge families (llama with rope_scaling llama3, qwen2,
# qwen3, gemma3, phi3), written by llama.cpp's gguf-py library: its tensor-name map
# (gguf.get_tensor_name_map: HF name -> GGUF name), its GGUFWriter and key helpers. llama.cpp's
# convert_hf_to_gguf.py cannot run here (it imports transformers, which Debian does not package), so
# this script applies what that converter does for these families (read from its source:
# conversion/llama.py, qwen.py, gemma.py, phi.py, base.py's TextModel.set_gguf_parameters) with
# numpy only. All tensors are written F32. The tokenizer.* keys are copied from TOKENIZER.gguf (the
# tokenizer is not what this file checks). Independent of slmkit's C converter: tests compare the two.
import json
import math
import struct
import sys

import numpy as np

import gguf


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[a:b]
        dt = info["dtype"]
        if dt == "BF16":
            v = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif dt == "F16":
            v = np.frombuffer(raw, dtype=np.float16)
        elif dt == "F32":
            v = np.frombuffer(raw, dtype=np.float32)
        else:
            raise SystemExit(f"{path}: dtype {dt} not handled")
        out[name] = v.reshape(info["shape"])
    return out


def llama_permute(w, n_head):
    # LlamaModel.permute: HF's rotate-half halves -> interleaved pairs
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_factors(rs, theta, dim):
    # LlamaModel.generate_extra_tensors, in float32 as torch computes it
    f32 = np.float32
    freqs = f32(1.0) / np.power(f32(theta), np.arange(0, dim, 2, dtype=f32) / f32(dim))
    factor = rs.get("factor", 8.0)
    low, high = rs.get("low_freq_factor", 1.0), rs.get("high_freq_factor", 4.0)
    old = rs.get("original_max_position_embeddings", 8192)
    low_wl, high_wl = old / low, old / high
    out = []
    for fr in freqs:
        wl = (f32(1.0) / fr) * f32(2 * math.pi)
        if wl < high_wl:
            out.append(1.0)
        elif wl > low_wl:
            out.append(factor)
        else:
            s = ((f32(1.0) / wl) * f32(old) - f32(low)) / f32(high - low)
            out.append(f32(1.0) / ((f32(1.0) - s) / f32(factor) + s))
    return np.array(out, dtype=np.float32)


ARCHS = {
    "LlamaForCausalLM": gguf.MODEL_ARCH.LLAMA,
    "Qwen2ForCausalLM": gguf.MODEL_ARCH.QWEN2,
    "Qwen3ForCausalLM": gguf.MODEL_ARCH.QWEN3,
    "Gemma3ForCausalLM": gguf.MODEL_ARCH.GEMMA3,
    "Phi3ForCausalLM": gguf.MODEL_ARCH.PHI3,
}


def main():
    hf_dir, out_path, tok_path = sys.argv[1:4]
    cfg = json.load(open(f"{hf_dir}/config.json"))
    hf_arch = cfg["architectures"][0]
    arch = ARCHS[hf_arch]
    n_layer = cfg["num_hidden_layers"]
    n_head, n_kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    E = cfg["hidden_size"]
    head_dim = cfg.get("head_dim") or E // n_head
    w = gguf.GGUFWriter(out_path, gguf.MODEL_ARCH_NAMES[arch])
    tmap = gguf.get_tensor_name_map(arch, n_layer)
    rs = cfg.get("rope_scaling") or {}

    # metadata: TextModel.set_gguf_parameters + the family's additions
    if arch == gguf.MODEL_ARCH.PHI3:
        w.add_context_length(cfg["max_position_embeddings"])
        w.add_rope_scaling_orig_ctx_len(cfg["original_max_position_embeddings"])
        w.add_embedding_length(E)
        w.add_feed_forward_length(cfg["intermediate_size"])
        w.add_block_count(n_layer)
        w.add_head_count(n_head)
        w.add_head_count_kv(n_kv)
        w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
        w.add_rope_dimension_count(int(cfg.get("partial_rotary_factor", 1.0) * E) // n_head)
        w.add_rope_freq_base(cfg["rope_theta"])
        w.add_file_type(gguf.LlamaFileType.ALL_F32)
        w.add_sliding_window(cfg.get("sliding_window") or 0)
    else:
        w.add_block_count(n_layer)
        w.add_context_length(cfg["max_position_embeddings"])
        w.add_embedding_length(E)
        w.add_feed_forward_length(cfg["intermediate_size"])
        w.add_head_count(n_head)
        w.add_head_count_kv(n_kv)
        if cfg.get("rope_theta") is not None:
            w.add_rope_freq_base(cfg["rope_theta"])
        if arch == gguf.MODEL_ARCH.GEMMA3 and cfg.get("rope_local_base_freq") is not None:
            w.add_rope_freq_base_swa(cfg["rope_local_base_freq"])
        w.add_layer_norm_rms_eps(cfg.get("rms_norm_eps", 1e-6))
        if cfg.get("head_dim") is not None:
            w.add_key_length(cfg["head_dim"])
            w.add_value_length(cfg["head_dim"])
        w.add_file_type(gguf.LlamaFileType.ALL_F32)
        if arch == gguf.MODEL_ARCH.LLAMA:
            w.add_vocab_size(cfg["vocab_size"])
            w.add_rope_dimension_count(head_dim)
        if arch == gguf.MODEL_ARCH.GEMMA3:
            if cfg.get("final_logit_softcapping"):
                w.add_final_logit_softcapping(cfg["final_logit_softcapping"])
            if cfg.get("sliding_window_pattern") != 1:
                w.add_sliding_window(cfg["sliding_window"])

    # the tokenizer, as the other file has it
    r = gguf.GGUFReader(tok_path)
    for name, field in r.fields.items():
        if not name.startswith("tokenizer."):
            continue
        vt = gguf.GGUFValueType(field.types[0])
        sub = gguf.GGUFValueType(field.types[1]) if vt == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(name, field.contents(), vt, sub_type=sub)

    # tensors: extras first, then the checkpoint's
    if arch == gguf.MODEL_ARCH.LLAMA and (rs.get("rope_type") or rs.get("type")) == "llama3":
        w.add_tensor("rope_freqs.weight", llama3_rope_factors(rs, cfg.get("rope_theta", 10000.0), head_dim))
    st = read_safetensors(f"{hf_dir}/model.safetensors")
    for name in st:
        t = st[name]
        if t.dtype != np.float16:  # the converter widens everything but F16 to F32 first
            t = t.astype(np.float32)
        if arch == gguf.MODEL_ARCH.LLAMA:
            if name.endswith(("q_proj.weight", "q_proj.bias")):
                t = llama_permute(t, n_head)
            if name.endswith(("k_proj.weight", "k_proj.bias")):
                t = llama_permute(t, n_kv)
        if arch == gguf.MODEL_ARCH.GEMMA3 and name.endswith("norm.weight"):
            t = t + t.dtype.type(1.0)  # in the tensor's dtype: an F16 sum is rounded to F16
        new = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise SystemExit(f"{name}: no GGUF name in gguf-py's map for {hf_arch}")
        w.add_tensor(new, np.ascontiguousarray(t, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


main()
