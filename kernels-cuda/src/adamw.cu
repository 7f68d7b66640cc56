// Multi-tensor AdamW (Loshchilov & Hutter 2019) with PyTorch's exact update order, so the CUDA
// path and torch.optim.AdamW agree to f32 rounding. Up to kMaxTensors tensors per launch (their
// pointers travel in the kernel's parameter block, as in Apex's multi_tensor_apply); grid.y picks
// the tensor, grid.x strides over its elements.
#include <math.h>

#include "common.cuh"

namespace tsl {
namespace {

constexpr int kMaxTensors = 48;

struct AdamwBatch {
  float* p[kMaxTensors];
  const float* g[kMaxTensors];
  float* m[kMaxTensors];
  float* v[kMaxTensors];
  uint64_t n[kMaxTensors];
};

__global__ void adamw_kernel(AdamwBatch batch, float lr, float b1, float b2, float eps, float wd, float step_size,
                             float bc2_sqrt) {
  const int k = blockIdx.y;
  float* __restrict__ p = batch.p[k];
  const float* __restrict__ g = batch.g[k];
  float* __restrict__ m = batch.m[k];
  float* __restrict__ v = batch.v[k];
  const uint64_t n = batch.n[k];
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x) {
    const float gi = g[i];
    float pi = p[i] * (1.f - lr * wd);
    const float mi = b1 * m[i] + (1.f - b1) * gi;
    const float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    pi -= step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
  }
}

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" tsl_status tsl_adamw(float* const* d_params, const float* const* d_grads, float* const* d_m, float* const* d_v,
                                const uint64_t* sizes, int32_t count, float lr, float beta1, float beta2, float eps,
                                float weight_decay, int32_t step) {
  const char* op = "tsl_adamw";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, step >= 1, "step is 1-based, got %d", step);
  TSL_REQUIRE(op, count >= 0, "count must be >= 0");
  // Bias corrections in double on the host, as PyTorch computes them from Python floats.
  const double bc1 = 1.0 - pow((double)beta1, (double)step);
  const double bc2 = 1.0 - pow((double)beta2, (double)step);
  const float step_size = (float)(lr / bc1);
  const float bc2_sqrt = (float)sqrt(bc2);
  for (int32_t start = 0; start < count; start += kMaxTensors) {
    AdamwBatch batch;
    int k = 0;
    uint64_t max_n = 0;
    for (; k < kMaxTensors && start + k < count; k++) {
      batch.p[k] = d_params[start + k];
      batch.g[k] = d_grads[start + k];
      batch.m[k] = d_m[start + k];
      batch.v[k] = d_v[start + k];
      batch.n[k] = sizes[start + k];
      if (sizes[start + k] > max_n) max_n = sizes[start + k];
    }
    if (max_n == 0) continue;
    dim3 grid(blocks_for(max_n, 256, 4096), k);
    adamw_kernel<<<grid, 256, 0, compute_stream()>>>(batch, lr, beta1, beta2, eps, weight_decay, step_size, bc2_sqrt);
    TSL_CHECK_LAUNCH(op);
  }
  return TSL_OK;
}
