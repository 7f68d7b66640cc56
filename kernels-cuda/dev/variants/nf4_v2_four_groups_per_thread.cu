// Variant 2 of src/nf4.cu (not built): four 16-value groups per thread, strided by the grid, loads
// issued before use. H200, 14336x4096 double-quantized: 0.080 ms = 44% of copy bandwidth (v1: 63%).
// Kept for the record in bench/NOTES.md "CUDA"; src/nf4.cu holds the fastest correct version.
// NF4 dequantization in the bitsandbytes layout (QLoRA, Dettmers et al. 2023). Memory-bound: each
// value reads half a byte and writes two, so the target is copy bandwidth. The fast path gives
// each thread 8 packed bytes (16 values, one 8-byte load) and writes 32 bytes with two 16-byte
// stores; the 16 code values sit in shared memory because a divergent __constant__ lookup would
// serialize across the warp.
#include "common.cuh"

namespace tsl {
namespace {

// DESIGN.md "Facts to stay compatible with": the NF4 code, index 0..15.
__constant__ float kNf4Code[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                                   -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                                   0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
                                   0.44070982933044006f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

struct Absmax {
  const float* f32;
  const uint8_t* q;
  const float* nested_absmax;
  const float* nested_code;
  int nested_blocksize;
  float nested_offset;
  __device__ __forceinline__ float operator()(uint64_t block) const {
    if (!q) return f32[block];
    return nested_code[q[block]] * nested_absmax[block / nested_blocksize] + nested_offset;
  }
};

// kGroups independent 16-value groups per thread (strided by the grid so each load instruction is
// coalesced): their packed bytes and absmax lookups are all issued before the first use, which keeps
// enough bytes in flight to approach copy bandwidth despite the dependent double-quant lookup.
constexpr int kGroups = 4;

__global__ void nf4_dequant_bf16x16(const uint2* __restrict__ packed, uint64_t groups, int blocksize, Absmax absmax,
                                    uint4* __restrict__ out) {
  __shared__ float code[16];
  if (threadIdx.x < 16) code[threadIdx.x] = kNf4Code[threadIdx.x];
  __syncthreads();
  const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
  for (uint64_t g0 = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; g0 < groups; g0 += stride * kGroups) {
    uint2 bytes[kGroups];
    float scale[kGroups];
#pragma unroll
    for (int j = 0; j < kGroups; j++) {
      const uint64_t g = g0 + j * stride;
      if (g < groups) {
        bytes[j] = __ldcs(&packed[g]);
        scale[j] = absmax((g * 16) / blocksize);
      }
    }
#pragma unroll
    for (int j = 0; j < kGroups; j++) {
      const uint64_t g = g0 + j * stride;
      if (g >= groups) break;
      uint32_t words[2] = {bytes[j].x, bytes[j].y};
      __align__(16) __nv_bfloat162 v[8];
#pragma unroll
      for (int w = 0; w < 2; w++) {
#pragma unroll
        for (int b = 0; b < 4; b++) {
          uint32_t byte = (words[w] >> (8 * b)) & 0xffu;
          v[w * 4 + b] = __floats2bfloat162_rn(code[byte >> 4] * scale[j], code[byte & 15] * scale[j]);
        }
      }
      out[2 * g] = *reinterpret_cast<uint4*>(&v[0]);
      out[2 * g + 1] = *reinterpret_cast<uint4*>(&v[4]);
    }
  }
}

// Any blocksize, any output dtype, or the tail past the last full 16-value group.
__global__ void nf4_dequant_generic(const uint8_t* __restrict__ packed, uint64_t begin, uint64_t n, int blocksize,
                                    Absmax absmax, void* out, int out_dtype) {
  for (uint64_t i = begin + blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x) {
    uint8_t byte = packed[i >> 1];
    int idx = (i & 1) ? (byte & 15) : (byte >> 4);
    store_from_float(out, out_dtype, i, kNf4Code[idx] * absmax(i / blocksize));
  }
}

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" tsl_status tsl_nf4_dequantize(const uint8_t* d_packed, uint64_t n, int32_t blocksize, const float* d_absmax_f32,
                                         const uint8_t* d_absmax_q, const float* d_nested_absmax,
                                         const float* d_nested_code, int32_t nested_blocksize, float nested_offset,
                                         void* d_out, int32_t out_dtype) {
  const char* op = "tsl_nf4_dequantize";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, n % 2 == 0, "element count must be even (two values per byte), got %llu", (unsigned long long)n);
  TSL_REQUIRE(op, blocksize > 0, "blocksize must be positive, got %d", blocksize);
  TSL_REQUIRE(op, is_float_dtype(out_dtype), "output dtype must be f32/bf16/f16, got %d", out_dtype);
  TSL_REQUIRE(op, d_absmax_q ? (d_nested_absmax && d_nested_code && nested_blocksize > 0) : d_absmax_f32 != nullptr,
              "absmax: give f32 absmax, or the double-quantized absmax with nested absmax, code and blocksize");
  if (n == 0) return TSL_OK;
  Absmax am{d_absmax_f32, d_absmax_q, d_nested_absmax, d_nested_code, nested_blocksize, nested_offset};
  uint64_t done = 0;
  bool aligned = ((uintptr_t)d_packed % 8 == 0) && ((uintptr_t)d_out % 16 == 0);
  if (out_dtype == TSL_BF16 && blocksize % 16 == 0 && aligned) {
    uint64_t groups = n / 16;
    if (groups) {
      const unsigned threads = 256;
      nf4_dequant_bf16x16<<<blocks_for((groups + kGroups - 1) / kGroups, threads), threads, 0, compute_stream()>>>(
          reinterpret_cast<const uint2*>(d_packed), groups, blocksize, am, reinterpret_cast<uint4*>(d_out));
      TSL_CHECK_LAUNCH(op);
    }
    done = groups * 16;
  }
  if (done < n) {
    nf4_dequant_generic<<<blocks_for(n - done, 256), 256, 0, compute_stream()>>>(d_packed, done, n, blocksize, am, d_out, out_dtype);
    TSL_CHECK_LAUNCH(op);
  }
  return TSL_OK;
}
