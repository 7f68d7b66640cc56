#!/usr/bin/env bash
# One device call for generation: the kernels' ctypes checks against PyTorch, the TypeScript
# generation tests on the CUDA backend (CPU vs CUDA, transformers generate on the GPU), the NF4
# matrix-vector bandwidth, and the decode/prefill benchmark beside transformers generate.
#   bash bench/infer/device-run.sh [checks] [bench]     (default: both; logs under $OUT)
# Needs .device (Node), dist (npm run build), node_modules/koffi, and the library at
# $TSLOTH_CUDA_LIB (default kernels-cuda/build/libtsloth_cuda.so).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/tsloth-device}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TSLOTH_REF_PYTHON="${TSLOTH_REF_PYTHON:-$(command -v python3)}"
if [ -z "${TSLOTH_CUBLASLT:-}" ]; then
  TSLOTH_CUBLASLT=$( (ls /usr/local/cuda/lib64/libcublasLt.so.* 2>/dev/null; find / -name 'libcublasLt.so.1[23]' -not -path '/proc/*' 2>/dev/null) | head -1)
  export TSLOTH_CUBLASLT
fi
bash .device/unpack-node.sh >/dev/null
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
steps="${*:-checks bench}"
rc=0
for s in $steps; do
  case "$s" in
    checks)
      (cd kernels-cuda/test && timeout 120 python3 test_decode.py) 2>&1 | tee "$OUT/checks.log" || rc=1
      timeout 240 node --test dist/test/infer/paged-attention.test.js dist/test/infer/cuda-generate.test.js \
        dist/test/infer/transformers-parity.test.js dist/test/cuda/parity-linear-ce.test.js 2>&1 \
        | tee -a "$OUT/checks.log" | grep -E "^# (pass|fail|skip)|^\s*not ok|diverged|Error" || rc=1 ;;
    bench)
      timeout 90 python3 bench/infer/nf4_gemv_bench.py 2>&1 | tee "$OUT/bench.log"
      for shape in 1B 8B; do
        timeout 150 node dist/bench/infer/decode-bench.js --shape $shape --batch 1,8 --prompt 512 --new 64 2>&1 | tail -3 | tee -a "$OUT/bench.log"
        timeout 150 python3 bench/infer/hf_generate_baseline.py --shape $shape --batch 1,8 --prompt 512 --new 64 --caches "${HF_CACHES:-static,dynamic}" 2>&1 | grep '^{' | tee -a "$OUT/bench.log"
      done ;;
  esac
done
exit $rc
