#!/usr/bin/env bash
# stories260K greedy generation, single thread: llama2.c's run.c against `tcodec logits --generate`,
# measured side by side (BENCHMARKS.md §3).
#
#   bench/llama2c-vs-tcodec.sh [--model PATH] [--steps N] [--pairs N]
#
# Environment:
#   RUN_C   a local copy of llama2.c's run.c; without it the script downloads
#           https://raw.githubusercontent.com/karpathy/llama2.c/master/run.c
#   TCODEC  the command that runs tcodec (default: the Release build in this checkout; build it first)
#   CFLAGS  gcc flags for run.c (default -O3 -march=native; llama2.c's `make runfast` uses -Ofast)
#
# run.c is built in a temporary directory and deleted afterwards: neither it nor the binary
# belongs in this repository.
#
# Same work on both sides: run.c's `-n STEPS` counts positions including the BOS it starts from,
# so it runs forwards at positions 0..STEPS-1, starts its clock after the first one and reports
# (STEPS-1)/s. `tcodec logits --generate STEPS` (prompt = BOS) prefills position 0 untimed, then
# times the same STEPS-1 forwards at positions 1..STEPS-1 and reports them as STEPS-1 generated
# tokens. Both therefore emit STEPS token ids and time STEPS-1 forward passes.
#
# The programs alternate (the order flips every pair), one timed generation per process, so a
# change in the machine's load hits both alike; medians over the pairs and their ratio are printed.
# run.c's clock has 1 ms resolution (about 4% of a 256-step run at 10k tok/s) and its timed loop
# also writes each token to stdout (a file here); tcodec warms up for 3 s first (JIT), run.c is
# compiled ahead of time and needs none.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
model=../shared/data/models/stories260K/stories260K.bin
steps=256
pairs=11
while [[ $# -gt 0 ]]; do
    case "$1" in
        --model) model=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --pairs) pairs=$2; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ -f $model ]] || { echo "model not found: $model (pass --model PATH)" >&2; exit 1; }
read -r -a tcodec <<< "${TCODEC:-dotnet $root/src/TensorCodec.Cli/bin/Release/net10.0/tcodec.dll}"
if [[ -z ${TCODEC:-} && ! -f $root/src/TensorCodec.Cli/bin/Release/net10.0/tcodec.dll ]]; then
    echo "tcodec is not built: run 'dotnet build -c Release' first (or set TCODEC)" >&2; exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- run.c: local copy or download, then build -------------------------------------------------
url=https://raw.githubusercontent.com/karpathy/llama2.c/master/run.c
if [[ -n ${RUN_C:-} ]]; then
    [[ -f $RUN_C ]] || { echo "RUN_C=$RUN_C is not a file" >&2; exit 1; }
    cp "$RUN_C" "$work/run.c"
    src="$RUN_C"
elif curl -fsSL "$url" -o "$work/run.c"; then
    src="$url"
else
    echo "could not obtain llama2.c's run.c: set RUN_C to a local copy (no network, or $url unreachable)" >&2
    exit 1
fi
cflags=${CFLAGS:--O3 -march=native}
# shellcheck disable=SC2086  # word splitting of the flags is intended
gcc $cflags -o "$work/run" "$work/run.c" -lm
echo "run.c: $src (sha256 $(sha256sum "$work/run.c" | cut -c1-16)), gcc $(gcc -dumpfullversion) $cflags"

