// Batch-1 decode's matrix-vector product straight from 4-bit NF4 weights (bitsandbytes layout,
// QLoRA, Dettmers et al. 2023): y = W x with W never dequantized to memory, so each weight byte is
// read once and decode runs at the weight stream's bandwidth (the 16-bit alternative moves 4× the
// bytes). One warp per output row; each lane streams 16-byte chunks (32 codes, within one absmax
// block), four chunks in flight before any arithmetic. The optional bias and LoRA term
// (scale · (x·aᵀ)·bᵀ, Hu et al. 2021) are added in the epilogue.
// Measured on an H200: 12–16% of copy bandwidth, short of the 70% target (bench/NOTES.md,
// "Generation"); a second version (bench/infer/variants/nf4_gemv_v2.cu: two rows per warp,
// coalesced x, a bank-conflict-free half2 table) was slower (9–11%) and stays out.
#include "common.cuh"
#include "nf4_code.cuh"

namespace tsl {
namespace {

constexpr int kRowsPerBlock = 8;  // one warp each
constexpr int kInFlight = 4;      // 16-byte chunks loaded per lane before use

// Σ over one chunk: 16 bytes of codes (even element in the high nibble) against 32 bf16 of x.
__device__ __forceinline__ float chunk_dot(const uint4 codes, const uint4* __restrict__ x4, const float2* lut) {
  const uint32_t w[4] = {codes.x, codes.y, codes.z, codes.w};
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < 4; k++) {
    const uint4 xv = __ldg(x4 + k);  // 8 bf16: elements 8k .. 8k+7 of the chunk
    const __nv_bfloat162* xp = reinterpret_cast<const __nv_bfloat162*>(&xv);
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const float2 c = lut[(w[k] >> (8 * j)) & 0xffu];
      const float2 xf = __bfloat1622float2(xp[j]);
      s += c.x * xf.x + c.y * xf.y;
    }
  }
  return s;
}

__global__ void __launch_bounds__(kRowsPerBlock * 32) nf4_gemv_kernel(
    const uint4* __restrict__ packed, int64_t out_f, int64_t in_f, int blocksize, Nf4Absmax scales,
    const __nv_bfloat16* __restrict__ x, const void* __restrict__ bias, int bias_dtype, const float* __restrict__ xa,
    const float* __restrict__ lora_b, float lora_scale, int r, __nv_bfloat16* __restrict__ y) {
  // Byte → (code of high nibble, code of low nibble): one shared load per two weights.
  __shared__ float2 lut[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) lut[i] = make_float2(kNf4Code[i >> 4], kNf4Code[i & 15]);
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int64_t row = (int64_t)blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  if (row >= out_f) return;
  const int64_t chunks = in_f / 32;
  const uint4* rowp = packed + row * chunks;
  const uint4* x4 = reinterpret_cast<const uint4*>(x);
  float acc = 0.f;
  for (int64_t c0 = lane; c0 < chunks; c0 += 32 * kInFlight) {
    uint4 codes[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; u++) {
      const int64_t c = c0 + 32 * u;
      codes[u] = c < chunks ? __ldcs(rowp + c) : make_uint4(0, 0, 0, 0);  // streamed once: do not keep in L2
    }
#pragma unroll
    for (int u = 0; u < kInFlight; u++) {
      const int64_t c = c0 + 32 * u;
      if (c < chunks) acc += scales((row * in_f + c * 32) / blocksize) * chunk_dot(codes[u], x4 + c * 4, lut);
    }
  }
  acc = warp_sum(acc);
  if (lane == 0) {
    if (bias) acc += load_as_float(bias, bias_dtype, row);
    if (xa) {
      float l = 0.f;
      for (int j = 0; j < r; j++) l += xa[j] * lora_b[row * r + j];
      acc += lora_scale * l;
    }
    y[row] = __float2bfloat16(acc);
  }
}

// xa[j] = Σ_i x[i] a[j, i]: one block per LoRA rank row.
__global__ void lora_down_kernel(const __nv_bfloat16* __restrict__ x, const float* __restrict__ a, int64_t in_f,
                                 float* __restrict__ xa) {
  __shared__ float red[32];
  float s = 0.f;
  for (int64_t i = threadIdx.x; i < in_f; i += blockDim.x) s += __bfloat162float(x[i]) * a[blockIdx.x * in_f + i];
  s = block_sum(s, red);
  if (threadIdx.x == 0) xa[blockIdx.x] = s;
}

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" tsl_status tsl_nf4_gemv(const uint8_t* d_packed, int64_t out_f, int64_t in_f, int32_t blocksize,
                                   const float* d_absmax_f32, const uint8_t* d_absmax_q, const float* d_nested_absmax,
                                   const float* d_nested_code, int32_t nested_blocksize, float nested_offset,
                                   const void* d_x, const void* d_bias, int32_t bias_dtype, const float* d_a,
                                   const float* d_b, float scale, int32_t r, void* d_y) {
  const char* op = "tsl_nf4_gemv";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, out_f > 0 && in_f > 0 && in_f % 64 == 0, "in_f must be a positive multiple of 64, got %lld", (long long)in_f);
  TSL_REQUIRE(op, blocksize > 0 && blocksize % 32 == 0, "blocksize must be a multiple of 32, got %d", blocksize);
  TSL_REQUIRE(op, d_absmax_q ? (d_nested_absmax && d_nested_code && nested_blocksize > 0) : d_absmax_f32 != nullptr,
              "absmax: give f32 absmax, or the double-quantized absmax with nested absmax, code and blocksize");
  TSL_REQUIRE(op, (uintptr_t)d_packed % 16 == 0 && (uintptr_t)d_x % 16 == 0, "packed weights and x must be 16-byte aligned");
  TSL_REQUIRE(op, !d_bias || is_float_dtype(bias_dtype), "bias dtype must be f32, bf16 or f16");
  TSL_REQUIRE(op, !d_a || (d_b && r > 0), "LoRA needs both a and b and r > 0");
  float* xa = nullptr;
  if (d_a) {
    TSL_TRY(scratch_alloc(op, (uint64_t)r * 4, reinterpret_cast<void**>(&xa)));
    lora_down_kernel<<<r, 256, 0, compute_stream()>>>(static_cast<const __nv_bfloat16*>(d_x), d_a, in_f, xa);
  }
  Nf4Absmax sc{d_absmax_f32, d_absmax_q, d_nested_absmax, d_nested_code, nested_blocksize, nested_offset};
  const unsigned blocks = (unsigned)((out_f + kRowsPerBlock - 1) / kRowsPerBlock);
  nf4_gemv_kernel<<<blocks, kRowsPerBlock * 32, 0, compute_stream()>>>(
      reinterpret_cast<const uint4*>(d_packed), out_f, in_f, blocksize, sc, static_cast<const __nv_bfloat16*>(d_x), d_bias,
      bias_dtype, xa, d_b, scale, r, static_cast<__nv_bfloat16*>(d_y));
  cudaError_t e = cudaGetLastError();
  scratch_free(xa);
  if (e != cudaSuccess) return cuda_fail(op, e);
  return TSL_OK;
}
