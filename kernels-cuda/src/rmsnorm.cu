// RMSNorm (Zhang & Sennrich 2019) forward and backward, one block per row, f32 arithmetic. The
// weight is frozen (QLoRA trains only adapters), so the backward gives dx alone. Also the residual
// add fused with the next norm's forward, for generation (tsl_add_rmsnorm_fwd).
#include <initializer_list>

#include "common.cuh"

namespace tsl {
namespace {

__global__ void rmsnorm_fwd_kernel(const __nv_bfloat16* __restrict__ x, const void* __restrict__ w, int wdt, int64_t H,
                                   float eps, __nv_bfloat16* __restrict__ y, float* __restrict__ rstd_out) {
  __shared__ float red[32];
  const __nv_bfloat16* xr = x + blockIdx.x * H;
  float ss = 0.f;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
    float v = __bfloat162float(xr[j]);
    ss += v * v;
  }
  float rstd = rsqrtf(block_sum(ss, red) / (float)H + eps);
  if (threadIdx.x == 0) rstd_out[blockIdx.x] = rstd;
  __nv_bfloat16* yr = y + blockIdx.x * H;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x)
    yr[j] = __float2bfloat16(__bfloat162float(xr[j]) * rstd * load_as_float(w, wdt, j));
}

__global__ void rmsnorm_bwd_kernel(const __nv_bfloat16* __restrict__ dy, const __nv_bfloat16* __restrict__ x,
                                   const void* __restrict__ w, int wdt, const float* __restrict__ rstd_in, int64_t H,
                                   __nv_bfloat16* __restrict__ dx) {
  __shared__ float red[32];
  const int64_t row = blockIdx.x * H;
  const float rstd = rstd_in[blockIdx.x];
  float dot = 0.f;  // Σ_j g_j x̂_j
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x)
    dot += __bfloat162float(dy[row + j]) * load_as_float(w, wdt, j) * __bfloat162float(x[row + j]) * rstd;
  const float mean = block_sum(dot, red) / (float)H;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
    float g = __bfloat162float(dy[row + j]) * load_as_float(w, wdt, j);
    float xh = __bfloat162float(x[row + j]) * rstd;
    dx[row + j] = __float2bfloat16(rstd * (g - xh * mean));
  }
}

// Rows of up to 8192 values with H % 8 == 0: each thread holds 8 values (one 16-byte load) in
// registers, so x is read once and every access is 16 bytes wide.
__device__ __forceinline__ void unpack8(uint4 v, float* f) {
  const __nv_bfloat162* p = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int j = 0; j < 4; j++) {
    float2 t = __bfloat1622float2(p[j]);
    f[2 * j] = t.x;
    f[2 * j + 1] = t.y;
  }
}

__device__ __forceinline__ uint4 pack8(const float* f) {
  uint4 v;
  __nv_bfloat162* p = reinterpret_cast<__nv_bfloat162*>(&v);
#pragma unroll
  for (int j = 0; j < 4; j++) p[j] = __floats2bfloat162_rn(f[2 * j], f[2 * j + 1]);
  return v;
}

__global__ void rmsnorm_fwd_x8(const uint4* __restrict__ x, const void* __restrict__ w, int wdt, int64_t H, float eps,
                               uint4* __restrict__ y, float* __restrict__ rstd_out) {
  __shared__ float red[32];
  const int64_t v8 = H / 8, j = threadIdx.x;
  float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  if (j < v8) unpack8(x[blockIdx.x * v8 + j], f);
  float ss = 0.f;
#pragma unroll
  for (int e = 0; e < 8; e++) ss += f[e] * f[e];
  const float rstd = rsqrtf(block_sum(ss, red) / (float)H + eps);
  if (threadIdx.x == 0) rstd_out[blockIdx.x] = rstd;
  if (j < v8) {
#pragma unroll
    for (int e = 0; e < 8; e++) f[e] *= rstd * load_as_float(w, wdt, j * 8 + e);
    y[blockIdx.x * v8 + j] = pack8(f);
  }
}

