// Cross-entropy fused with the LM head: logits are formed chunk_tokens rows at a time into a
// reused f32 workspace, so [T, V] never exists at once (for Llama-3's 128K vocabulary and 8K
// tokens that would be 4 GiB in f32). Forward keeps only lse [T]; backward recomputes each chunk's
// logits, turns them into bf16 gradients in a second workspace and multiplies by the head.
// Training, which needs the gradient right after the loss, takes tsl_ce_lmhead_fused: each chunk's
// logits are formed once and give the loss and the gradient together (as Liger-Kernel's fused
// linear cross-entropy does), one LM-head GEMM of the three fewer.
#include <math.h>

#include "common.cuh"
#include "gemm.h"

namespace tsl {
namespace {

constexpr int kIgnoreIndex = -100;  // PyTorch's CrossEntropyLoss default, used by HF labels

__global__ void ce_rows_fwd(const float* __restrict__ logits, const int32_t* __restrict__ labels, int64_t V,
                            float* __restrict__ lse_out, double* __restrict__ loss_acc) {
  __shared__ float red[32];
  const float* row = logits + blockIdx.x * V;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, row[j]);
  m = block_max(m, red);
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) s += __expf(row[j] - m);
  s = block_sum(s, red);
  if (threadIdx.x == 0) {
    const float lse = m + logf(s);
    const int32_t y = labels[blockIdx.x];
    lse_out[blockIdx.x] = y == kIgnoreIndex ? 0.f : lse;  // the spec leaves ignored rows at 0 (CPU backend)
    if (y != kIgnoreIndex && y >= 0 && y < V) atomicAdd(loss_acc, (double)(lse - row[y]));
    else if (y != kIgnoreIndex) atomicAdd(loss_acc, (double)NAN);  // a label outside the vocabulary poisons the loss
  }
}

__global__ void ce_rows_bwd(const float* __restrict__ logits, const int32_t* __restrict__ labels,
                            const float* __restrict__ lse, int64_t V, float grad_scale, __nv_bfloat16* __restrict__ grad) {
  const float* row = logits + blockIdx.x * V;
  __nv_bfloat16* g = grad + blockIdx.x * V;
  const int32_t y = labels[blockIdx.x];
  const bool ignored = y == kIgnoreIndex;
  const float l = lse[blockIdx.x];
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    float p = ignored ? 0.f : __expf(row[j] - l) - (j == y ? 1.f : 0.f);
    g[j] = __float2bfloat16(p * grad_scale);
  }
}

__global__ void store_loss(const double* acc, float* out) { *out = (float)*acc; }

tsl_status check(const char* op, int64_t T, int64_t H, int64_t V, int64_t chunk) {
  TSL_REQUIRE(op, T >= 0 && H > 0 && V > 0, "bad shape T=%lld H=%lld V=%lld", (long long)T, (long long)H, (long long)V);
  TSL_REQUIRE(op, chunk > 0 && chunk <= 0x7fffffff, "chunk_tokens must be in 1..2^31, got %lld", (long long)chunk);
  return TSL_OK;
}

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" {