# --- placeholder tokenizer -------------------------------------------------------------------------
# run.c needs a tokenizer file (-z) and stories260K's tok512.bin is not at hand. Decoding text does
# not affect speed, so write one in llama2.c's format (int32 max_token_length, then per token:
# float32 score, int32 length, bytes) whose token i reads "i,": run.c then prints the greedy token
# ids, comma-separated, which we compare with tcodec's. Works with old and new run.c alike.
vocab=$(od -An -t d4 -j 20 -N 4 "$model" | tr -d ' ')
vocab=${vocab#-}  # negative vocab_size marks an unshared classifier
le32() { local v=$1; printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((v & 255)) $((v >> 8 & 255)) $((v >> 16 & 255)) $((v >> 24 & 255)); }
{
    printf "$(le32 $((${#vocab} + 1)))"
    for ((i = 0; i < vocab; i++)); do
        s="$i,"
        printf '\x00\x00\x00\x00'"$(le32 ${#s})"'%s' "$s"
    done
} > "$work/tok.bin"

# --- paired runs -------------------------------------------------------------------------------------
# Flags used exist in both the 2023 and the current run.c: -t temperature, -n steps, -z tokenizer, -s seed.
run_c() {
    "$work/run" "$model" -t 0 -n "$steps" -s 1 -z "$work/tok.bin" > "$work/runc.out" 2> "$work/runc.err" \
        || { cat "$work/runc.err" >&2; exit 1; }
    sed -n 's/^achieved tok\/s: //p' "$work/runc.err"
}
run_tcodec() {
    "${tcodec[@]}" logits "$model" --generate "$steps" -T 1 --runs 1 --json | tr -d ' \r\n' > "$work/tcodec.json" \
        || { echo "tcodec failed" >&2; exit 1; }
    grep -o '[{,]"tokens_per_s":[-0-9.eE+]*' "$work/tcodec.json" | cut -d: -f2
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "stories260K greedy, -T 1, $steps steps ($((steps - 1)) timed forwards each), $pairs pairs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%4s %12s %12s %7s\n" pair "run.c tok/s" "tcodec tok/s" ratio
: > "$work/pairs"
for ((p = 1; p <= pairs; p++)); do
    if ((p % 2)); then a=$(run_c); b=$(run_tcodec); else b=$(run_tcodec); a=$(run_c); fi
    r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')
    printf "%4d %12.0f %12.0f %7s\n" "$p" "$a" "$b" "$r"
    echo "$a $b $r" >> "$work/pairs"
    if ((p == 1)); then
        # Same greedy ids? run.c stops early if it samples BOS (1); then the counts would differ.
        ids_c=$(tr -d '\n' < "$work/runc.out"); ids_c=${ids_c%,}
        ids_t=$(grep -o '"generated_token_ids":\[[0-9,]*\]' "$work/tcodec.json" | sed 's/.*\[//; s/\]//')
        n_c=$(tr ',' '\n' <<< "$ids_c" | grep -c .)
        [[ $n_c -eq $steps ]] || { echo "run.c emitted $n_c tokens, not $steps (sampled BOS?): counts differ" >&2; exit 1; }
        if [[ $ids_c == "$ids_t" ]]; then same="identical ($n_c ids)"; else same="DIFFERENT"; fi
    fi
done
load=$(cut -d' ' -f1-3 /proc/loadavg)
mc=$(cut -d' ' -f1 "$work/pairs" | median)
mt=$(cut -d' ' -f2 "$work/pairs" | median)
mr=$(cut -d' ' -f3 "$work/pairs" | median)
echo "greedy token ids, run.c vs tcodec: $same"
ref=$(dirname "$model")/reference/greedy.tokens.csv
if [[ -f $ref ]]; then
    # The reference starts with the BOS prompt; compare its continuation with run.c's prefix.
    want=$(cut -d, -f2- "$ref" | tr -d '\n\r')
    [[ "$ids_c," == "$want,"* ]] && echo "run.c ids match $ref ($(tr ',' '\n' <<< "$want" | grep -c .) ids)" \
        || echo "run.c ids DIFFER from $ref"
fi
printf "median run.c %.0f tok/s, tcodec %.0f tok/s: ratio of medians %.2fx, median of pair ratios %.2fx (load average now %s)\n" \
    "$mc" "$mt" "$(awk -v a="$mc" -v b="$mt" 'BEGIN { print b / a }')" "$mr" "$load"
[[ $same != DIFFERENT ]]
