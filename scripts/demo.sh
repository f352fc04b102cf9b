#!/usr/bin/env bash
# The main job end to end on the default model:
#   HF checkpoint -> GGUF -> quantized GGUF -> perplexity (and KL-divergence vs F32)
#   -> signing key and trust root -> signed bundle -> A/B install (health-checked) -> run.
set -euo pipefail
cd "$(dirname "$0")/.."
SLM=${SLM:-build/slm}
MODELS=${SLM_MODELS:-../shared/models}
CORPUS=${SLM_CORPUS:-../shared/corpus}
MODEL=${SLM_DEMO_MODEL:-$MODELS/stories260k}
TYPE=${SLM_DEMO_TYPE:-Q8_0}
OUT=${SLM_DEMO_OUT:-build/demo}
rm -rf "$OUT"   # keys are never overwritten: start from a fresh folder
mkdir -p "$OUT"
step() { printf '\n== %s\n$' "$1"; printf ' %q' "${@:2}"; printf '\n'; "${@:2}"; }
step "convert the Hugging Face checkpoint to GGUF (F32)" \
    "$SLM" convert "$MODEL" -o "$OUT/model-f32.gguf" --outtype f32
step "inspect it" "$SLM" inspect "$OUT/model-f32.gguf"
step "quantize it ($TYPE)" "$SLM" quantize "$OUT/model-f32.gguf" "$OUT/model-$TYPE.gguf" "$TYPE"
step "perplexity of the F32 model (saving its logits as the KL-divergence base)" \
    "$SLM" perplexity -m "$OUT/model-f32.gguf" -f "$CORPUS/tinystories-eval.txt" -c 128 --chunks 40 \
    --kl-divergence-base "$OUT/base.kld"
step "perplexity and KL-divergence of the $TYPE model against F32" \
    "$SLM" perplexity -m "$OUT/model-$TYPE.gguf" -f "$CORPUS/tinystories-eval.txt" -c 128 --chunks 40 \
    --kl-divergence-base "$OUT/base.kld" --kl-divergence
step "make a signing key" "$SLM" keygen -o "$OUT/release.key"
step "make a trust root (threshold 1 of 1, expires in a year)" \
    "$SLM" trust init -o "$OUT/root.json" --key "$OUT/release.key.pub" --threshold 1 --expires 365d \
    --sign-with "$OUT/release.key"
step "bundle the $TYPE model: signed, versioned, expiring, with a canary perplexity" \
    "$SLM" bundle "$OUT/model-$TYPE.gguf" -o "$OUT/model.slmb" --name stories260k --version 1 --expires 30d \
    --canary "Once upon a time, there was a little girl named Lily." --meta quant="$TYPE" --key "$OUT/release.key"
step "verify it" "$SLM" verify "$OUT/model.slmb" --trust "$OUT/root.json"
step "install it into an A/B store (trial slot, health check, commit)" \
    "$SLM" install "$OUT/model.slmb" --store "$OUT/store" --trust "$OUT/root.json"
step "run the installed model: greedy continuation of 'Once upon a time'" \
    "$SLM" run --store "$OUT/store" -p "Once upon a time" -n 40 --temp 0
printf '\n\ndemo done: files in %s\n' "$OUT"