// Generation's residual step: sum = a + b rounded to bf16 as tsl_add rounds it, then the forward
// above over that sum, with the same threads and reduction order, so the result is bit-identical
// to tsl_add followed by tsl_rmsnorm_fwd in one launch instead of two (no rstd: nothing trains).
__global__ void add_rmsnorm_fwd_x8(const uint4* __restrict__ a, const uint4* __restrict__ b, const void* __restrict__ w,
                                   int wdt, int64_t H, float eps, uint4* __restrict__ sum, uint4* __restrict__ y) {
  __shared__ float red[32];
  const int64_t v8 = H / 8, j = threadIdx.x;
  float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  if (j < v8) {
    float fb[8];
    unpack8(a[blockIdx.x * v8 + j], f);
    unpack8(b[blockIdx.x * v8 + j], fb);
#pragma unroll
    for (int e = 0; e < 8; e++) f[e] += fb[e];
    const uint4 s = pack8(f);
    sum[blockIdx.x * v8 + j] = s;
    unpack8(s, f);
  }
  float ss = 0.f;
#pragma unroll
  for (int e = 0; e < 8; e++) ss += f[e] * f[e];
  const float rstd = rsqrtf(block_sum(ss, red) / (float)H + eps);
  if (j < v8) {
#pragma unroll
    for (int e = 0; e < 8; e++) f[e] *= rstd * load_as_float(w, wdt, j * 8 + e);
    y[blockIdx.x * v8 + j] = pack8(f);
  }
}

// The same for rows the 16-byte path cannot take, as the scalar forward: each thread reads back the
// sum elements it wrote.
__global__ void add_rmsnorm_fwd_kernel(const __nv_bfloat16* __restrict__ a, const __nv_bfloat16* __restrict__ b,
                                       const void* __restrict__ w, int wdt, int64_t H, float eps, __nv_bfloat16* sum,
                                       __nv_bfloat16* __restrict__ y) {
  __shared__ float red[32];
  const int64_t row = blockIdx.x * H;
  float ss = 0.f;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
    const __nv_bfloat16 s = __float2bfloat16(__bfloat162float(a[row + j]) + __bfloat162float(b[row + j]));
    sum[row + j] = s;
    const float v = __bfloat162float(s);
    ss += v * v;
  }
  const float rstd = rsqrtf(block_sum(ss, red) / (float)H + eps);
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x)
    y[row + j] = __float2bfloat16(__bfloat162float(sum[row + j]) * rstd * load_as_float(w, wdt, j));
}

