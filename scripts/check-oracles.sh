#!/usr/bin/env bash
# scripts/check-oracles.sh — shows that no oracle-dependent check can skip in CI (issue 21).
# Runs the test binary twice under SLM_REQUIRE_ORACLE=1:
#   1. without the oracles: SLM_TESTDIR points at a temporary copy of tests/ that has no
#      interop/node_modules (node-llama-cpp, HF tokenizers, Jinja, tokenizer files) and
#      SLM_LLAMA_BIN at an empty directory (no llama.cpp CLI tools). The run must fail, every
#      failing test must fail because an oracle is missing, and each is listed with what is missing.
#   2. with them (the tree's tests/ and $SLM_LLAMA_BIN): no test may report an oracle skip.
# The shared node_modules is never touched (the copy leaves it out).
# usage: scripts/check-oracles.sh [--missing-only] [Criterion args, e.g. --filter 'tokenizer/*']
# Needs build/slm and build/slm_tests (make build/slm build/slm_tests). Exit 0 when both hold.
set -u
cd "$(dirname "$0")/.."
repo=$PWD
missing_only=0
[ "${1:-}" = --missing-only ] && { missing_only=1; shift; }
bin=${SLM_BIN:-$repo/build/slm}
tests=${SLM_TESTS_BIN:-$repo/build/slm_tests}
export SLM_MODELS=${SLM_MODELS:-$repo/../shared/models} SLM_CORPUS=${SLM_CORPUS:-$repo/../shared/corpus}
[ -x "$bin" ] && [ -x "$tests" ] || { echo "check-oracles: build first (make build/slm build/slm_tests)" >&2; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slm-oracles-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/repo/tests" "$tmp/no-llama-bin"
tar -C tests --exclude='./interop/node_modules' -cf - . | tar -C "$tmp/repo/tests" -xf -
ln -s "$repo/fuzz" "$tmp/repo/fuzz"
[ ! -e "$tmp/repo/tests/interop/node_modules" ] || { echo "check-oracles: the copy still has node_modules" >&2; exit 2; }

# Criterion's report -> "suite::test<TAB>why" per failing test (why: the oracle message, or "NOT AN ORACLE")
failures() {
    awk '/oracle required \(SLM_REQUIRE_ORACLE=1\) but/ { sub(/.*oracle required \(SLM_REQUIRE_ORACLE=1\) but /, ""); why = $0 }
         /^\[FAIL\]/ { name = $2; sub(/:$/, "", name); print name "\t" (why != "" ? why : "NOT AN ORACLE: see the log"); why = "" }' "$1"
}

status=0
echo "== 1. oracles missing: SLM_TESTDIR=<copy without node_modules>, SLM_LLAMA_BIN=<empty dir>, SLM_REQUIRE_ORACLE=1"
SLM_TESTDIR=$tmp/repo/tests SLM_LLAMA_BIN=$tmp/no-llama-bin SLM_REQUIRE_ORACLE=1 SLM_BIN=$bin \
    "$tests" -j2 --short-filename "$@" >"$tmp/missing.log" 2>&1
rc=$?
failures "$tmp/missing.log" >"$tmp/missing.txt"
n=$(wc -l <"$tmp/missing.txt")
sed 's/^/   FAIL /' "$tmp/missing.txt"
grep -E '^\[====\] Synthesis' "$tmp/missing.log" | sed 's/^/   /'
if [ "$rc" -eq 0 ] || [ "$n" -eq 0 ]; then
    echo "   WRONG: the suite passed without its oracles"; status=1
elif grep -q 'NOT AN ORACLE' "$tmp/missing.txt"; then
    echo "   WRONG: a test failed for another reason (log: kept in ${TMPDIR:-/tmp}/slm-oracles-missing.log)"
    cp "$tmp/missing.log" "${TMPDIR:-/tmp}/slm-oracles-missing.log"; status=1
else
    echo "   ok: exit $rc, $n checks could not run and each is named"
fi
[ "$missing_only" = 1 ] && exit $status

echo "== 2. oracles present: tests/ of the tree, SLM_LLAMA_BIN=${SLM_LLAMA_BIN:-(unset)}, SLM_REQUIRE_ORACLE=1"
SLM_TESTDIR=$repo/tests SLM_REQUIRE_ORACLE=1 SLM_BIN=$bin "$tests" -j2 --short-filename "$@" >"$tmp/present.log" 2>&1
rc=$?
grep -E '^\[====\] Synthesis' "$tmp/present.log" | sed 's/^/   /'
skips=$(grep -c 'SKIPPED: oracle' "$tmp/present.log")
failures "$tmp/present.log" | sed 's/^/   FAIL /'
if [ "$rc" -ne 0 ] || [ "$skips" -ne 0 ]; then
    echo "   WRONG: exit $rc, $skips oracle skips"; status=1
else
    echo "   ok: exit 0, no oracle skipped"
fi
exit $status
