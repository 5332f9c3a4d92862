#!/bin/bash
# Paired `tcodec eval` tokens/s of a base build against this worktree's (BENCHMARKS.md, "Engine speed"):
# for each model and round, default then --like-llama-cpp, base then new, -T 1, ctx 256
# (1 chunk, or 4 for a model whose path contains "bard"). Both builds must be built (Release).
# usage: bench/eval-vs-base.sh BASE_REPO MODEL.gguf...   (ROUNDS=3 by default)
set -euo pipefail
base=$1; shift
here=$(cd "$(dirname "$0")/.." && pwd)
tok=${TOKENS:-$here/../shared/data/text/shakespeare.tok1024.u16}
rounds=${ROUNDS:-3}
for m in "$@"; do
  case "$m" in *bard*) chunks=4;; *) chunks=1;; esac
  for r in $(seq "$rounds"); do
    for mode in "" "--like-llama-cpp"; do
      for b in "$base" "$here"; do
        v=$(dotnet "$b/src/TensorCodec.Cli/bin/Release/net10.0/tcodec.dll" eval "$m" --tokens "$tok" --ctx 256 --chunks $chunks -T 1 $mode --json \
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])')
        echo "$(basename "$m") round=$r mode=${mode:-default} build=$b tok/s=$v load=$(cut -d' ' -f1 /proc/loadavg)"
      done
    done
  done
done
