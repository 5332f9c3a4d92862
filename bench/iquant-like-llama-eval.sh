#!/usr/bin/env bash
# Paired `eval --like-llama-cpp` tok/s of bard-3m at IQ2_XXS, IQ3_S, IQ4_XS and Q4_K_M (the control: its code did not
# change), two tcodec builds alternating, order flipped every round, -T 1, 20 windows of 256 of the validation split.
# Prints per run: round, model, build, tokens_per_s, the split's token count, [wall user sys] seconds of the process, PPL.
# Usage: bench/iquant-like-llama-eval.sh BASE/tcodec.dll MINE/tcodec.dll [WORKDIR]   (copy each build out of bin/ first)
set -euo pipefail
S=${SHARED:-/work/shared}/data
B=$1
M=$2
D=${3:-/tmp/iquant-like-llama}
mkdir -p "$D/s2"
cd "$D"
[ -f bard.imatrix.gguf ] || dotnet $B imatrix $S/models/bard-3m/model.safetensors --tokens $S/text/shakespeare.tok1024.u16 --split train --ctx 256 --chunks 40 -o bard.imatrix.gguf -f > /dev/null
for Q in iq2_xxs iq3_s iq4_xs q4_K_M; do
  [ -f bard-$Q.gguf ] || dotnet $B quantize $S/models/bard-3m/model.safetensors -o bard-$Q.gguf -t $Q --tokenizer $S/models/bard-3m/tok1024.bin --imatrix bard.imatrix.gguf -f > /dev/null
done
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in 1 2 3; do
  for Q in iq2_xxs iq3_s iq4_xs q4_K_M; do
    if [ $((round % 2)) = 1 ]; then order="base mine"; else order="mine base"; fi
    for who in $order; do
      bin=$B; [ $who = mine ] && bin=$M
      /usr/bin/time -f '%e %U %S' dotnet $bin eval bard-$Q.gguf --tokens $S/text/shakespeare.tok1024.u16 --split val --ctx 256 --chunks 20 -T 1 --like-llama-cpp --json > s2/r$round-$Q-$who.json 2> s2/t$round-$Q-$who.txt
      python3 -c "import json,sys; d=json.load(open('s2/r$round-$Q-$who.json')); t=open('s2/t$round-$Q-$who.txt').read().split()[-3:]; print('$round','$Q','$who', d.get('tokens_per_s'), d['tokens'], t, d['ppl'])"
    done
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
