#!/usr/bin/env bash
# The aarch64 build, proven under emulation (qemu-user; binfmt is not needed: qemu is
# called explicitly). For each emulated CPU: the kernel self-check, the kernel set it
# picks, greedy text and perplexity of stories-llama256 at F16, Q8_0, Q6_K, Q4_K_M, Q4_0,
# Q2_K, IQ4_XS, IQ4_NL, IQ3_S and IQ2_XS against the x86 build (models converted and quantized on
# x86; the types that need one get an imatrix made on x86); the SVE set's
# self-check at 128, 256 and 512 bits; then verify, run --bundle, install and run --store
# of a signed bundle.
# Ends with 'N passed, N failed'; exit 1 if anything failed. `make check-aarch64` runs it.
#   SLM_X86, SLM_ARM   the two binaries (default build/slm, build-aarch64/slm)
#   QEMU_CPUS          CPUs to emulate (default: cortex-a53 neoverse-n1 max,sve=off max)
#   CHECK_TYPES        model types (default: F16 Q8_0 Q6_K Q4_K_M Q4_0 Q2_K IQ4_XS IQ4_NL IQ3_S IQ2_XS;
#                      F16 first, Q8_0 for the bundle steps; any slm quantize TYPE)
#   SVE_LENGTHS        SVE vector lengths for the extra self-checks (default: 128 256 512)
#   CHECK_OUT          scratch folder (default build-aarch64/check)
#   QEMU_LD_PREFIX     sysroot for qemu -L (default: none, see below)
set -uo pipefail
cd "$(dirname "$0")/.."
X86=${SLM_X86:-build/slm}
ARM=${SLM_ARM:-build-aarch64/slm}
MODELS=${SLM_MODELS:-../shared/models}
CORPUS=${SLM_CORPUS:-../shared/corpus}
OUT=${CHECK_OUT:-build-aarch64/check}
read -r -a CPUS <<< "${QEMU_CPUS:-cortex-a53 neoverse-n1 max,sve=off max}"
read -r -a TYPES <<< "${CHECK_TYPES:-F16 Q8_0 Q6_K Q4_K_M Q4_0 Q2_K IQ4_XS IQ4_NL IQ3_S IQ2_XS}"
PROMPT="Once upon a time"
NTOK=12
export OPENBLAS_NUM_THREADS=1   # the runs use -t 1; OpenBLAS threads only slow emulation down
export SLM_MODELS SLM_CORPUS
unset SLM_KERNEL
# The loader and libc must come from one glibc build. `-L /usr/aarch64-linux-gnu` takes
# ld.so from the cross package (libc6-arm64-cross) while ld.so.cache sends it to the arm64
# multiarch libc.so.6 (libc6:arm64, a later Debian revision): glibc's private loader ABI
# then disagrees, and fork()'s child loops forever in its thread-list walk (install's
# health check) and OpenBLAS's threads spin. With the multiarch packages installed
# (make deps), the host root holds a matching /lib/ld-linux-aarch64.so.1: use it.
if [ -z "${QEMU_LD_PREFIX:-}" ] && [ ! -e /lib/ld-linux-aarch64.so.1 ]; then
    export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu   # no multiarch loader: fork may hang
fi

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
die() { echo "check-aarch64: $*" >&2; echo "0 passed, 1 failed"; exit 1; }
emu() { local cpu=$1; shift; timeout "${EMU_TIMEOUT:-300}" qemu-aarch64 -cpu "$cpu" "$ARM" "$@"; }
# the set each CPU should pick: its best one among the sets built (SLM_KERNEL accepts
# only a set the CPU runs, so the first accepted name of the CPU's ladder)
ladder() {
    case $1 in
    cortex-a53) echo neon ;;
    neoverse-n1) echo "dotprod neon" ;;
    max,sve=off) echo "i8mm fhm dotprod neon" ;;
    *) echo "sve i8mm fhm dotprod neon" ;;
    esac
}

command -v qemu-aarch64 >/dev/null || die "qemu-aarch64 missing (make deps)"
[ -x "$X86" ] && [ -x "$ARM" ] || die "build $X86 and $ARM first (make, make cross-aarch64)"
[ "$(od -An -tx1 -j18 -N2 "$ARM" | tr -d ' ')" = b700 ] || die "$ARM is not an aarch64 ELF (e_machine 0xb7)"
rm -rf "$OUT" && mkdir -p "$OUT" || die "cannot make $OUT"

