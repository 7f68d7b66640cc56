// Casts and the small elementwise ops of the graph (add, axpy, scale) plus the multi-tensor sum of
// squares used for gradient-norm clipping. Grid-stride loops over n elements, dtype read per element
// (the switch is uniform across a warp, so it costs a few instructions, not divergence).
#include "common.cuh"

namespace tsl {
namespace {

__global__ void cast_kernel(const void* src, int sd, void* dst, int dd, uint64_t n) {
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x)
    store_from_float(dst, dd, i, load_as_float(src, sd, i));
}

__global__ void add_kernel(const void* a, const void* b, void* dst, int dt, uint64_t n) {
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x)
    store_from_float(dst, dt, i, load_as_float(a, dt, i) + load_as_float(b, dt, i));
}

__global__ void axpy_kernel(void* dst, int dd, const void* src, int sd, float alpha, uint64_t n) {
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x)
    store_from_float(dst, dd, i, load_as_float(dst, dd, i) + alpha * load_as_float(src, sd, i));
}

// bf16 on both sides with 16-byte aligned pointers (every activation the graph adds): 8 values per
// 16-byte access. The scalar kernels above move 2 bytes per access and reached ~40% of copy bandwidth
// on 8192 x 4096 residual adds (0.12 ms per call, H200); the math is the same per element, so the
// results are bit-identical. Elements past the last full 8 go through the scalar kernels.
__device__ __forceinline__ uint4 add8(uint4 a, uint4 b, float alpha) {
  const __nv_bfloat162* pa = reinterpret_cast<const __nv_bfloat162*>(&a);
  const __nv_bfloat162* pb = reinterpret_cast<const __nv_bfloat162*>(&b);
  __align__(16) __nv_bfloat162 r[4];
#pragma unroll
  for (int k = 0; k < 4; k++) {
    const float2 x = __bfloat1622float2(pa[k]), y = __bfloat1622float2(pb[k]);
    r[k] = __floats2bfloat162_rn(x.x + alpha * y.x, x.y + alpha * y.y);
  }
  return *reinterpret_cast<uint4*>(r);
}

__global__ void axpy_bf16x8(const uint4* a, const uint4* __restrict__ b, uint4* dst, float alpha, uint64_t n8) {  // a may be dst (axpy)
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n8; i += (uint64_t)gridDim.x * blockDim.x)
    dst[i] = add8(a[i], b[i], alpha);
}

bool aligned16(const void* p) { return ((uintptr_t)p & 15u) == 0; }

__global__ void scale_kernel(void* x, int dt, float s, uint64_t n) {
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x)
    store_from_float(x, dt, i, load_as_float(x, dt, i) * s);
}

// One block per (tensor, slice); f64 partial sums so clipping sees the same norm as the CPU spec.
__global__ void sum_squares_kernel(const void* x, int dt, uint64_t n, double* out) {
  double acc = 0;
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x) {
    double v = load_as_float(x, dt, i);
    acc += v * v;
  }
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if ((threadIdx.x & 31) == 0) atomicAdd(out, acc);
}

constexpr unsigned kThreads = 256;

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" {

tsl_status tsl_cast(const void* d_src, int32_t src_dtype, void* d_dst, int32_t dst_dtype, uint64_t n) {
  TSL_TRY(ensure_init("tsl_cast"));
  TSL_REQUIRE("tsl_cast", is_float_dtype(src_dtype) && is_float_dtype(dst_dtype), "dtypes must be f32/bf16/f16 (got %d -> %d)", src_dtype, dst_dtype);
  if (n == 0) return TSL_OK;
  cast_kernel<<<blocks_for(n, kThreads), kThreads, 0, compute_stream()>>>(d_src, src_dtype, d_dst, dst_dtype, n);
  TSL_CHECK_LAUNCH("tsl_cast");
  return TSL_OK;
}

