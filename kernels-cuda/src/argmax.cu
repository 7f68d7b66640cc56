// Greedy decoding's pick on the device: the index of each row's largest logit, so a greedy step
// downloads B token ids instead of B x vocab logits and the host skips a 128K-entry scan per row.
// One block per row; ties go to the lowest index (as PyTorch's argmax and the CPU spec's); NaN never
// wins (a row of NaN gives 0).
#include "common.cuh"

namespace tsl {
namespace {

constexpr int kThreads = 512;

// (value, index) a beats b: larger value, or the same value at a lower index.
__device__ __forceinline__ bool beats(float va, int64_t ia, float vb, int64_t ib) {
  return va > vb || (va == vb && ia < ib);
}

__global__ void argmax_rows_kernel(const void* __restrict__ x, int dtype, int64_t cols, int32_t* __restrict__ out) {
  const int64_t row = blockIdx.x;
  float best = -INFINITY;
  int64_t at = cols;  // past the end: loses every comparison with a real element
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v = load_as_float(x, dtype, (uint64_t)(row * cols + c));
    if (beats(v, c, best, at)) { best = v; at = c; }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, best, o);
    const int64_t i = __shfl_xor_sync(0xffffffffu, at, o);
    if (beats(v, i, best, at)) { best = v; at = i; }
  }
  __shared__ float sv[kThreads / 32];
  __shared__ int64_t si[kThreads / 32];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) { sv[warp] = best; si[warp] = at; }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < (int)(blockDim.x >> 5); w++)
      if (beats(sv[w], si[w], best, at)) { best = sv[w]; at = si[w]; }
    out[row] = at < cols ? (int32_t)at : 0;
  }
}

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" tsl_status tsl_argmax_rows(const void* d_x, int32_t dtype, int64_t rows, int64_t cols, int32_t* d_out) {
  const char* op = "tsl_argmax_rows";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, is_float_dtype(dtype), "dtype must be f32/bf16/f16, got %d", dtype);
  TSL_REQUIRE(op, rows >= 0 && rows <= 0x7fffffff && cols > 0 && cols <= 0x7fffffff, "bad shape rows=%lld cols=%lld",
              (long long)rows, (long long)cols);
  if (rows == 0) return TSL_OK;
  argmax_rows_kernel<<<(unsigned)rows, kThreads, 0, compute_stream()>>>(d_x, dtype, cols, d_out);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}
