// Shared by every .cu file: the error model (status + thread-local message), the compute stream,
// and dtype-generic loads/stores so small operands can arrive as f32, bf16 or f16.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "../include/tsloth_cuda.h"

namespace tsl {

// Records "op: message" as the thread's last error and returns the status, so call sites read
// `return fail(TSL_ERR_INVALID, "rope", "head_dim must be even, got %d", d);`.
tsl_status fail(tsl_status code, const char* op, const char* fmt, ...);
// Turns a CUDA error into TSL_ERR_CUDA (or TSL_ERR_OOM) with the op name and CUDA's own words.
tsl_status cuda_fail(const char* op, cudaError_t err);

// The stream every op runs on (created by tsl_init; ops call ensure_init first).
cudaStream_t compute_stream();
tsl_status ensure_init(const char* op);

// Device allocations for op-internal scratch (category workspace), freed back to the cache.
tsl_status scratch_alloc(const char* op, uint64_t bytes, void** out);
void scratch_free(void* p);

// Scratch that frees itself: an op's temporaries go back to the cache on every exit path.
struct Scratch {
  void* p = nullptr;
  ~Scratch() { scratch_free(p); }
};

inline unsigned blocks_for(uint64_t n, unsigned threads, unsigned cap = 65535u * 16u) {
  uint64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return (unsigned)(b > cap ? cap : b);
}

__device__ __forceinline__ float load_as_float(const void* p, int dtype, uint64_t i) {
  switch (dtype) {
    case TSL_BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case TSL_F16: return __half2float(static_cast<const __half*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

__device__ __forceinline__ void store_from_float(void* p, int dtype, uint64_t i, float v) {
  switch (dtype) {
    case TSL_BF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(v); break;
    case TSL_F16: static_cast<__half*>(p)[i] = __float2half(v); break;
    default: static_cast<float*>(p)[i] = v; break;
  }
}

inline bool is_float_dtype(int32_t d) { return d == TSL_F32 || d == TSL_BF16 || d == TSL_F16; }
inline uint64_t dtype_bytes(int32_t d) { return d == TSL_F32 || d == TSL_I32 ? 4 : d == TSL_U8 ? 1 : 2; }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a block of up to 1024 threads; every thread gets the result. `shared` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float total = lane < nwarps ? shared[lane] : 0.f;
  return warp_sum(total);
}

__device__ __forceinline__ float block_max(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float m = lane < nwarps ? shared[lane] : -INFINITY;
  return warp_max(m);
}

}  // namespace tsl

// Checks a launch (configuration errors surface here; faults surface at the next sync).
#define TSL_CHECK_LAUNCH(op)                                \
  do {                                                      \
    cudaError_t e_ = cudaGetLastError();                    \
    if (e_ != cudaSuccess) return tsl::cuda_fail(op, e_);   \
  } while (0)

#define TSL_CUDA(op, call)                                  \
  do {                                                      \
    cudaError_t e_ = (call);                                \
    if (e_ != cudaSuccess) return tsl::cuda_fail(op, e_);   \
  } while (0)

#define TSL_TRY(call)                                       \
  do {                                                      \
    tsl_status s_ = (call);                                 \
    if (s_ != TSL_OK) return s_;                            \
  } while (0)

#define TSL_REQUIRE(op, cond, ...)                                            \
  do {                                                                        \
    if (!(cond)) return tsl::fail(TSL_ERR_INVALID, op, __VA_ARGS__);          \
  } while (0)
