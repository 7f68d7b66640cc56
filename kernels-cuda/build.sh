#!/usr/bin/env bash
# Builds kernels-cuda/build/libtsloth_cuda.so with nothing but nvcc: the CUDA runtime is linked
# statically (the library then needs only the driver, libcuda.so, at run time) and cuBLASLt is
# opened with dlopen when the first GEMM runs, so this compiles on machines without cuBLAS.
#   kernels-cuda/build.sh [OUT_DIR]      env: NVCC, TSLOTH_CUDA_ARCHS ("80 86 89 90"), JOBS
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/build}"
nvcc="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
[ -x "$nvcc" ] || { echo "build.sh: nvcc not found (set NVCC or put CUDA's bin on PATH)" >&2; exit 2; }
archs="${TSLOTH_CUDA_ARCHS:-80 86 89 90}"
jobs="${JOBS:-$(nproc)}"
gencode=()
last=""
for a in $archs; do gencode+=("-gencode=arch=compute_$a,code=sm_$a"); last="$a"; done
# PTX of the newest target too, so the driver can JIT for GPUs newer than the list.
gencode+=("-gencode=arch=compute_$last,code=compute_$last")
mkdir -p "$out/obj"
flags=(-O3 -std=c++17 -Xcompiler -fPIC --expt-relaxed-constexpr
       -Xptxas -warn-spills -I"$here/include" "${gencode[@]}")
pids=()
objs=()
for src in "$here"/src/*.cu; do
  obj="$out/obj/$(basename "${src%.cu}").o"
  objs+=("$obj")
  "$nvcc" "${flags[@]}" -c "$src" -o "$obj" &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
[ $status -eq 0 ] || { echo "build.sh: compilation failed" >&2; exit 1; }
"$nvcc" -shared "${gencode[@]}" -cudart static -o "$out/libtsloth_cuda.so.tmp" "${objs[@]}" -ldl -lpthread
mv "$out/libtsloth_cuda.so.tmp" "$out/libtsloth_cuda.so"
echo "built $out/libtsloth_cuda.so for sm_${archs// /, sm_} + compute_$last PTX"
