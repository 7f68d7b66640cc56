// The NF4 matrix-vector product's warp-level pieces, shared by its kernels (nf4_gemv_kernels.cuh)
// and the bench's variants: the pair table replicated per lane, the 8-weight dot product over it,
// and the finishing of a warp's row sums.
#pragma once
#include "common.cuh"
#include "nf4_code.cuh"

namespace tsl {
namespace {

constexpr int kTableBytes = 256 * 256;  // 256 entries, one 256-byte row each (32 lanes x 4 bytes used)

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
  return r;
}

// Entry v (a code byte: even weight in the high nibble) holds bf16(code[v >> 4]) in its low half,
// where x's even element sits, and bf16(code[v & 15]) in its high half; lane l's copy at byte
// v·256 + 4l. Codes held in bf16: one extra rounding of 2^-9 relative against bf16(code · absmax).
// Filled by threads [0, threads) of the block.
__device__ __forceinline__ void fill_pair_table(char* table, int threads) {
  for (int i = threadIdx.x; i < 256 * 8; i += threads) {  // (entry, 16-byte group of 4 lanes)
    const int v = i >> 3;
    const uint32_t p = (uint32_t)__bfloat16_as_ushort(__float2bfloat16(kNf4Code[v >> 4])) |
                       ((uint32_t)__bfloat16_as_ushort(__float2bfloat16(kNf4Code[v & 15])) << 16);
    *reinterpret_cast<uint4*>(table + v * 256 + (i & 7) * 16) = make_uint4(p, p, p, p);
  }
}

// Σ over the 8 weights of one code word against 8 bf16 of x: 4 lookups (the offset is one PRMT:
// bytes 4·lane, code byte j, 0, 0), 4 HFMA2 accumulating 4 deep in bf16x2, then the halves in f32.
__device__ __forceinline__ float dot8_pairs(uint32_t w, const uint4 xv, const char* table, uint32_t lane4) {
  const uint32_t xw[4] = {xv.x, xv.y, xv.z, xv.w};
  __nv_bfloat162 acc;
#pragma unroll
  for (int j = 0; j < 4; j++) {
    const uint32_t p = *reinterpret_cast<const uint32_t*>(table + prmt(w, lane4, 0x5504u + 0x10u * j));
    const __nv_bfloat162 pb = *reinterpret_cast<const __nv_bfloat162*>(&p);
    const __nv_bfloat162 xb = *reinterpret_cast<const __nv_bfloat162*>(&xw[j]);
    acc = j == 0 ? __hmul2(pb, xb) : __hfma2(pb, xb, acc);
  }
  const uint32_t bits = *reinterpret_cast<const uint32_t*>(&acc);
  return __uint_as_float(bits << 16) + __uint_as_float(bits & 0xffff0000u);
}

// A warp's row sums, each at the lane that finishes its row (returns the sum there; *r: its row).
// 1 row: lane 0, after 5 butterfly steps. 2 rows: lanes 0-15 keep row 0 and 16-31 row 1, one
// exchange adds the other half's partials, 4 more steps finish both at once: lane 0 holds row 0's
// sum, lane 16 row 1's (5 shuffles instead of 10, and both rows' epilogues run side by side).
template <int kRows>
__device__ __forceinline__ float rows_sum(const float (&acc)[kRows], int lane, int* r) {
  static_assert(kRows <= 2, "finishing lanes for 1 or 2 rows");
  if (kRows == 1) {
    *r = 0;
    return warp_sum(acc[0]);
  }
  const bool upper = lane & 16;
  float keep = upper ? acc[kRows - 1] : acc[0];
  keep += __shfl_xor_sync(0xffffffffu, upper ? acc[0] : acc[kRows - 1], 16);
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) keep += __shfl_xor_sync(0xffffffffu, keep, o);
  *r = upper ? 1 : 0;
  return keep;
}
template <int kRows>
__device__ __forceinline__ bool finishes_row(int lane) { return kRows == 2 ? (lane & 15) == 0 : lane == 0; }

}  // namespace
}  // namespace tsl