__global__ void rmsnorm_bwd_x8(const uint4* __restrict__ dy, const uint4* __restrict__ x, const void* __restrict__ w, int wdt,
                               const float* __restrict__ rstd_in, int64_t H, uint4* __restrict__ dx) {
  __shared__ float red[32];
  const int64_t v8 = H / 8, j = threadIdx.x;
  const float rstd = rstd_in[blockIdx.x];
  float g[8] = {0, 0, 0, 0, 0, 0, 0, 0}, xh[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  float dot = 0.f;
  if (j < v8) {
    unpack8(dy[blockIdx.x * v8 + j], g);
    unpack8(x[blockIdx.x * v8 + j], xh);
#pragma unroll
    for (int e = 0; e < 8; e++) {
      g[e] *= load_as_float(w, wdt, j * 8 + e);
      xh[e] *= rstd;
      dot += g[e] * xh[e];
    }
  }
  const float mean = block_sum(dot, red) / (float)H;
  if (j < v8) {
#pragma unroll
    for (int e = 0; e < 8; e++) g[e] = rstd * (g[e] - xh[e] * mean);
    dx[blockIdx.x * v8 + j] = pack8(g);
  }
}

bool vector_path(int64_t H, std::initializer_list<const void*> ptrs) {
  if (H % 8 != 0 || H / 8 > 1024) return false;
  for (const void* p : ptrs)
    if ((uintptr_t)p & 15) return false;
  return true;
}

unsigned threads_x8(int64_t H) { return (unsigned)((H / 8 + 31) / 32 * 32); }

unsigned threads_for_row(int64_t H) {
  int64_t t = (H + 31) / 32 * 32;
  return (unsigned)(t > 512 ? 512 : t < 32 ? 32 : t);
}

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" {

tsl_status tsl_rmsnorm_fwd(const void* d_x, const void* d_w, int32_t w_dtype, int64_t T, int64_t H, float eps, void* d_y,
                           float* d_rstd) {
  const char* op = "tsl_rmsnorm_fwd";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, is_float_dtype(w_dtype) && H > 0 && T >= 0, "weight dtype f32/bf16/f16 and H > 0 expected");
  if (T == 0) return TSL_OK;
  TSL_REQUIRE(op, T <= 0x7fffffff, "too many rows (%lld)", (long long)T);
  if (vector_path(H, {d_x, d_y})) {
    rmsnorm_fwd_x8<<<(unsigned)T, threads_x8(H), 0, compute_stream()>>>((const uint4*)d_x, d_w, w_dtype, H, eps, (uint4*)d_y, d_rstd);
    TSL_CHECK_LAUNCH(op);
    return TSL_OK;
  }
  rmsnorm_fwd_kernel<<<(unsigned)T, threads_for_row(H), 0, compute_stream()>>>(
      (const __nv_bfloat16*)d_x, d_w, w_dtype, H, eps, (__nv_bfloat16*)d_y, d_rstd);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

tsl_status tsl_add_rmsnorm_fwd(const void* d_a, const void* d_b, const void* d_w, int32_t w_dtype, int64_t T, int64_t H,
                               float eps, void* d_sum, void* d_y) {
  const char* op = "tsl_add_rmsnorm_fwd";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, is_float_dtype(w_dtype) && H > 0 && T >= 0, "weight dtype f32/bf16/f16 and H > 0 expected");
  if (T == 0) return TSL_OK;
  TSL_REQUIRE(op, T <= 0x7fffffff, "too many rows (%lld)", (long long)T);
  if (vector_path(H, {d_a, d_b, d_sum, d_y})) {
    add_rmsnorm_fwd_x8<<<(unsigned)T, threads_x8(H), 0, compute_stream()>>>((const uint4*)d_a, (const uint4*)d_b, d_w, w_dtype, H,
                                                                           eps, (uint4*)d_sum, (uint4*)d_y);
    TSL_CHECK_LAUNCH(op);
    return TSL_OK;
  }
  add_rmsnorm_fwd_kernel<<<(unsigned)T, threads_for_row(H), 0, compute_stream()>>>(
      (const __nv_bfloat16*)d_a, (const __nv_bfloat16*)d_b, d_w, w_dtype, H, eps, (__nv_bfloat16*)d_sum, (__nv_bfloat16*)d_y);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

tsl_status tsl_rmsnorm_bwd(const void* d_dy, const void* d_x, const void* d_w, int32_t w_dtype, const float* d_rstd,
                           int64_t T, int64_t H, void* d_dx) {
  const char* op = "tsl_rmsnorm_bwd";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, is_float_dtype(w_dtype) && H > 0 && T >= 0, "weight dtype f32/bf16/f16 and H > 0 expected");
  if (T == 0) return TSL_OK;
  TSL_REQUIRE(op, T <= 0x7fffffff, "too many rows (%lld)", (long long)T);
  if (vector_path(H, {d_dy, d_x, d_dx})) {
    rmsnorm_bwd_x8<<<(unsigned)T, threads_x8(H), 0, compute_stream()>>>((const uint4*)d_dy, (const uint4*)d_x, d_w, w_dtype,
                                                                       d_rstd, H, (uint4*)d_dx);
    TSL_CHECK_LAUNCH(op);
    return TSL_OK;
  }
  rmsnorm_bwd_kernel<<<(unsigned)T, threads_for_row(H), 0, compute_stream()>>>(
      (const __nv_bfloat16*)d_dy, (const __nv_bfloat16*)d_x, d_w, w_dtype, d_rstd, H, (__nv_bfloat16*)d_dx);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

}  // extern "C"