# reference models and outputs from the x86 build
"$X86" convert "$MODELS/stories-llama256" -o "$OUT/x86-F16.gguf" --outtype f16 >/dev/null 2>&1 || die "x86 convert failed"
# the recipes that need importance data (as llama-quantize) get an imatrix from the calibration text
needs_imatrix() { case $1 in IQ3_XXS | IQ3_XS | IQ2_* | IQ1_*) return 0 ;; *) return 1 ;; esac; }
# i-quants: x86 (AVX-512 VNNI) runs their batches on the int8 GEMM (activations quantized to
# Q8_0 / Q8_K), aarch64 dequantizes and multiplies with OpenBLAS sgemm (F32 activations), whose
# kernels differ by CPU (x86 alone spreads 2.2e-4 relative on IQ2_XS across OPENBLAS_CORETYPE):
# 3e-3 against x86 (measured up to 1.5e-3 on IQ2_XS); the grid types (IQ3, IQ2, IQ1) also to
# every digit between the emulated CPUs with one OpenBLAS kernel (OPENBLAS_CORETYPE=ARMV8).
# The other quantized types run the int8 GEMM on both sides, bit for bit, but x86's AVX-512 set
# computes softmax and SiLU with its own exp (runtime/vec_avx512.c, within 2 ulp of expf) where
# aarch64 runs libm's expf: 5e-4 (Q2_K moved 1.9e-4, the others under 1e-7).
iq_type() { case $1 in IQ4_* | IQ3_* | IQ2_* | IQ1_*) return 0 ;; *) return 1 ;; esac; }
grid_type() { case $1 in IQ3_* | IQ2_* | IQ1_*) return 0 ;; *) return 1 ;; esac; }
for t in "${TYPES[@]:1}"; do
    imx=()
    if needs_imatrix "$t"; then
        [ -e "$OUT/imatrix.gguf" ] || "$X86" imatrix -m "$OUT/x86-F16.gguf" -f "$CORPUS/tinystories-calib.txt" \
            -o "$OUT/imatrix.gguf" -c 64 --chunks 16 -t 1 >/dev/null 2>&1 || die "x86 imatrix failed"
        imx=(--imatrix "$OUT/imatrix.gguf")
    fi
    "$X86" quantize "$OUT/x86-F16.gguf" "$OUT/x86-$t.gguf" "$t" "${imx[@]}" >/dev/null 2>&1 || die "x86 quantize $t failed"
done
head -c 3000 "$CORPUS/tinystories-eval.txt" > "$OUT/eval.txt"
# an x86 host without AVX-512 has no int8 GEMM: then both sides run the scalar set's batches
X86_PPL_KERNEL= ARM_PPL_KERNEL=
if ! SLM_KERNEL=avx512 "$X86" --version >/dev/null 2>&1; then
    X86_PPL_KERNEL=scalar ARM_PPL_KERNEL=scalar
    echo "NOTE: this x86 CPU has no AVX-512 (no int8 GEMM): perplexity compared on the scalar sets' batches"
fi
ppl() { sed -n 's/.*"ppl":\([0-9.eE+-]*\),.*/\1/p'; }
for t in "${TYPES[@]}"; do
    "$X86" run -m "$OUT/x86-$t.gguf" -p "$PROMPT" -n $NTOK --temp 0 -t 1 > "$OUT/x86-$t.txt" 2>/dev/null || die "x86 run $t"
    # the x86 reference: its default (best) set. Batches of Q8_0..Q2_K run the int8 GEMM there
    # (AVX-512) and on aarch64 (neon, dotprod, i8mm) with the same arithmetic, bit for bit
    # (bench kernels --check); F16 runs sgemm on both
    SLM_KERNEL=$X86_PPL_KERNEL "$X86" perplexity -m "$OUT/x86-$t.gguf" -f "$OUT/eval.txt" -c 64 --chunks 4 -t 1 \
        --json 2>/dev/null | ppl > "$OUT/x86-$t.ppl"
done

# quantization under emulation gives the x86 bytes (the search helpers are bit-identical
# to the baseline loops; conversion is a plain copy, left out: it is slow under qemu)
for t in ${QUANT_TYPES:-}; do  # e.g. QUANT_TYPES=Q4_0: minutes per type under qemu
    emu "${CPUS[0]}" quantize "$OUT/x86-F16.gguf" "$OUT/arm-$t.gguf" "$t" -t 1 >/dev/null 2>&1 &&
        cmp -s "$OUT/arm-$t.gguf" "$OUT/x86-$t.gguf" && ok "quantize $t under -cpu ${CPUS[0]}: same bytes as x86" ||
        bad "quantize $t under -cpu ${CPUS[0]} differs from x86"