tsl_status tsl_add(const void* d_a, const void* d_b, void* d_dst, int32_t dtype, uint64_t n) {
  TSL_TRY(ensure_init("tsl_add"));
  TSL_REQUIRE("tsl_add", is_float_dtype(dtype), "dtype must be f32/bf16/f16, got %d", dtype);
  if (n == 0) return TSL_OK;
  uint64_t done = 0;
  if (dtype == TSL_BF16 && aligned16(d_a) && aligned16(d_b) && aligned16(d_dst) && n >= 8) {
    const uint64_t n8 = n / 8;
    axpy_bf16x8<<<blocks_for(n8, kThreads), kThreads, 0, compute_stream()>>>(
        static_cast<const uint4*>(d_a), static_cast<const uint4*>(d_b), static_cast<uint4*>(d_dst), 1.f, n8);
    TSL_CHECK_LAUNCH("tsl_add");
    done = n8 * 8;
  }
  if (done < n) {
    const uint64_t off = done * dtype_bytes(dtype);
    add_kernel<<<blocks_for(n - done, kThreads), kThreads, 0, compute_stream()>>>(
        static_cast<const char*>(d_a) + off, static_cast<const char*>(d_b) + off, static_cast<char*>(d_dst) + off, dtype, n - done);
    TSL_CHECK_LAUNCH("tsl_add");
  }
  return TSL_OK;
}

tsl_status tsl_axpy(void* d_dst, int32_t dst_dtype, const void* d_src, int32_t src_dtype, float alpha, uint64_t n) {
  TSL_TRY(ensure_init("tsl_axpy"));
  TSL_REQUIRE("tsl_axpy", is_float_dtype(src_dtype) && is_float_dtype(dst_dtype), "dtypes must be f32/bf16/f16");
  if (n == 0) return TSL_OK;
  uint64_t done = 0;
  if (dst_dtype == TSL_BF16 && src_dtype == TSL_BF16 && aligned16(d_dst) && aligned16(d_src) && n >= 8) {
    const uint64_t n8 = n / 8;
    axpy_bf16x8<<<blocks_for(n8, kThreads), kThreads, 0, compute_stream()>>>(
        static_cast<const uint4*>(d_dst), static_cast<const uint4*>(d_src), static_cast<uint4*>(d_dst), alpha, n8);
    TSL_CHECK_LAUNCH("tsl_axpy");
    done = n8 * 8;
  }
  if (done < n) {
    axpy_kernel<<<blocks_for(n - done, kThreads), kThreads, 0, compute_stream()>>>(
        static_cast<char*>(d_dst) + done * dtype_bytes(dst_dtype), dst_dtype, static_cast<const char*>(d_src) + done * dtype_bytes(src_dtype),
        src_dtype, alpha, n - done);
    TSL_CHECK_LAUNCH("tsl_axpy");
  }
  return TSL_OK;
}

tsl_status tsl_scale(void* d_x, int32_t dtype, float s, uint64_t n) {
  TSL_TRY(ensure_init("tsl_scale"));
  TSL_REQUIRE("tsl_scale", is_float_dtype(dtype), "dtype must be f32/bf16/f16, got %d", dtype);
  if (n == 0) return TSL_OK;
  scale_kernel<<<blocks_for(n, kThreads), kThreads, 0, compute_stream()>>>(d_x, dtype, s, n);
  TSL_CHECK_LAUNCH("tsl_scale");
  return TSL_OK;
}

tsl_status tsl_sum_squares(const void* const* d_ptrs, const uint64_t* sizes, const int32_t* dtypes, int32_t count,
                           double* h_out) {
  const char* op = "tsl_sum_squares";
  TSL_TRY(ensure_init(op));
  double* acc = nullptr;
  TSL_TRY(scratch_alloc(op, sizeof(double), (void**)&acc));
  tsl_status st = TSL_OK;
  cudaError_t e = cudaMemsetAsync(acc, 0, sizeof(double), compute_stream());
  for (int32_t i = 0; i < count && e == cudaSuccess; i++) {
    if (!is_float_dtype(dtypes[i])) { st = fail(TSL_ERR_INVALID, op, "tensor %d: dtype must be f32/bf16/f16", i); break; }
    if (sizes[i] == 0) continue;
    sum_squares_kernel<<<blocks_for(sizes[i], kThreads, 1024), kThreads, 0, compute_stream()>>>(d_ptrs[i], dtypes[i], sizes[i], acc);
    e = cudaGetLastError();
  }
  if (e == cudaSuccess && st == TSL_OK) e = cudaMemcpyAsync(h_out, acc, sizeof(double), cudaMemcpyDeviceToHost, compute_stream());
  if (e == cudaSuccess && st == TSL_OK) e = cudaStreamSynchronize(compute_stream());
  scratch_free(acc);
  if (e != cudaSuccess) return cuda_fail(op, e);
  return st;
}

}  // extern "C"
