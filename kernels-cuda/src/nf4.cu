// NF4 dequantization in the bitsandbytes layout (QLoRA, Dettmers et al. 2023). Memory-bound: each
// value reads half a byte and writes two, so the target is copy bandwidth. The 16 code values sit
// in shared memory because a divergent __constant__ lookup would serialize across the warp.
//
// Two kernels:
//  - nf4_dequant_bf16x8: bf16 out, blocksize a multiple of 8, aligned pointers (every real weight).
//  - nf4_dequant_generic: any dtype or blocksize, unaligned pointers, and the tail past the last chunk.
// MEASURED (kernels-cuda/dev/nf4_bench.cu, 14336x4096, double-quantized absmax, blocksize 64, 40
// back-to-back launches on inputs that are not in L2; bench/NOTES.md has the table), NVIDIA H100 80GB
// HBM3, three runs: 0.0530-0.0532 ms = 92.3-92.6% of a 1 GiB memcpy's rate (3.01 TB/s) and 100.5% of a
// kernel that moves the same bytes with no decode (read 29 MB, write 117 MB: 91.8-92.1% of memcpy;
// write-only reaches 103%, so mixing reads into the write stream, plus ~3 points of per-launch ramp and
// tail, is what is left). One launch between two events reads 85-87% (launch latency in the number).
// Slower there: a persistent grid with next-tile prefetch (84-86%), Hopper bulk async stores from
// shared memory (88%), a tile's scales shuffled from one load per lane (91%). With the dependent
// launch below (variant v6s_pdl_early): 95.1% on that H100, 91.5% on an H200 (87.8% without).
#include "common.cuh"
#include "dependent_launch.cuh"
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
// once, by the GEMM that follows, and would otherwise push useful lines out of L2). With power-of-two
// blocksize and nested blocksize (kShift) the chunk -> absmax block -> nested block indices are
// shifts; otherwise two 64-bit divisions per chunk, which roughly double the instruction count.
constexpr int kChunks = 4;

struct Shifts {
  int lbs;   // log2(blocksize)
  int lnbs;  // log2(nested blocksize)
};

template <bool kShift>
__device__ __forceinline__ float chunk_scale(const Nf4Absmax& am, uint64_t c, int blocksize, Shifts sh) {
  if (!kShift) return am((int64_t)((c * 8) / blocksize));
  const int64_t b = (int64_t)((c * 8) >> sh.lbs);
  if (!am.q) return __ldg(am.f32 + b);
  // Nf4Absmax's expression (one FFMA), so every path writes the same bits.
  return __ldg(am.nested_code + __ldg(am.q + b)) * __ldg(am.nested_absmax + (b >> sh.lnbs)) + am.nested_offset;
}

// Launched with programmatic dependent launch on sm_90+ (launch_dependent): the block's loads of
// codes and scales (frozen weights, written only by synchronous uploads) are issued while the
// previous kernel drains, and griddepcontrol.wait holds the stores until it has finished (it may
// still be reading the workspace these stores overwrite).
template <bool kShift>
__global__ void nf4_dequant_bf16x8(const uint32_t* __restrict__ packed, uint64_t chunks, int blocksize, Shifts sh,
                                   Nf4Absmax absmax, uint4* __restrict__ out) {
  __shared__ float code[16];
  if (threadIdx.x < 16) code[threadIdx.x] = kNf4Code[threadIdx.x];
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
    scales[j] = c < chunks ? chunk_scale<kShift>(absmax, c, blocksize, sh) : 0.f;
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  __syncthreads();  // code[]
#pragma unroll
  for (int j = 0; j < kChunks; j++) {
    const uint64_t c = base + j * 32;
    if (c < chunks) __stcs(out + c, decode8(words[j], scales[j], code));
  }
}

// Any blocksize, any output dtype, or the tail past the last full 8-value chunk.
__global__ void nf4_dequant_generic(const uint8_t* __restrict__ packed, uint64_t begin, uint64_t n, int blocksize,
                                    Nf4Absmax absmax, void* out, int out_dtype) {
  for (uint64_t i = begin + blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x) {
    uint8_t byte = packed[i >> 1];
    int idx = (i & 1) ? (byte & 15) : (byte >> 4);
    store_from_float(out, out_dtype, i, kNf4Code[idx] * absmax(i / blocksize));
  }
}

int log2_exact(int64_t x) {  // -1 unless x is a power of two
  if (x <= 0 || (x & (x - 1))) return -1;
  int l = 0;
  while ((1ll << l) < x) l++;
  return l;
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
      const unsigned grid = (unsigned)((chunks + per_block - 1) / per_block);
      const Shifts sh{log2_exact(blocksize), log2_exact(nested_blocksize)};
      const uint32_t* words = reinterpret_cast<const uint32_t*>(d_packed);
      uint4* out = reinterpret_cast<uint4*>(d_out);
      const bool shifts = sh.lbs >= 0 && (sh.lnbs >= 0 || !d_absmax_q);
      static const KernelSetup setups[2] = {setup_kernel(nf4_dequant_bf16x8<false>, threads, 0),
                                            setup_kernel(nf4_dequant_bf16x8<true>, threads, 0)};
      const KernelSetup& setup = setups[shifts];
      if (setup.error != cudaSuccess) return cuda_fail(op, setup.error);
      void* params[] = {&words, const_cast<uint64_t*>(&chunks), &blocksize, const_cast<Shifts*>(&sh), &am, &out};
      const void* kernel = shifts ? (const void*)nf4_dequant_bf16x8<true> : (const void*)nf4_dequant_bf16x8<false>;
      TSL_CUDA(op, launch_dependent(kernel, params, dim3(grid), threads, 0, setup.dependent_launch, compute_stream()));
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
