#!/usr/bin/env bash
# Build llama.cpp's CLI tools (the interop oracles and benchmark peers) from the llama.cpp source
# that the pinned node-llama-cpp npm package ships as a git bundle. Called by `make deps`.
# Idempotent: when $LLAMA_CPP_DIR is already at the bundle's commit and built with the same options,
# it only checks and returns (a stamp file records commit + options + targets).
# Usage: scripts/llama-tools.sh [LLAMA_CPP_DIR]   (default ~/.cache/slmkit/llama.cpp-src)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-${LLAMA_CPP_DIR:-$HOME/.cache/slmkit/llama.cpp-src}}
bundle=$PWD/tests/interop/node_modules/node-llama-cpp/llama/gitRelease.bundle
targets="llama-quantize llama-perplexity llama-imatrix llama-bench llama-completion llama-tokenize"
opts="-DCMAKE_BUILD_TYPE=Release -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DGGML_BLAS=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF"
# The CPU's own ISA, as GGML_NATIVE would pick it, but without AMX on x86: ggml's AMX kernels die
# (SIGILL / general protection fault) on the VMs these tools run on, whose CPUs report AMX without
# the kernel granting its tile state; slmkit does not use AMX either, so the peers compare alike.
if [ "$(uname -m)" = x86_64 ] && grep -q '^flags' /proc/cpuinfo; then
    cpu=$(grep -m1 '^flags' /proc/cpuinfo)
    isa="-DGGML_NATIVE=OFF"
    for pair in sse4_2:SSE42 f16c:F16C fma:FMA bmi2:BMI2 avx:AVX avx2:AVX2 avx_vnni:AVX_VNNI avx512f:AVX512 \
                avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
        if echo " $cpu " | grep -q " ${pair%%:*} "; then isa="$isa -DGGML_${pair#*:}=ON"; else isa="$isa -DGGML_${pair#*:}=OFF"; fi
    done
    opts="$opts $isa -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
else
    opts="$opts -DGGML_NATIVE=ON"
fi
jobs=${LLAMA_JOBS:-2}

[ -f "$bundle" ] || { echo "llama-tools: $bundle missing (npm install in tests/interop first)" >&2; exit 1; }
want=$(git bundle list-heads "$bundle" | awk '$2 == "HEAD" {print $1}')
[ -n "$want" ] || { echo "llama-tools: no HEAD in $bundle" >&2; exit 1; }
stamp_text="$want $opts $targets"
stamp=$dir/build/.slmkit-stamp

all_built() {
    for t in $targets; do [ -x "$dir/build/bin/$t" ] || return 1; done
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_text" ] && all_built &&
   [ "$(git -C "$dir" rev-parse HEAD 2>/dev/null)" = "$want" ]; then
    echo "llama-tools: up to date ($dir at ${want:0:12})"
    exit 0
fi

if [ ! -d "$dir/.git" ]; then
    echo "llama-tools: cloning the llama.cpp source from $bundle into $dir"
    mkdir -p "$(dirname "$dir")"
    git clone -q "$bundle" "$dir"
fi
if [ "$(git -C "$dir" rev-parse HEAD)" != "$want" ]; then
    echo "llama-tools: moving $dir to ${want:0:12}"
    git -C "$dir" fetch -q "$bundle" HEAD
    git -C "$dir" -c advice.detachedHead=false checkout -q "$want"
fi
mkdir -p "$dir/build"
echo "llama-tools: building $targets (a fresh build takes about 5-8 minutes on 2 cores)"
# shellcheck disable=SC2086
cmake -S "$dir" -B "$dir/build" $opts >"$dir/build/configure.log" 2>&1 ||
    { tail -n 40 "$dir/build/configure.log"; exit 1; }
# shellcheck disable=SC2086
cmake --build "$dir/build" -j"$jobs" --target $targets >"$dir/build/build.log" 2>&1 ||
    { tail -n 40 "$dir/build/build.log"; exit 1; }
all_built || { echo "llama-tools: a target is missing after the build" >&2; exit 1; }
echo "$stamp_text" >"$stamp"
echo "llama-tools: built in $dir/build/bin"
