#!/usr/bin/env bash
# One device call: (re)build, run every ctypes check, the same checks under compute-sanitizer
# memcheck, the TypeScript backend tests (CUDA vs CPU) and the tiny-model training parity, then the
# micro-benchmarks. Logs go to $OUT (the device tool brings them back).
#   bash kernels-cuda/dev/device-run.sh [tests|sanitizer|ts|bench|train ...]   (default: all)
# The ts step needs Node (.device/ from pack-node.sh), dist/ (npm run build) and node_modules/koffi.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/tsloth-device}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
steps="${*:-tests sanitizer ts bench train}"
# cuBLASLt for processes that do not load PyTorch first (Node): the toolkit's or the pip wheel's copy.
if [ -z "${TSLOTH_CUBLASLT:-}" ]; then
  TSLOTH_CUBLASLT=$( (ls /usr/local/cuda/lib64/libcublasLt.so.* 2>/dev/null; find / -name 'libcublasLt.so.1[23]' -not -path '/proc/*' 2>/dev/null) | head -1)
  export TSLOTH_CUBLASLT
fi
echo "cuBLASLt: ${TSLOTH_CUBLASLT:-not found}"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/card.txt"
if [ ! -f kernels-cuda/build/libtsloth_cuda.so ] || [ "${REBUILD:-0}" = 1 ]; then
  JOBS=16 bash kernels-cuda/build.sh 2>&1 | tee "$OUT/build.log"
fi
rc=0
for s in $steps; do
  case "$s" in
    tests) python3 kernels-cuda/test/run_all.py 2>&1 | tee "$OUT/tests.log" || rc=1 ;;
    sanitizer) timeout 300 python3 kernels-cuda/test/run_all.py --sanitizer ${SANITIZE_ONLY:-} > "$OUT/sanitizer.log" 2>&1 || rc=1
               grep -E "PASS|FAIL|ERROR SUMMARY|Invalid|out of bounds" "$OUT/sanitizer.log" | head -40 ;;
    ts) bash .device/unpack-node.sh >/dev/null
        node --test dist/test/cuda/availability.test.js dist/test/cuda/parity-ops.test.js dist/test/cuda/parity-linear-ce.test.js \
          2>&1 | tee "$OUT/ts-tests.log" | grep -E "^# (pass|fail|skip)|^not ok|SKIP|Error" || rc=1
        node dist/bench/cuda/tiny-train-parity.js 30 2>&1 | tee "$OUT/tiny-train.log" | tail -5 || rc=1 ;;
    bench) python3 kernels-cuda/dev/bench_ops.py 2>&1 | tee "$OUT/bench.log" || rc=1 ;;
    train) # tsloth (CUDA, NF4, unsloth checkpointing) beside HF transformers + PEFT (bf16 LoRA, SDPA, GC)
      bash .device/unpack-node.sh >/dev/null
      # TRAIN_SHAPES="1B,4,2048 8B,4,2048" runs a subset (shape,batch,seq triples).
      for cfg in ${TRAIN_SHAPES:-1B,4,2048 8B,1,2048 8B,4,2048 1B,1,8192}; do
        set -- ${cfg//,/ }
        timeout 150 node dist/bench/cuda/train-bench.js --shape "$1" --batch "$2" --seq "$3" --steps 4 > "$OUT/train-tsloth-$1-$2x$3.log" 2>&1
        grep -m1 -E '^\{|Error' "$OUT/train-tsloth-$1-$2x$3.log" | tee -a "$OUT/train.log"
        timeout 120 python3 .device/hf_peft_baseline.py --shape "$1" --batch "$2" --seq "$3" --steps 4 2>&1 | grep '^{' | tee -a "$OUT/train.log"
      done ;;
  esac
done
exit $rc
