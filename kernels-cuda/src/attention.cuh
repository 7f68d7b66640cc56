// Pieces shared by the attention kernels (attention_fwd.cu, attention_bwd.cu): tile loads from the
// packed [T, heads*D] layout into padded shared memory, and bf16 dot products in f32.
#pragma once
#include "common.cuh"

namespace tsl {
namespace attn {

// Rows padded by 8 bf16 (16 bytes): keeps 16-byte stores aligned and spreads consecutive rows
// over different banks for the row-wise dot products.
template <int D>
constexpr int kRow = D + 8;

// Loads `rows` rows of head `head` starting at packed token tok0; rows at or past `valid` are zeros.
template <int D>
__device__ __forceinline__ void load_tile(__nv_bfloat16* s, const __nv_bfloat16* __restrict__ g, int64_t tok0, int valid,
                                          int rows, int64_t stride, int head) {
  constexpr int vecs = D / 8;
  for (int idx = threadIdx.x; idx < rows * vecs; idx += blockDim.x) {
    const int r = idx / vecs, v = idx % vecs;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < valid) val = *reinterpret_cast<const uint4*>(g + (tok0 + r) * stride + (int64_t)head * D + v * 8);
    *reinterpret_cast<uint4*>(s + r * kRow<D> + v * 8) = val;
  }
}

template <int D>
__device__ __forceinline__ float dot_rows(const __nv_bfloat16* a, const __nv_bfloat16* b) {
  float acc = 0.f;
#pragma unroll 8
  for (int d = 0; d < D; d += 2) {
    float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(a + d));
    float2 y = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(b + d));
    acc = fmaf(x.x, y.x, acc);
    acc = fmaf(x.y, y.y, acc);
  }
  return acc;
}

// Sum over the 4 consecutive lanes that share a row.
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  return v;
}

__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
  return v;
}

inline bool aligned16(const void* p) { return ((uintptr_t)p & 15) == 0; }

}  // namespace attn
}  // namespace tsl
