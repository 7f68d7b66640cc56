#!/usr/bin/env bash
# The longest sequence the 8B shape trains at batch 1 on this card: the allocation plan's prediction
# (bench/cuda/longest-seq.ts), then one real training step (no warm-up; LoRA r 16 on all seven
# projections, unsloth checkpointing) at each length in SEQS, longest last, stopping at the first
# failure. A step's time grows with the square of the length (attention), so SEQS stays within what
# one call can afford; the log says which lengths were trained and which were only planned.
#   SEQS="32768 131072" bash bench/cuda/longest-seq.sh [shape]     (logs under $OUT)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/tsloth-device}"
mkdir -p "$OUT"
shape="${1:-8B}"
node dist/bench/cuda/longest-seq.js --shape "$shape" 2>&1 | tee -a "$OUT/longest-seq.log"
for seq in ${SEQS:-32768 65536 131072}; do
  start=$(date +%s)
  if timeout "${STEP_TIMEOUT:-420}" node dist/bench/cuda/train-bench.js --shape "$shape" --batch 1 --seq "$seq" --steps 1 --warmup 0 \
      > "$OUT/longest-$shape-$seq.log" 2>&1; then
    grep -m1 '^{' "$OUT/longest-$shape-$seq.log" | tee -a "$OUT/longest-seq.log"
  else
    echo "{\"shape\":\"$shape\",\"seq\":$seq,\"trained\":false,\"after_s\":$(( $(date +%s) - start )),\"error\":$(tail -c 400 "$OUT/longest-$shape-$seq.log" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')}" | tee -a "$OUT/longest-seq.log"
    break
  fi
done
