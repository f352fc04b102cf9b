#!/bin/sh
# scripts/bench-vs-peers.sh — slm bench, llama.cpp's llama-bench and ik_llama.cpp's llama-bench
# (with and without -rtr 1) on the same files, interleaved, two rounds; one JSONL / CSV row per
# test on stdout, prefixed "TOOL FILE THREADS" (take the best of the rounds per row).
# usage: [SLM=build/slm] [LB=.../llama-bench] [IK=.../ik llama-bench] [FILES="f16 Q4_K_M ..."]
#        [ROUNDS=2] [REPS=2] scripts/bench-vs-peers.sh
#        in a folder with FILE.gguf for each of FILES (default f16 Q4_K_M Q8_0 Q4_0 IQ4_XS;
#        ../shared/PEERS.md says how to build ik_llama.cpp; docs/bench.md how the files are made)
SLM=${SLM:-build/slm}
LB=${LB:-${SLM_LLAMA_BIN:-$HOME/.cache/slmkit/llama.cpp-src/build/bin}/llama-bench}
IK=${IK:-$HOME/.cache/slmkit/ik_llama.cpp/build/bin/llama-bench}
FILES=${FILES:-f16 Q4_K_M Q8_0 Q4_0 IQ4_XS}
ROUNDS=${ROUNDS:-2}
REPS=${REPS:-2}
for round in $(seq "$ROUNDS"); do
 for f in $FILES; do
  for t in 1 2; do
   echo "# round $round $f t=$t load $(cut -d' ' -f1 /proc/loadavg)"
   "$SLM" bench -m $f.gguf -p 512 -n 128 -r $REPS -t $t -o jsonl 2>/dev/null | sed "s/^/slm $f $t /"
   $LB -m $f.gguf -p 512 -n 128 -r $REPS -t $t -o jsonl 2>/dev/null | sed "s/^/llama $f $t /"
   $IK -m $f.gguf -p 512 -n 128 -r $REPS -t $t -o csv 2>/dev/null | sed "s/^/ik $f $t /"
   $IK -m $f.gguf -p 512 -n 128 -r $REPS -t $t -rtr 1 -o csv 2>/dev/null | sed "s/^/ikrtr $f $t /"
  done
 done
done