tsl_status tsl_ce_lmhead_fwd(const void* d_h, const void* d_head, const int32_t* d_labels, int64_t T, int64_t H, int64_t V,
                             int64_t chunk_tokens, float* d_loss_sum, float* d_lse) {
  const char* op = "tsl_ce_lmhead_fwd";
  TSL_TRY(ensure_init(op));
  TSL_TRY(check(op, T, H, V, chunk_tokens));
  const int64_t C = chunk_tokens < T ? chunk_tokens : (T > 0 ? T : 1);
  Scratch logits, acc;
  TSL_TRY(scratch_alloc(op, (uint64_t)C * V * 4, &logits.p));
  TSL_TRY(scratch_alloc(op, sizeof(double), &acc.p));
  TSL_CUDA(op, cudaMemsetAsync(acc.p, 0, sizeof(double), compute_stream()));
  for (int64_t t0 = 0; t0 < T; t0 += C) {
    const int64_t rows = T - t0 < C ? T - t0 : C;
    TSL_TRY(gemm(op, false, true, rows, V, H, 1.f, (const __nv_bfloat16*)d_h + t0 * H, d_head, TSL_BF16, 0.f, logits.p, TSL_F32, nullptr));
    ce_rows_fwd<<<(unsigned)rows, 512, 0, compute_stream()>>>((const float*)logits.p, d_labels + t0, V, d_lse + t0, (double*)acc.p);
    TSL_CHECK_LAUNCH(op);
  }
  store_loss<<<1, 1, 0, compute_stream()>>>((const double*)acc.p, d_loss_sum);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

tsl_status tsl_ce_lmhead_bwd(const void* d_h, const void* d_head, const int32_t* d_labels, const float* d_lse, int64_t T,
                             int64_t H, int64_t V, int64_t chunk_tokens, float grad_scale, void* d_dh) {
  const char* op = "tsl_ce_lmhead_bwd";
  TSL_TRY(ensure_init(op));
  TSL_TRY(check(op, T, H, V, chunk_tokens));
  if (T == 0) return TSL_OK;
  const int64_t C = chunk_tokens < T ? chunk_tokens : T;
  Scratch logits, grad;
  TSL_TRY(scratch_alloc(op, (uint64_t)C * V * 4, &logits.p));
  TSL_TRY(scratch_alloc(op, (uint64_t)C * V * 2, &grad.p));
  for (int64_t t0 = 0; t0 < T; t0 += C) {
    const int64_t rows = T - t0 < C ? T - t0 : C;
    TSL_TRY(gemm(op, false, true, rows, V, H, 1.f, (const __nv_bfloat16*)d_h + t0 * H, d_head, TSL_BF16, 0.f, logits.p, TSL_F32, nullptr));
    ce_rows_bwd<<<(unsigned)rows, 512, 0, compute_stream()>>>((const float*)logits.p, d_labels + t0, d_lse + t0, V, grad_scale,
                                                              (__nv_bfloat16*)grad.p);
    TSL_CHECK_LAUNCH(op);
    TSL_TRY(gemm(op, false, false, rows, H, V, 1.f, grad.p, d_head, TSL_BF16, 0.f, (__nv_bfloat16*)d_dh + t0 * H, TSL_BF16, nullptr));
  }
  return TSL_OK;
}

tsl_status tsl_ce_lmhead_fused(const void* d_h, const void* d_head, const int32_t* d_labels, int64_t T, int64_t H,
                               int64_t V, int64_t chunk_tokens, float grad_scale, float* d_loss_sum, void* d_dh) {
  const char* op = "tsl_ce_lmhead_fused";
  TSL_TRY(ensure_init(op));
  TSL_TRY(check(op, T, H, V, chunk_tokens));
  const int64_t C = chunk_tokens < T ? chunk_tokens : (T > 0 ? T : 1);
  Scratch logits, grad, lse, acc;
  TSL_TRY(scratch_alloc(op, (uint64_t)C * V * 4, &logits.p));
  TSL_TRY(scratch_alloc(op, (uint64_t)C * V * 2, &grad.p));
  TSL_TRY(scratch_alloc(op, (uint64_t)C * 4, &lse.p));
  TSL_TRY(scratch_alloc(op, sizeof(double), &acc.p));
  TSL_CUDA(op, cudaMemsetAsync(acc.p, 0, sizeof(double), compute_stream()));
  for (int64_t t0 = 0; t0 < T; t0 += C) {
    const int64_t rows = T - t0 < C ? T - t0 : C;
    TSL_TRY(gemm(op, false, true, rows, V, H, 1.f, (const __nv_bfloat16*)d_h + t0 * H, d_head, TSL_BF16, 0.f, logits.p, TSL_F32, nullptr));
    ce_rows_fwd<<<(unsigned)rows, 512, 0, compute_stream()>>>((const float*)logits.p, d_labels + t0, V, (float*)lse.p, (double*)acc.p);
    TSL_CHECK_LAUNCH(op);
    ce_rows_bwd<<<(unsigned)rows, 512, 0, compute_stream()>>>((const float*)logits.p, d_labels + t0, (const float*)lse.p, V,
                                                              grad_scale, (__nv_bfloat16*)grad.p);
    TSL_CHECK_LAUNCH(op);
    TSL_TRY(gemm(op, false, false, rows, H, V, 1.f, grad.p, d_head, TSL_BF16, 0.f, (__nv_bfloat16*)d_dh + t0 * H, TSL_BF16, nullptr));
  }
  store_loss<<<1, 1, 0, compute_stream()>>>((const double*)acc.p, d_loss_sum);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

}  // extern "C"
