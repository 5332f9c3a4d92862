#!/usr/bin/env bash
# Whole-model commands on a generated ~2 GB sharded BF16 Llama-shaped model (BENCHMARKS.md, "A 2 GB sharded model"):
# wall time, peak RSS, and peak anonymous (allocated) and file-backed (mapped) resident memory of each command.
#
#   bench/bigmodel.sh [--runs N] [--dir DIR]      (build first: dotnet build -c Release)
#
# The model (hidden 2048, 8 layers, FFN 14336, 32 heads, vocabulary 32000, 4 shards with an index and config.json,
# random weights; 1.94 GB) is written to DIR (default /tmp/tcodec-bigmodel), never into the repository, and reused
# when it is already there. Each command runs N times (default 3); every run's line is printed, then take the median.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=3 dir=/tmp/tcodec-bigmodel
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--dir DIR]" >&2; exit 2 ;;
  esac
done
T="dotnet $root/src/TensorCodec.Cli/bin/Release/net10.0/tcodec.dll"
B="dotnet $root/bench/TensorCodec.Bench/bin/Release/net10.0/TensorCodec.Bench.dll"
tokens=${TOKENS:-$root/../shared/data/text/shakespeare.tok1024.u16}
M=$dir/llama-2g
mkdir -p "$dir"
[[ -f $M/model.safetensors.index.json ]] || $B e2e gen-llama "$M" 2048 8 14336 32000 32 32 4

measure() {
  local label=$1; shift
  for ((i = 1; i <= runs; i++)); do
    printf '%-28s ' "$label"
    "$root/bench/peakmem.sh" "$@" 2>/dev/null
  done
}

echo "model: $M ($(du -sb "$M" | cut -f1) bytes), load average $(cut -d' ' -f1-3 /proc/loadavg)"
measure "quantize -t f32" $T quantize "$M" -t f32 -o "$dir/f32.gguf" -f -T 2
measure "quantize -t bf16" $T quantize "$M" -t bf16 -o "$dir/bf16.gguf" -f -T 2
measure "quantize -t q4_K_M" $T quantize "$M" -t q4_K_M -o "$dir/q4_K_M.gguf" -f -T 2
measure "eval (BF16 folder)" $T eval "$M" --tokens "$tokens" --ctx 128 --chunks 4 -T 2
measure "convert q4_K_M -> bf16 x4" $T convert "$dir/q4_K_M.gguf" -o "$dir/back" --dtype bf16 --max-shard-size 600MB -f
measure "compress DIR" $T compress "$M" -o "$dir/tcz" -f -T 2
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
