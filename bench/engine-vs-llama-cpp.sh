#!/usr/bin/env bash
# Engine speed side by side with llama.cpp (BENCHMARKS.md, "Engine speed"): eval tokens/s (ctx 256,
# llama-perplexity's chunks) and generation tokens/s (greedy after BOS), ours and llama.cpp's through
# node-llama-cpp (bench/llama-cpp-speed.mjs), on the same GGUF files, thread counts and tokens.
# Runs are paired (ours, llama.cpp, ours, …) and each column is the median of --pairs runs.
#
#   bench/engine-vs-llama-cpp.sh --modules DIR [--pairs 3] [--chunks 2] [--generate 64] MODEL.gguf...
#
# DIR is where `npm install node-llama-cpp` ran. Build first: dotnet build -c Release.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pairs=3 chunks=2 generate=64 modules=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --modules) modules=$2; shift 2 ;;
    --pairs) pairs=$2; shift 2 ;;
    --chunks) chunks=$2; shift 2 ;;
    --generate) generate=$2; shift 2 ;;
    *) break ;;
  esac
done
[[ -n $modules && $# -gt 0 ]] || { echo "usage: $0 --modules DIR [--pairs N] [--chunks N] [--generate N] MODEL.gguf..." >&2; exit 2; }
T="dotnet $root/src/TensorCodec.Cli/bin/Release/net10.0/tcodec.dll"
tokens=${TOKENS:-$root/../shared/data/text/shakespeare.tok1024.u16}
med() { sort -g | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| model | -T | eval ours | eval ours --like-llama-cpp | eval llama.cpp | ratio (like/llama.cpp) | gen ours | gen llama.cpp | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for m in "$@"; do
  for t in 1 2; do
    e=() el=() ll=() g=() lg=()
    for ((i = 1; i <= pairs; i++)); do
      e+=("$($T eval "$m" --tokens "$tokens" --ctx 256 --chunks "$chunks" -T "$t" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])')")
      el+=("$($T eval "$m" --tokens "$tokens" --ctx 256 --chunks "$chunks" -T "$t" --like-llama-cpp --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])')")
      j=$(node "$root/bench/llama-cpp-speed.mjs" --modules "$modules" --model "$m" --tokens "$tokens" --threads "$t" --chunks "$chunks" --generate "$generate" --runs 1)
      ll+=("$(echo "$j" | python3 -c 'import json,sys; print(json.load(sys.stdin)["evalTokensPerSecond"])')")
      lg+=("$(echo "$j" | python3 -c 'import json,sys; print(json.load(sys.stdin)["generateTokensPerSecond"])')")
      g+=("$($T logits "$m" --generate "$generate" --runs 3 -T "$t" 2>&1 | sed -n 's/.* at \([0-9.]*\) tokens\/s.*/\1/p')")
    done
    E=$(printf '%s\n' "${e[@]}" | med); EL=$(printf '%s\n' "${el[@]}" | med); LL=$(printf '%s\n' "${ll[@]}" | med)
    G=$(printf '%s\n' "${g[@]}" | med); LG=$(printf '%s\n' "${lg[@]}" | med)
    printf '| %s | %d | %.1f | %.1f | %.1f | %.2fx | %.1f | %.1f | %.2fx |\n' "$(basename "$m")" "$t" "$E" "$EL" "$LL" "$(echo "$EL / $LL" | bc -l)" "$G" "$LG" "$(echo "$G / $LG" | bc -l)"
  done
done
