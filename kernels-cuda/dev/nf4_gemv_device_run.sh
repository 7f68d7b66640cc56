#!/usr/bin/env bash
# One device call for the NF4 GEMV work: the ctypes checks of kernels-cuda/test/test_decode.py
# against a prebuilt library, the variant bench (kernels-cuda/dev/nf4_gemv_bench.cu), the library's
# own per-shape numbers (bench/infer/nf4_gemv_bench.py) and, optionally, the checks under
# compute-sanitizer memcheck, and the TypeScript backend's GPU tests. Logs go to $OUT.
#   LIB=kernels-cuda/build/<dir>/libtsloth_cuda.so VARIANTS=a,b,c STEPS="tests bench lib ts sanitizer" \
#     bash kernels-cuda/dev/nf4_gemv_device_run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/nf4-gemv-device}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export TSLOTH_CUBLASLT="${TSLOTH_CUBLASLT:-$(find / -name 'libcublasLt.so.13' -not -path '/proc/*' 2>/dev/null | head -1)}"
export TSLOTH_CUDA_LIB="$PWD/${LIB:?set LIB to the library to test}"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$OUT/card.txt"
for s in ${STEPS:-tests bench lib}; do
  case "$s" in
    tests) (cd kernels-cuda/test && timeout "${T_TESTS:-80}" python3 test_decode.py) > "$OUT/tests.log" 2>&1
           echo "tests rc=$?"; grep -E "FAIL|PASS|passed|failed|Error" "$OUT/tests.log" | tail -50 ;;
    bench) nvcc -O3 -std=c++17 -arch=sm_90 -o /tmp/nf4_gemv_bench kernels-cuda/dev/nf4_gemv_bench.cu > "$OUT/bench-build.log" 2>&1 &&
           timeout "${T_BENCH:-80}" /tmp/nf4_gemv_bench "${N:-200}" "${VARIANTS:?}" > "$OUT/bench.jsonl" 2> "$OUT/bench.err"
           echo "bench rc=$?"; cat "$OUT/bench-build.log" "$OUT/bench.err" | tail -20
           python3 - "$OUT/bench.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    if "variant" in d: print(f'{d["variant"]:16s} {d["shape"]:30s} {d["us"]:8.2f} us {d["pct_of_copy"]:5.1f}% err {d["max_rel_err"]:.1e} ok={d["ok"]}')
    else: print(line.strip())
PY
           # SASS of the kernels named by SASS_OF (a regex), when asked: the tool returns only a few files
           [ -n "${SASS_OF:-}" ] && cuobjdump -sass /tmp/nf4_gemv_bench 2>/dev/null |
             awk -v re="$SASS_OF" '/Function :/ { keep = ($0 ~ re) } keep' > "$OUT/bench.sass" ;;
    lib) timeout "${T_LIB:-60}" python3 bench/infer/nf4_gemv_bench.py > "$OUT/lib-bench.jsonl" 2>&1; echo "lib rc=$?"
         cat "$OUT/lib-bench.jsonl" ;;
    ts) # the TypeScript backend on the GPU (needs .device/, dist/ and node_modules' koffi, @huggingface, systeminformation carried)
        bash .device/unpack-node.sh > /dev/null
        timeout "${T_TS:-90}" node --test ${TS_TESTS:-dist/test/cuda/parity-linear-group.test.js dist/test/infer/cuda-generate.test.js} > "$OUT/ts.log" 2>&1
        echo "ts rc=$?"; grep -E "^# (pass|fail|skip)|^not ok|^ok|skip" "$OUT/ts.log" | tail -25 ;;
    sanitizer) (cd kernels-cuda/test && timeout "${T_SAN:-150}" compute-sanitizer --tool memcheck python3 test_decode.py) > "$OUT/sanitizer.log" 2>&1
               echo "sanitizer rc=$?"; grep -E "ERROR SUMMARY|Invalid|out of bounds|FAIL|PASS" "$OUT/sanitizer.log" | tail -30 ;;
  esac
done
