#!/usr/bin/env bash
# Conversion benchmark (issue: foundation, bar 3): TinyLlama-1.1B-shape BF16 checkpoint -> F16 GGUF,
# wall time (fsync included) and peak RSS, next to the disk's own time to write the same bytes durably.
# usage: scripts/bench-convert.sh [WORKDIR]   (needs ~7 GB free in WORKDIR; default /tmp/slm-bench-convert)
set -euo pipefail
cd "$(dirname "$0")/.."
SLM=${SLM:-build/slm}
W=${1:-/tmp/slm-bench-convert}
mkdir -p "$W"
if [ ! -f "$W/tinyllama/model.safetensors" ]; then
    "$SLM" bench synth --shape tinyllama-1.1b --dtype bf16 -o "$W/tinyllama" --force
fi
cat "$W/tinyllama/model.safetensors" > /dev/null   # warm cache, as llama.cpp's figure was taken
for i in 1 2 3; do
    rm -f "$W/out.gguf"; sync
    /usr/bin/time -f "convert: %e s wall, %M KB peak RSS" "$SLM" convert "$W/tinyllama" -o "$W/out.gguf" --outtype f16
done
bytes=$(stat -c %s "$W/out.gguf")
for i in 1 2 3; do
    rm -f "$W/dd.bin"; sync
    dd if=/dev/zero of="$W/dd.bin" bs=1M count=$((bytes / 1048576)) conv=fsync 2>&1 | tail -1
done
rm -f "$W/dd.bin" "$W/out.gguf"
