#!/usr/bin/env bash
# scripts/deb-control.sh STAGE VERSION ARCH: DEBIAN/control (on stdout) for the tree `make install
# PREFIX=/usr DESTDIR=STAGE` staged. Depends: the Debian package of every shared library that the
# ELF files of STAGE need (objdump NEEDED, resolved with ldconfig's cache, owner from dpkg -S), at
# least the version installed here, i.e. the one slmkit was built and tested against.
set -euo pipefail
stage=$1 version=$2 arch=$3
die() { echo "deb-control: $*" >&2; exit 1; }
[ -d "$stage" ] || die "$stage: no staged tree"
declare -A pkgs=()
while IFS= read -r -d '' f; do
    [[ $(file -b "$f" 2>/dev/null) == ELF* ]] || continue
    for lib in $(objdump -p "$f" | awk '$1 == "NEEDED" {print $2}'); do
        case $lib in libslm.so*) continue ;; esac      # our own, in this package
        # (awk reads to the end: an early exit would SIGPIPE ldconfig, fatal under pipefail)
        path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64|AArch64|64bit/ && !p {p = $NF} END {print p}')
        [ -n "$path" ] || path=$(ldconfig -p | awk -v l="$lib" '$1 == l && !p {p = $NF} END {print p}')
        [ -n "$path" ] || die "$f needs $lib, which ldconfig does not know"
        real=$(readlink -f "$path")
        owner=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$real" 2>/dev/null || true)
        [ -n "$owner" ] || owner=$(dpkg -S "${path#/usr}" 2>/dev/null || dpkg -S "/usr$path" 2>/dev/null || true)
        [ -n "$owner" ] || die "$lib ($path): no Debian package owns it"
        pkg=${owner%%:*}            # "libzstd1:amd64: /path" -> libzstd1
        pkg=${pkg%%,*}
        pkgs[$pkg]=1
    done
done < <(find "$stage" -type f -print0)
deps=()
for p in $(printf '%s\n' "${!pkgs[@]}" | sort); do
    # this architecture's copy (multiarch systems also hold e.g. the arm64 one)
    v=$(dpkg-query -W -f='${Version}\n' "$p:$arch" 2>/dev/null | sed -n 1p) || true
    [ -n "$v" ] || v=$(dpkg-query -W -f='${Version}\n' "$p" 2>/dev/null | sed -n 1p) || true
    [ -n "$v" ] || die "dpkg-query: $p is not installed"
    deps+=("$p (>= $v)")
done
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
dep_line=$(IFS=,; echo "${deps[*]}" | sed 's/,/, /g')
cat <<CONTROL
Package: slmkit
Version: $version
Architecture: $arch
Maintainer: slmkit developers <slmkit@localhost>
Installed-Size: $size
Depends: $dep_line
Recommends: python3
Section: utils
Priority: optional
Description: small language models: convert, quantize, measure, sign and run
 slm converts Hugging Face checkpoints (safetensors) to GGUF, quantizes them
 with llama.cpp's recipes (with importance matrices and GPTQ), measures
 perplexity, KL-divergence and speed, signs bundles and installs them A/B with
 a health check, and runs or serves the models (OpenAI-compatible HTTP).
 .
 This package holds the slm tool with its man pages and bash/zsh completion,
 libslm (libslm.so.0, libslm.a, slm.h, slm.pc) and the Python binding slmkit.
CONTROL
