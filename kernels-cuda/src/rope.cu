// Rotary position embedding (Su et al. 2021) in Hugging Face's rotate-half layout: pairs (i, i+D/2).
// The caller folds llama3 frequency scaling into inv_freq (lib/model computes it once), so one
// kernel serves plain, llama3 and any other scaling. Angles are f32(position * inv_freq) as in HF.
// The backward is the rotation by -θ (the transpose of a rotation), selected by `direction`.
#include "common.cuh"

namespace tsl {
namespace {

// One thread per (token, pair index i): the angle is the same for every head, so sincos runs once
// and the loop over heads only loads, rotates and stores (consecutive threads touch consecutive i).
__global__ void rope_kernel(const __nv_bfloat16* __restrict__ x, const int32_t* __restrict__ pos,
                            const float* __restrict__ inv_freq, int64_t T, int heads, int D, float sign,
                            __nv_bfloat16* __restrict__ y) {
  const int half = D / 2;
  const uint64_t total = (uint64_t)T * half;
  for (uint64_t k = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; k < total; k += (uint64_t)gridDim.x * blockDim.x) {
    const int i = (int)(k % half);
    const int64_t t = (int64_t)(k / half);
    const float theta = (float)pos[t] * inv_freq[i];
    float s, c;
    sincosf(theta, &s, &c);
    s *= sign;
    for (int h = 0; h < heads; h++) {
      const uint64_t base = ((uint64_t)t * heads + h) * D;
      const float a = __bfloat162float(x[base + i]);
      const float b = __bfloat162float(x[base + i + half]);
      y[base + i] = __float2bfloat16(a * c - b * s);
      y[base + i + half] = __float2bfloat16(b * c + a * s);
    }
  }
}

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" tsl_status tsl_rope(const void* d_x, const int32_t* d_positions, const float* d_inv_freq, int64_t T,
                               int32_t n_heads, int32_t head_dim, int32_t direction, void* d_y) {
  const char* op = "tsl_rope";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, head_dim > 0 && head_dim % 2 == 0, "head_dim must be even and positive, got %d", head_dim);
  TSL_REQUIRE(op, direction == 1 || direction == -1, "direction must be +1 (forward) or -1 (backward), got %d", direction);
  TSL_REQUIRE(op, n_heads > 0 && T >= 0, "n_heads > 0 expected");
  uint64_t total = (uint64_t)T * (head_dim / 2);
  if (total == 0) return TSL_OK;
  rope_kernel<<<blocks_for(total, 256), 256, 0, compute_stream()>>>((const __nv_bfloat16*)d_x, d_positions, d_inv_freq, T,
                                                                     n_heads, head_dim, (float)direction, (__nv_bfloat16*)d_y);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}
