#!/usr/bin/env bash
# The main job end to end on the default model: HF checkpoint -> GGUF -> inspect.
# (Grows with the toolchain: quantize -> perplexity -> keygen -> bundle -> install -> run.)
set -euo pipefail
cd "$(dirname "$0")/.."
SLM=${SLM:-build/slm}
MODELS=${SLM_MODELS:-../shared/models}
MODEL=${SLM_DEMO_MODEL:-$MODELS/stories260k}
OUT=${SLM_DEMO_OUT:-build/demo}
mkdir -p "$OUT"
step() { printf '\n== %s\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }
step "convert the Hugging Face checkpoint to GGUF (F16)" "$SLM" convert "$MODEL" -o "$OUT/model-f16.gguf"
step "inspect the result" "$SLM" inspect "$OUT/model-f16.gguf"
printf '\ndemo done: %s\n' "$OUT/model-f16.gguf"
