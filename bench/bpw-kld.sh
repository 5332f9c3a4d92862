#!/usr/bin/env bash
# Mixed precision to an exact budget (`quantize --bpw/--size`, GPTQ codes) against llama.cpp's mixes with an imatrix, on
# bard-3m: calibration = the training split of shakespeare.tok1024.u16, evaluation = its validation split (the last n/20
# tokens; never overlapping), ctx 128. KL against the F32 model's log-probabilities saved by `tcodec eval --save-logits`.
# Rows: every mix with `--imatrix` (llama.cpp's exact quantizers, imatrix from the same calibration tokens); `--bpw` at
# fixed targets; `--size` at each mix's own file size (so the file is never larger than the mix's).
# bits/weight = whole file bytes × 8 / weights (header and metadata included), the quantity --bpw bounds.
# MODEL=stories260K: calibration = 64 sequences of 256 tokens the model samples at T = 1 from BOS (seeds 1…64), evaluation
# = 32 others (seeds 1000…1031), ctx 256, made with `TensorCodec.Bench e2e sample` (as bench/gptq-kld.sh; it has no text).
# Usage: bench/bpw-kld.sh [OUTDIR]   (env: MODEL bard-3m|stories260K, CHUNKS calibration chunks, DAMAGE proxy|scaled|measured,
#        DCHUNKS windows per KL, MIXES, SIZES, BPWS: the rows to run; an existing base.tclp / imatrix.gguf in OUTDIR is reused)
set -euo pipefail
T=${TCODEC:-src/TensorCodec.Cli/bin/Release/net10.0/tcodec}
S=${SHARED:-/work/shared}
BENCH=${BENCH:-bench/TensorCodec.Bench/bin/Release/net10.0/TensorCodec.Bench}
MODEL=${MODEL:-bard-3m}
OUT=${1:-/tmp/bpw-kld}
CHUNKS=${CHUNKS:-$([ "$MODEL" = stories260K ] && echo 64 || echo 128)}
DAMAGE=${DAMAGE:-scaled}
DCHUNKS=${DCHUNKS:-4}
MIXES=${MIXES-"q2_K q3_K_S q3_K_M q3_K_L q4_K_S q4_K_M q5_K_S q5_K_M q6_K"}
BPWS=${BPWS-"2.5 3.0 3.5 4.0 4.5 5.0 6.0"}
SIZES=${SIZES-$MIXES}   # the mixes whose file size gets a --size row (their files must exist in OUTDIR)
mkdir -p "$OUT"
case $MODEL in
  bard-3m)
    B=$S/data/models/bard-3m
    TOK=$S/data/text/shakespeare.tok1024.u16
    EVAL="--tokens $TOK --split val --ctx 128"
    CAL=(--calibration "$TOK" --calibration-split train --calibration-ctx 128 --calibration-chunks "$CHUNKS")
    IMX=(--tokens "$TOK" --split train --ctx 128)
    TOKENIZER=(--tokenizer "$B/tok1024.bin") ;;
  stories260K)
    B=$S/data/models/stories260K/stories260K.bin
    [ -f "$OUT/calib.u16" ] || $BENCH e2e sample "$B" 64 256 1 "$OUT/calib.u16" > /dev/null
    [ -f "$OUT/eval.u16" ] || $BENCH e2e sample "$B" 32 256 1000 "$OUT/eval.u16" > /dev/null
    EVAL="--tokens $OUT/eval.u16 --ctx 256"
    CAL=(--calibration "$OUT/calib.u16" --calibration-split all --calibration-ctx 256 --calibration-chunks "$CHUNKS")
    IMX=(--tokens "$OUT/calib.u16" --split all --ctx 256)
    TOKENIZER=() ;;
  *) echo "MODEL must be bard-3m or stories260K" >&2; exit 2 ;;
esac
printf "model\tlabel\tmethod\tfile_bytes\tbits_per_weight\tkl_mean\tkl_p99\tppl\tbase_ppl\ttop1\tpredicted\tcalib_kl\tquantize_s\n"

[ -f "$OUT/base.tclp" ] || $T eval "$B" $EVAL --save-logits "$OUT/base.tclp" -f --json > "$OUT/base.json"
[ -f "$OUT/imatrix.gguf" ] || $T imatrix "$B" "${IMX[@]}" --chunks "$CHUNKS" -o "$OUT/imatrix.gguf" -f --json > "$OUT/imatrix.json"

# row LABEL METHOD FILE: evaluate FILE on the validation split and print one line.
row() {
  local label=$1 method=$2 f=$3
  $T eval "$f" $EVAL --base-logits "$OUT/base.tclp" --json > "$f.e.json"
  python3 - "$MODEL" "$label" "$method" "$f" "$f.q.json" "$f.e.json" <<'PY'
import json, os, sys
name, label, method, f, q, e = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.load(open(sys.argv[5])), json.load(open(sys.argv[6]))
size = os.path.getsize(f)
mp = q.get('mixed_precision') or {}
pred = mp.get('predicted_damage'); cal = mp.get('measured_kl_mean')
fmt = lambda v: 'NA' if v is None else f"{v:.6f}"
print(f"{name}\t{label}\t{method}\t{size}\t{size * 8 / q['values']:.4f}\t{e['kl_mean']:.6f}\t{e['kl_p99']:.5f}\t{e['ppl']:.3f}\t{e['base_ppl']:.3f}\t{e['top1_agreement']:.4f}\t{fmt(pred)}\t{fmt(cal)}\t{q['seconds']:.1f}")
PY
}

for mix in $MIXES; do
  f="$OUT/$mix-imatrix.gguf"
  $T quantize "$B" -o "$f" -t "$mix" -T 1 -f --json "${TOKENIZER[@]}" --imatrix "$OUT/imatrix.gguf" > "$f.q.json" 2> /dev/null
  row "$mix" imatrix "$f"
done
# --size at each mix's own file size, then the fixed --bpw targets.
targets=()
for mix in $SIZES; do targets+=("size:$(stat -c %s "$OUT/$mix-imatrix.gguf"):$mix"); done
for b in $BPWS; do targets+=("bpw:$b:$b"); done
for t in "${targets[@]}"; do
  IFS=: read -r kind value label <<< "$t"
  f="$OUT/bpw-$label.gguf"
  if ! $T quantize "$B" -o "$f" --"$kind" "$value" --method gptq "${CAL[@]}" --damage "$DAMAGE" --damage-chunks "$DCHUNKS" \
       -T 1 -f --json "${TOKENIZER[@]}" > "$f.q.json" 2> "$f.err"; then
    printf "%s\t%s\tbpw-gptq\trefused: %s\n" "$MODEL" "$label" "$(cat "$f.err")"
    continue
  fi
  row "$kind=$label" "bpw-gptq-$DAMAGE" "$f"
done
