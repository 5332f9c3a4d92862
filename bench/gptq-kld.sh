#!/usr/bin/env bash
# Mean KLD of llama.cpp mixes on bard-3m with three ways of choosing the codes: rtn (llama-quantize's bytes),
# imatrix (the same quantizers with a `tcodec imatrix` file) and gptq (--method gptq). Calibration: the training
# split of shakespeare.tok1024.u16; evaluation: the validation split (the last n/20 tokens), ctx 128 (the model's
# training window), against the F32 model's saved log-probabilities. Usage: bench/gptq-kld.sh [OUTDIR]
set -euo pipefail
T=${TCODEC:-src/TensorCodec.Cli/bin/Release/net10.0/tcodec}
S=${SHARED:-/work/shared}
B=$S/data/models/bard-3m
TOK=$S/data/text/shakespeare.tok1024.u16
OUT=${1:-/tmp/gptq-kld}
CHUNKS=${CHUNKS:-256}
mkdir -p "$OUT"
$T eval "$B" --tokens "$TOK" --split val --ctx 128 --save-logits "$OUT/base.tclp" -f --json > "$OUT/base.json"
$T imatrix "$B" --tokens "$TOK" --split train --ctx 128 --chunks "$CHUNKS" -o "$OUT/imatrix.gguf" -f --json > "$OUT/imatrix.json"
printf "mix\tmethod\tbits_per_value\tkl_mean\tkl_p99\tppl\tbase_ppl\ttop1\tquantize_s\n"
for mix in q4_K_M q3_K_M q2_K; do
  for method in rtn imatrix gptq; do
    f="$OUT/$mix-$method.gguf"
    case $method in
      rtn) args=() ;;
      imatrix) args=(--imatrix "$OUT/imatrix.gguf") ;;
      gptq) args=(--method gptq --calibration "$TOK" --calibration-split train --calibration-ctx 128 --calibration-chunks "$CHUNKS") ;;
    esac
    $T quantize "$B" -o "$f" -t $mix --tokenizer "$B/tok1024.bin" -T 1 -f --json "${args[@]}" > "$f.q.json"
    $T eval "$f" --tokens "$TOK" --split val --ctx 128 --base-logits "$OUT/base.tclp" --json > "$f.e.json"
    python3 - "$mix" "$method" "$f.q.json" "$f.e.json" <<'PY'
import json, sys
mix, method, q, e = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))
print(f"{mix}\t{method}\t{q['bits_per_value']:.4f}\t{e['kl_mean']:.6f}\t{e['kl_p99']:.5f}\t{e['ppl']:.3f}\t{e['base_ppl']:.3f}\t{e['top1_agreement']:.4f}\t{q['seconds']:.1f}")
PY
  done
done
