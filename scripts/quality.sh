#!/bin/sh
# scripts/quality.sh — KL-divergence sweep (issue 5, bar 2).
#
# Converts a Hugging Face model to F32, quantizes it with every recipe, and measures
# each file against F32 with `slm perplexity --kl-divergence` (llama.cpp's method:
# -c N chunks, second half of each scored). Prints one Markdown table row per type:
# file bytes, PPL ratio, mean KLD, same-top %, and the KLD ratio to llama.cpp's
# figures (stories-llama256, eval text, -c 128) when those apply.
#
# usage: scripts/quality.sh [-m MODEL_DIR] [-f TEXT] [-c N] [--chunks N] [-t N]
#                           [--types "Q8_0 Q6_K ..."] [--work DIR] [--slm BIN]
#                           [--llama-quantize BIN]   (also quantize with llama.cpp)
#                           [--imatrix FILE]         (passed to both quantizers)
#                           [--llama-imatrix FILE]   (llama-quantize's instead, e.g. from llama-imatrix)
#                           [--gptq CALIB [--gptq-opts "..."]]
#                                 (slm quantize --gptq -f CALIB; default opts
#                                  "-c 128 --chunks 64", as docs/calibration.md)
#                           [--self-calibrate N]   (slm quantize --self-calibrate N: no
#                                 calibration data, GPTQ on text the model samples itself)
# env: SLM_MODELS, SLM_CORPUS (defaults ../shared/models, ../shared/corpus beside the repository,
#      as the Makefile), SLM_LLAMA_BIN (llama.cpp's tools from `make deps`: --llama-quantize
#      defaults to $SLM_LLAMA_BIN/llama-quantize when that variable is set).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
models=${SLM_MODELS:-$here/../shared/models}
corpus=${SLM_CORPUS:-$here/../shared/corpus}
model=$models/stories-llama256
text=$corpus/tinystories-calib.txt
ctx=128
chunks=
threads=2
types="Q8_0 Q6_K Q5_K_M Q4_K_M Q4_K_S Q4_0 Q3_K_M Q2_K"
work=
slm=$here/build/slm
lq=${SLM_LLAMA_BIN:+$SLM_LLAMA_BIN/llama-quantize}
imatrix=
ll_imatrix=
gptq=
gptq_opts="-c 128 --chunks 64"
selfcal=

while [ $# -gt 0 ]; do
    case $1 in
    -m) model=$2; shift 2 ;;
    -f) text=$2; shift 2 ;;
    -c) ctx=$2; shift 2 ;;
    --chunks) chunks=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    --types) types=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --slm) slm=$2; shift 2 ;;
    --llama-quantize) lq=$2; shift 2 ;;
    --imatrix) imatrix=$2; shift 2 ;;
    --llama-imatrix) ll_imatrix=$2; shift 2 ;;
    --gptq) gptq=$2; shift 2 ;;
    --gptq-opts) gptq_opts=$2; shift 2 ;;
    --self-calibrate) selfcal=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quality.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done

[ -x "$slm" ] || { echo "quality.sh: no slm binary at $slm (make, or --slm BIN)" >&2; exit 2; }
[ -f "$text" ] || { echo "quality.sh: no text file $text" >&2; exit 2; }
if [ -z "$work" ]; then
    work=$(mktemp -d "${TMPDIR:-/tmp}/slm-quality.XXXXXX")
    trap 'rm -rf "$work"' EXIT INT TERM
fi
mkdir -p "$work"

# llama.cpp's figures on stories-llama256, eval text, -c 128 (commit de3ff81): bytes, KLD
ref() {
    case $1 in
    Q8_0) echo "3644096 0.000106" ;; Q6_K) echo "2818752 0.000611" ;;
    Q5_K_M) echo "2444480 0.001340" ;; Q4_K_M) echo "2092224 0.004050" ;;
    Q4_K_S) echo "1990336 0.004276" ;; Q4_0) echo "1973952 0.006298" ;;
    Q3_K_M) echo "1703616 0.013083" ;; Q2_K) echo "1325760 0.060046" ;;
    IQ4_XS) echo "1871520 0.005016" ;; IQ4_NL) echo "1973920 0.004954" ;; # de3ff81, no imatrix (docs/iquants.md)
    # with llama-imatrix over all of the calibration text (docs/iquants.md; these need one)
    IQ2_XXS) echo "976768 0.119739" ;; IQ2_XS) echo "1070976 0.091638" ;;
    IQ2_S) echo "1134464 0.060937" ;; IQ2_M) echo "1220480 0.042153" ;;
    IQ1_S) echo "804736 0.231965" ;; IQ1_M) echo "869248 0.201129" ;; # 2026-12-05, all 781 chunks
    *) echo "- -" ;;
    esac
}

f32=$work/f32.gguf
"$slm" convert "$model" -o "$f32" --outtype f32 >/dev/null
tag=$(basename "$text" | tr -c 'A-Za-z0-9\n' _)
base=$work/base-$tag-c$ctx${chunks:+-n$chunks}.kld
ppl_opts="-f $text -c $ctx -t $threads${chunks:+ --chunks $chunks}"
if [ ! -f "$base" ]; then
    # shellcheck disable=SC2086
    "$slm" perplexity -m "$f32" $ppl_opts --kl-divergence-base "$base" >/dev/null 2>&1
fi

# one row: producer, type, file
measure() {
    # shellcheck disable=SC2086
    js=$("$slm" perplexity -m "$3" $ppl_opts --kl-divergence-base "$base" --kl-divergence --json 2>/dev/null)
    bytes=$(stat -c %s "$3")
    set -- "$1" "$2" "$bytes" "$js" $(ref "$2")
    printf '%s' "$4" | python3 -c '
import json, sys
prod, typ, size, rbytes, rkld = sys.argv[1:6]
k = json.load(sys.stdin)["kld"]
ratio = "%.3f" % (k["mean"] / float(rkld)) if rkld != "-" else "-"
sratio = "%.4f" % (int(size) / int(rbytes)) if rbytes != "-" else "-"
print("| %s | %s | %s | %s | %.6f | %.6f | %.3f | %s |" % (
    typ, prod, size, sratio, k["ppl_ratio"], k["mean"], 100 * k["same_top"], ratio))
' "$1" "$2" "$3" "$5" "$6"
}

echo "model $(basename "$model"), text $(basename "$text"), -c $ctx${chunks:+, $chunks chunks}"
echo "| type | quantizer | file bytes | size / llama.cpp's | PPL ratio | mean KLD | same-top % | KLD / llama.cpp's table |"
echo "|---|---|---|---|---|---|---|---|"
for t in $types; do
    out=$work/slm-$t.gguf
    # shellcheck disable=SC2086
    "$slm" quantize "$f32" "$out" "$t" -t "$threads" ${imatrix:+--imatrix "$imatrix"} \
        ${gptq:+--gptq -f "$gptq" $gptq_opts} ${selfcal:+--self-calibrate "$selfcal"} >/dev/null
    measure "slm${imatrix:+ +imatrix}${gptq:+ +gptq}${selfcal:+ --self-calibrate $selfcal}" "$t" "$out"
    if [ -n "$lq" ]; then
        out=$work/llama-$t.gguf
        li=${ll_imatrix:-$imatrix}
        "$lq" ${li:+--imatrix "$li"} "$f32" "$out" "$t" "$threads" >/dev/null 2>&1
        measure "llama.cpp${li:+ +imatrix}" "$t" "$out"
    fi
done
