// Variant 3 of src/nf4.cu (not built): 32 values per thread (16-byte load, four 16-byte stores 64 bytes
// apart across the warp). H200, 14336x4096 double-quantized: 0.086 ms = 41% of copy bandwidth (v1: 63%).
// Kept for the record in bench/NOTES.md "CUDA"; src/nf4.cu holds the fastest correct version.
// NF4 dequantization in the bitsandbytes layout (QLoRA, Dettmers et al. 2023). Memory-bound: each
// value reads half a byte and writes two, so the target is copy bandwidth. The 16 code values sit
// in shared memory because a divergent __constant__ lookup would serialize across the warp.
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

// 32 values per thread: one 16-byte load of packed codes, one absmax lookup (32 values never straddle
// a block: blocksize is a multiple of 32 on this path), four 16-byte stores. Version 1 (16 values,
// 8-byte loads) measured 63% of copy bandwidth on an H200, version 2 (four strided 16-value groups
// per thread) 44%: see bench/NOTES.md and kernels-cuda/dev/variants/.
__global__ void nf4_dequant_bf16x32(const uint4* __restrict__ packed, uint64_t chunks, int blocksize, Absmax absmax,
                                    uint4* __restrict__ out) {
  __shared__ float code[16];
  if (threadIdx.x < 16) code[threadIdx.x] = kNf4Code[threadIdx.x];
  __syncthreads();
  for (uint64_t g = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; g < chunks; g += (uint64_t)gridDim.x * blockDim.x) {
    const uint4 bytes = packed[g];
    const float scale = absmax((g * 32) / blocksize);
    const uint32_t words[4] = {bytes.x, bytes.y, bytes.z, bytes.w};
#pragma unroll
    for (int w = 0; w < 4; w++) {
      __align__(16) __nv_bfloat162 v[4];
#pragma unroll
      for (int b = 0; b < 4; b++) {
        const uint32_t byte = (words[w] >> (8 * b)) & 0xffu;
        v[b] = __floats2bfloat162_rn(code[byte >> 4] * scale, code[byte & 15] * scale);
      }
      out[4 * g + w] = *reinterpret_cast<uint4*>(v);
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
  const bool aligned = ((uintptr_t)d_packed % 16 == 0) && ((uintptr_t)d_out % 16 == 0);
  if (out_dtype == TSL_BF16 && blocksize % 32 == 0 && aligned) {
    const uint64_t chunks = n / 32;
    if (chunks) {
      const unsigned threads = 256;
      nf4_dequant_bf16x32<<<blocks_for(chunks, threads), threads, 0, compute_stream()>>>(
          reinterpret_cast<const uint4*>(d_packed), chunks, blocksize, am, reinterpret_cast<uint4*>(d_out));
      TSL_CHECK_LAUNCH(op);
    }
    done = chunks * 32;
  }
  if (done < n) {
    nf4_dequant_generic<<<blocks_for(n - done, 256), 256, 0, compute_stream()>>>(d_packed, done, n, blocksize, am, d_out, out_dtype);
    TSL_CHECK_LAUNCH(op);
  }
  return TSL_OK;
}
