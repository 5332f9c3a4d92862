#!/usr/bin/env bash
# Mean KLD of llama.cpp mixes with three ways of choosing the codes: rtn (llama-quantize's bytes), imatrix (the same
# quantizers with a `tcodec imatrix` file made from the calibration tokens) and gptq (--method gptq, same tokens).
#   bard-3m: calibration = the training split of shakespeare.tok1024.u16, evaluation = its validation split (the last
#            n/20 tokens), ctx 128 (the model's training window).
#   stories260K: calibration = 64 sequences of 256 tokens the model samples from BOS (seeds 1…64), evaluation = 32 more
#            (seeds 1000…1031), ctx 256; made with `TensorCodec.Bench e2e sample`.
# KL against the F32 model's log-probabilities saved by `tcodec eval --save-logits`. Usage: bench/gptq-kld.sh [OUTDIR]
set -euo pipefail
T=${TCODEC:-src/TensorCodec.Cli/bin/Release/net10.0/tcodec}
BENCH=${BENCH:-bench/TensorCodec.Bench/bin/Release/net10.0/TensorCodec.Bench}
S=${SHARED:-/work/shared}
OUT=${1:-/tmp/gptq-kld}
CHUNKS=${CHUNKS:-256}
mkdir -p "$OUT"
printf "model\tmix\tmethod\tbits_per_value\tkl_mean\tkl_p99\tppl\tbase_ppl\ttop1\tquantize_s\n"

# run NAME MODEL CTX "CALIB ARGS (quantize --calibration form)" "EVAL TOKEN ARGS" [quantize args...]
run() {
  local name=$1 model=$2 ctx=$3 calib=$4 eval=$5; shift 5
  local calibFile=${calib%% *} calibSplit=${calib#* }
  $T eval "$model" $eval --ctx "$ctx" --save-logits "$OUT/$name-base.tclp" -f --json > "$OUT/$name-base.json"
  $T imatrix "$model" --tokens "$calibFile" --split "$calibSplit" --ctx "$ctx" --chunks "$CHUNKS" -o "$OUT/$name-imatrix.gguf" -f --json > "$OUT/$name-imatrix.json"
  for mix in q4_K_M q3_K_M q2_K; do
    for method in rtn imatrix gptq; do
      local f="$OUT/$name-$mix-$method.gguf" args=()
      case $method in
        imatrix) args=(--imatrix "$OUT/$name-imatrix.gguf") ;;
        gptq) args=(--method gptq --calibration "$calibFile" --calibration-split "$calibSplit" --calibration-ctx "$ctx" --calibration-chunks "$CHUNKS") ;;
      esac
      $T quantize "$model" -o "$f" -t $mix -T 1 -f --json "$@" "${args[@]}" > "$f.q.json" 2> /dev/null
      $T eval "$f" $eval --ctx "$ctx" --base-logits "$OUT/$name-base.tclp" --json > "$f.e.json"
      python3 - "$name" "$mix" "$method" "$f.q.json" "$f.e.json" <<'PY'
import json, sys
name, mix, method, q, e = sys.argv[1], sys.argv[2], sys.argv[3], json.load(open(sys.argv[4])), json.load(open(sys.argv[5]))
print(f"{name}\t{mix}\t{method}\t{q['bits_per_value']:.4f}\t{e['kl_mean']:.6f}\t{e['kl_p99']:.5f}\t{e['ppl']:.3f}\t{e['base_ppl']:.3f}\t{e['top1_agreement']:.4f}\t{q['seconds']:.1f}")
PY
    done
  done
}

B=$S/data/models/bard-3m
TOK=$S/data/text/shakespeare.tok1024.u16
run bard-3m "$B" 128 "$TOK train" "--tokens $TOK --split val" --tokenizer "$B/tok1024.bin"

M=$S/data/models/stories260K/stories260K.bin
[ -f "$OUT/s260-calib.u16" ] || $BENCH e2e sample "$M" 64 256 1 "$OUT/s260-calib.u16" > /dev/null
[ -f "$OUT/s260-eval.u16" ] || $BENCH e2e sample "$M" 32 256 1000 "$OUT/s260-eval.u16" > /dev/null
run stories260K "$M" 256 "$OUT/s260-calib.u16 all" "--tokens $OUT/s260-eval.u16"
