#!/bin/sh
# scripts/bench-vs-llama.sh — slm bench and llama-bench side by side on the same GGUF
# files, runs interleaved (slm, llama.cpp, slm, ... and the order swapped every
# round), median t/s per test over the rounds and the ratio slm / llama.cpp.
# tg rows also give the weight bytes read per second (model size x t/s).
#
# usage: [LLAMA_BENCH=.../llama-bench] scripts/bench-vs-llama.sh [options] FILE.gguf...
#   -t LIST   thread counts (default 1,2)
#   -p N      prompt length (default 512; 0 skips)
#   -n N      generated tokens (default 128; 0 skips)
#   -r N      repetitions per run (default 3)
#   -R N      rounds (default 3)
#   SLM=path  the slm binary (default build/slm)
# Prints a markdown table on stdout; the raw CSV rows go to ${OUT:-bench-vs-llama.csv}.
set -eu
SLM=${SLM:-build/slm}
LLAMA_BENCH=${LLAMA_BENCH:-${SLM_LLAMA_BIN:+$SLM_LLAMA_BIN/}llama-bench}
OUT=${OUT:-bench-vs-llama.csv}
threads=1,2 p=512 n=128 r=3 rounds=3
while getopts t:p:n:r:R: o; do
    case $o in
    t) threads=$OPTARG ;; p) p=$OPTARG ;; n) n=$OPTARG ;; r) r=$OPTARG ;; R) rounds=$OPTARG ;;
    *) echo "usage: $0 [-t LIST] [-p N] [-n N] [-r N] [-R N] FILE.gguf..." >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "$0: no GGUF files given" >&2; exit 2; }
command -v "$LLAMA_BENCH" >/dev/null 2>&1 || [ -x "$LLAMA_BENCH" ] || { echo "$0: llama-bench not found (set LLAMA_BENCH)" >&2; exit 2; }

# one CSV row per test: tool,file,threads,n_prompt,n_gen,avg_ts,model_size
pick() { # $1 tool: keep the columns we need from a CSV with a header
    awk -F, -v tool="$1" -v file="$2" 'NR == 1 { for (i = 1; i <= NF; i++) { gsub(/"/, "", $i); c[$i] = i }; next }
        { gsub(/"/, ""); print tool "," file "," $c["n_threads"] "," $c["n_prompt"] "," $c["n_gen"] "," $c["avg_ts"] "," $c["model_size"] }'
}
run_slm() { "$SLM" bench -m "$1" -p "$p" -n "$n" -t "$2" -r "$r" -o csv 2>/dev/null | pick slm "$1"; }
run_llama() { "$LLAMA_BENCH" -m "$1" -p "$p" -n "$n" -t "$2" -r "$r" -o csv 2>/dev/null | pick llama.cpp "$1"; }

: > "$OUT"
round=0
while [ $round -lt "$rounds" ]; do
    for f in "$@"; do
        for t in $(echo "$threads" | tr , ' '); do
            if [ $((round % 2)) -eq 0 ]; then
                run_slm "$f" "$t" >> "$OUT"; run_llama "$f" "$t" >> "$OUT"
            else
                run_llama "$f" "$t" >> "$OUT"; run_slm "$f" "$t" >> "$OUT"
            fi
        done
    done
    round=$((round + 1))
    echo "round $round of $rounds done" >&2
done

echo "| file | threads | test | slm t/s | llama.cpp t/s | ratio | slm weight GB/s | llama.cpp weight GB/s |"
echo "|---|---:|---|---:|---:|---:|---:|---:|"
sort -t, -k2,2 -k3,3n -k4,4n -k5,5n "$OUT" | awk -F, '
    function median(list,   a, k, m, i, j, x) {
        k = split(list, a, " ")
        for (i = 2; i <= k; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
        return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    { key = $2 "," $3 "," $4 "," $5; if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
      v[key, $1] = v[key, $1] " " $6; size[key] = $7 }
    END {
        for (i = 1; i <= nk; i++) {
            split(order[i], k, ",")
            test = k[3] > 0 ? "pp" k[3] : "tg" k[4]
            s = median(v[order[i], "slm"]); l = median(v[order[i], "llama.cpp"])
            f = k[1]; sub(/.*\//, "", f)
            gb_s = test ~ /^tg/ ? sprintf("%.1f", s * size[order[i]] / 1e9) : "-"
            gb_l = test ~ /^tg/ ? sprintf("%.1f", l * size[order[i]] / 1e9) : "-"
            printf "| %s | %s | %s | %.1f | %.1f | %.2fx | %s | %s |\n", f, k[2], test, s, l, (l > 0 ? s / l : 0), gb_s, gb_l
        }
    }'