done

for cpu in "${CPUS[@]}"; do
    echo "== -cpu $cpu"
    emu "$cpu" --version > "$OUT/version.txt" 2>&1
    picked=$(sed -n 's/^kernels: \([a-z0-9]*\) .*/\1/p' "$OUT/version.txt")
    want=neon
    for s in $(ladder "$cpu"); do
        if SLM_KERNEL=$s emu "$cpu" --version >/dev/null 2>&1; then want=$s; break; fi
    done
    [ -n "$picked" ] && [ "$picked" = "$want" ] && ok "$cpu picks $picked ($(sed -n 's/^kernels: //p' "$OUT/version.txt"))" ||
        bad "$cpu picks '$picked', expected $want"
    for s in avx2 i8mm sve fhm; do  # a set the CPU cannot run is refused, not run (no SIGILL)
        case " $(ladder "$cpu") " in *" $s "*) continue ;; esac
        SLM_KERNEL=$s emu "$cpu" --version >/dev/null 2>"$OUT/refuse.txt"
        rc=$?
        [ $rc = 2 ] && grep -q "SLM_KERNEL=$s" "$OUT/refuse.txt" && ok "$cpu refuses SLM_KERNEL=$s" ||
            bad "$cpu: SLM_KERNEL=$s gave exit $rc"
    done
    # every set the CPU runs (five under max: about 30 s of CPU, minutes of wall time on a loaded host)
    if EMU_TIMEOUT=${EMU_TIMEOUT:-900} emu "$cpu" bench kernels --check > "$OUT/check.txt" 2>&1; then
        ok "$cpu kernel self-check: $(tail -n 1 "$OUT/check.txt")"
    else
        grep FAIL "$OUT/check.txt" | head -n 5
        bad "$cpu kernel self-check: $(tail -n 1 "$OUT/check.txt")"
    fi
    # the fhm set (FMLAL F16 products) where the CPU has it, even when a set above it is picked
    if [ "$(SLM_KERNEL=fhm emu "$cpu" --version 2>/dev/null | sed -n 's/^kernels: \([a-z0-9]*\) .*/\1/p')" = fhm ]; then
        SLM_KERNEL=fhm emu "$cpu" run -m "$OUT/x86-F16.gguf" -p "$PROMPT" -n $NTOK --temp 0 -t 1 > "$OUT/arm-fhm.txt" 2>/dev/null &&
            cmp -s "$OUT/arm-fhm.txt" "$OUT/x86-F16.txt" && ok "$cpu SLM_KERNEL=fhm F16 greedy text = x86" ||
            bad "$cpu SLM_KERNEL=fhm F16 greedy text differs: '$(head -c 60 "$OUT/arm-fhm.txt")'"
    fi
    for t in "${TYPES[@]}"; do
        if emu "$cpu" run -m "$OUT/x86-$t.gguf" -p "$PROMPT" -n $NTOK --temp 0 -t 1 > "$OUT/arm-$t.txt" 2>/dev/null &&
            cmp -s "$OUT/arm-$t.txt" "$OUT/x86-$t.txt"; then
            ok "$cpu $t greedy text = x86: $(head -c 60 "$OUT/arm-$t.txt" | tr '\n' ' ')"
        else
            bad "$cpu $t greedy text differs: '$(head -c 60 "$OUT/arm-$t.txt")' vs '$(head -c 60 "$OUT/x86-$t.txt")'"
        fi
        p=$(SLM_KERNEL=$ARM_PPL_KERNEL emu "$cpu" perplexity -m "$OUT/x86-$t.gguf" -f "$OUT/eval.txt" -c 64 --chunks 4 -t 1 --json 2>/dev/null | ppl)
        q=$(cat "$OUT/x86-$t.ppl")
        tol=1e-4
        case $t in F16 | F32) ;; *) tol=5e-4 ;; esac
        iq_type "$t" && tol=3e-3
        if [ -n "$p" ] && [ -n "$q" ] && awk -v a="$p" -v b="$q" -v e=$tol 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= e * b) }'; then
            ok "$cpu $t perplexity $p (x86 $q)"
        else
            bad "$cpu $t perplexity '$p' vs x86 '$q' (more than $tol relative)"
        fi
        if grid_type "$t"; then # one OpenBLAS kernel: every CPU (neon, dotprod, i8mm, sve) the same digits
            p=$(OPENBLAS_CORETYPE=ARMV8 emu "$cpu" perplexity -m "$OUT/x86-$t.gguf" -f "$OUT/eval.txt" -c 64 --chunks 4 -t 1 --json 2>/dev/null | ppl)
            [ -e "$OUT/arm-$t.ppl" ] || echo "$p" > "$OUT/arm-$t.ppl"
            q=$(cat "$OUT/arm-$t.ppl")
            [ -n "$p" ] && [ "$p" = "$q" ] && ok "$cpu $t perplexity with OPENBLAS_CORETYPE=ARMV8 $p (= ${CPUS[0]})" ||
                bad "$cpu $t perplexity with OPENBLAS_CORETYPE=ARMV8 '$p' vs ${CPUS[0]} '$q'"
        fi
    done
