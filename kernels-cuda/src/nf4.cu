// NF4 dequantization in the bitsandbytes layout (QLoRA, Dettmers et al. 2023). Memory-bound: each
// value reads half a byte and writes two, so the target is copy bandwidth. The 16 code values sit
// in shared memory because a divergent __constant__ lookup would serialize across the warp.
#include "common.cuh"
#include "nf4_code.cuh"

namespace tsl {
namespace {

__device__ __forceinline__ uint4 decode8(uint32_t word, float scale, const float* code) {
  __align__(16) __nv_bfloat162 v[4];
#pragma unroll
  for (int b = 0; b < 4; b++) {
    const uint32_t byte = (word >> (8 * b)) & 0xffu;
    v[b] = __floats2bfloat162_rn(code[byte >> 4] * scale, code[byte & 15] * scale);
  }
  return *reinterpret_cast<uint4*>(v);
}

// kChunks chunks of 8 values per thread; chunk j of a warp's span is j·32 + lane, so every 4-byte
// load and 16-byte store instruction covers contiguous memory across the warp (128 / 512 bytes),
// all loads are issued before the first decode, and the output is stored evict-first (it is read
// once, by the GEMM that follows, and would otherwise push useful lines out of L2). Measured on an
// H200 (kernels-cuda/dev/nf4_bench.cu): 82% of copy bandwidth, against 69% for the previous kernel
// (16 values per thread, 8-byte load, two 16-byte stores 32 bytes apart across the warp).
constexpr int kChunks = 4;

__global__ void nf4_dequant_bf16x8(const uint32_t* __restrict__ packed, uint64_t chunks, int blocksize, Nf4Absmax absmax,
                                   uint4* __restrict__ out) {
  __shared__ float code[16];
  if (threadIdx.x < 16) code[threadIdx.x] = kNf4Code[threadIdx.x];
  __syncthreads();
  const uint64_t warp = (blockIdx.x * (uint64_t)blockDim.x + threadIdx.x) >> 5;
  const uint64_t base = warp * 32 * kChunks + (threadIdx.x & 31);
  uint32_t words[kChunks];
  float scales[kChunks];
#pragma unroll
  for (int j = 0; j < kChunks; j++) {
    const uint64_t c = base + j * 32;
    words[j] = c < chunks ? __ldcs(packed + c) : 0u;
  }
#pragma unroll
  for (int j = 0; j < kChunks; j++) {
    const uint64_t c = base + j * 32;
    scales[j] = c < chunks ? absmax((c * 8) / blocksize) : 0.f;
  }
#pragma unroll
  for (int j = 0; j < kChunks; j++) {
    const uint64_t c = base + j * 32;
    if (c < chunks) __stcs(out + c, decode8(words[j], scales[j], code));
  }
}

// Any blocksize, any output dtype, or the tail past the last full 16-value group.
__global__ void nf4_dequant_generic(const uint8_t* __restrict__ packed, uint64_t begin, uint64_t n, int blocksize,
                                    Nf4Absmax absmax, void* out, int out_dtype) {
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
  Nf4Absmax am{d_absmax_f32, d_absmax_q, d_nested_absmax, d_nested_code, nested_blocksize, nested_offset};
  uint64_t done = 0;
  bool aligned = ((uintptr_t)d_packed % 4 == 0) && ((uintptr_t)d_out % 16 == 0);
  if (out_dtype == TSL_BF16 && blocksize % 8 == 0 && aligned) {
    const uint64_t chunks = n / 8;
    if (chunks) {
      const unsigned threads = 256;
      const uint64_t per_block = (uint64_t)threads * kChunks;
      nf4_dequant_bf16x8<<<(unsigned)((chunks + per_block - 1) / per_block), threads, 0, compute_stream()>>>(
          reinterpret_cast<const uint32_t*>(d_packed), chunks, blocksize, am, reinterpret_cast<uint4*>(d_out));
      TSL_CHECK_LAUNCH(op);
    }
    done = chunks * 8;
  }
  if (done < n) {
    nf4_dequant_generic<<<blocks_for(n - done, 256), 256, 0, compute_stream()>>>(d_packed, done, n, blocksize, am, d_out, out_dtype);
    TSL_CHECK_LAUNCH(op);
  }
  return TSL_OK;
}