done

# the SVE set is vector-length agnostic: its self-check at each length (qemu's sveNNN=on
# caps the length; the set must say which one it ran at)
for bits in ${SVE_LENGTHS-128 256 512}; do
    cpu="max,sve$bits=on"
    if emu "$cpu" bench kernels --check --kernel sve > "$OUT/check-sve$bits.txt" 2>&1 &&
        grep -q "^sve ($bits-bit vectors): [0-9]* passed, 0 failed" "$OUT/check-sve$bits.txt"; then
        ok "$cpu SVE self-check: $(grep '^sve ' "$OUT/check-sve$bits.txt")"
    else
        grep FAIL "$OUT/check-sve$bits.txt" | head -n 5
        bad "$cpu SVE self-check: $(tail -n 1 "$OUT/check-sve$bits.txt")"
    fi
done

# a signed bundle: made on x86, verified, installed and run under emulation
B=$OUT/bundle
mkdir -p "$B"
if "$X86" keygen -o "$B/release.key" >/dev/null 2>&1 &&
    "$X86" trust init -o "$B/root.json" --key "$B/release.key.pub" --threshold 1 --expires 365d \
        --sign-with "$B/release.key" >/dev/null 2>&1 &&
    "$X86" bundle "$OUT/x86-Q8_0.gguf" -o "$B/model.slmb" --name stories-llama256 --version 1 --expires 30d \
        --canary "Once upon a time, there was a little girl named Lily." --key "$B/release.key" >/dev/null 2>&1; then
    cpu=${CPUS[0]}
    emu "$cpu" verify "$B/model.slmb" --trust "$B/root.json" >/dev/null 2>&1 && ok "$cpu verify bundle" || bad "$cpu verify bundle"
    emu "$cpu" run --bundle "$B/model.slmb" --trust "$B/root.json" -p "$PROMPT" -n $NTOK --temp 0 -t 1 \
        > "$B/run-bundle.txt" 2>/dev/null && cmp -s "$B/run-bundle.txt" "$OUT/x86-Q8_0.txt" &&
        ok "$cpu run --bundle (verified in memory) = x86 text" || bad "$cpu run --bundle"
    # install: the health check runs in a fork()ed child (canary perplexity), then the slot is committed
    EMU_TIMEOUT=120 emu "$cpu" install "$B/model.slmb" --store "$B/store" --trust "$B/root.json" >/dev/null 2>&1 &&
        ok "$cpu install bundle (health-checked in a forked child)" || bad "$cpu install bundle"
    emu "$cpu" run --store "$B/store" -p "$PROMPT" -n $NTOK --temp 0 -t 1 > "$B/run.txt" 2>/dev/null &&
        cmp -s "$B/run.txt" "$OUT/x86-Q8_0.txt" && ok "$cpu run --store = x86 text" || bad "$cpu run --store"
    cp "$B/model.slmb" "$B/bad.slmb" && printf '\x01' | dd of="$B/bad.slmb" bs=1 seek=2000 conv=notrunc 2>/dev/null
    emu "$cpu" verify "$B/bad.slmb" --trust "$B/root.json" >/dev/null 2>&1 && bad "$cpu verify accepted a changed byte" ||
        ok "$cpu verify refuses a changed byte"
else
    bad "making the signed bundle on x86"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
