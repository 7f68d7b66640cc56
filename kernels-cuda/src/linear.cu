// Linear layer with a frozen base weight and a LoRA adapter (Hu et al. 2021):
//   y = x·Wᵀ (+ bias) + s·(x·aᵀ)·bᵀ
// The base W arrives dense bf16 (tsl_nf4_dequantize fills a reused workspace once per layer pass,
// DESIGN.md); the adapters are f32 masters, cast to bf16 copies for the tensor-core GEMMs, and the
// adapter gradients are written in f32 straight from the GEMM epilogue (beta = 1 accumulates).
// The rank-r updates of y and dx take lora_up_acc where it applies (lora_lowrank.cu).
#include "common.cuh"
#include "gemm.h"
#include "lora_lowrank.h"

namespace tsl {
namespace {

__global__ void add_bias_rows(__nv_bfloat16* y, const void* bias, int bdt, int64_t rows, int64_t cols) {
  const uint64_t n = (uint64_t)rows * cols;
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x)
    y[i] = __float2bfloat16(__bfloat162float(y[i]) + load_as_float(bias, bdt, i % cols));
}

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" {

tsl_status tsl_linear_fwd(const void* d_x, const void* d_w, const void* d_bias, int32_t bias_dtype, const float* d_a,
                          const float* d_b, float scale, int64_t T, int64_t in_f, int64_t out_f, int32_t r, void* d_y) {
  const char* op = "tsl_linear_fwd";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, T >= 0 && in_f > 0 && out_f > 0, "bad shape T=%lld in=%lld out=%lld", (long long)T, (long long)in_f, (long long)out_f);
  TSL_REQUIRE(op, !d_a == !d_b && (!d_a || r > 0), "LoRA needs both a and b and r > 0");
  TSL_REQUIRE(op, !d_bias || is_float_dtype(bias_dtype), "bias dtype must be f32/bf16/f16");
  if (T == 0) return TSL_OK;
  const bool epilogue_bias = d_bias && bias_dtype == TSL_BF16;
  TSL_TRY(gemm(op, false, true, T, out_f, in_f, 1.f, d_x, d_w, TSL_BF16, 0.f, d_y, TSL_BF16, epilogue_bias ? d_bias : nullptr));
  if (d_bias && !epilogue_bias) {
    add_bias_rows<<<blocks_for((uint64_t)T * out_f, 256), 256, 0, compute_stream()>>>((__nv_bfloat16*)d_y, d_bias, bias_dtype, T, out_f);
    TSL_CHECK_LAUNCH(op);
  }
  if (!d_a) return TSL_OK;
  Scratch a16, b16, xa;
  TSL_TRY(lora_cast_bf16(op, d_a, r, in_f, false, &a16));
  TSL_TRY(lora_cast_bf16(op, d_b, out_f, r, false, &b16));
  TSL_TRY(scratch_alloc(op, (uint64_t)T * r * 2, &xa.p));
  TSL_TRY(gemm(op, false, true, T, r, in_f, 1.f, d_x, a16.p, TSL_BF16, 0.f, xa.p, TSL_BF16, nullptr));
  if (lora_up_acc_applies(T, out_f, r)) return lora_up_acc(op, d_y, T, out_f, xa.p, r, false, b16.p, r, scale);
  TSL_TRY(gemm(op, false, true, T, out_f, r, scale, xa.p, b16.p, TSL_BF16, 1.f, d_y, TSL_BF16, nullptr));
  return TSL_OK;
}

tsl_status tsl_linear_bwd(const void* d_dy, const void* d_x, const void* d_w, const float* d_a, const float* d_b,
                          float scale, int64_t T, int64_t in_f, int64_t out_f, int32_t r, void* d_dx, float* d_da,
                          float* d_db) {
  const char* op = "tsl_linear_bwd";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, T >= 0 && in_f > 0 && out_f > 0, "bad shape T=%lld in=%lld out=%lld", (long long)T, (long long)in_f, (long long)out_f);
  TSL_REQUIRE(op, !d_a == !d_b && (!d_a || r > 0), "LoRA needs both a and b and r > 0");
  if (T == 0) return TSL_OK;
  if (d_dx) TSL_TRY(gemm(op, false, false, T, in_f, out_f, 1.f, d_dy, d_w, TSL_BF16, 0.f, d_dx, TSL_BF16, nullptr));
  if (!d_a) return TSL_OK;
  Scratch a16, b16, xa, g;
  TSL_TRY(lora_cast_bf16(op, d_a, r, in_f, false, &a16));
  TSL_TRY(lora_cast_bf16(op, d_b, out_f, r, false, &b16));
  TSL_TRY(scratch_alloc(op, (uint64_t)T * r * 2, &xa.p));
  TSL_TRY(scratch_alloc(op, (uint64_t)T * r * 2, &g.p));
  // xa = x·aᵀ [T,r];  g = dy·b [T,r]
  TSL_TRY(gemm(op, false, true, T, r, in_f, 1.f, d_x, a16.p, TSL_BF16, 0.f, xa.p, TSL_BF16, nullptr));
  TSL_TRY(gemm(op, false, false, T, r, out_f, 1.f, d_dy, b16.p, TSL_BF16, 0.f, g.p, TSL_BF16, nullptr));
  // db += s·dyᵀ·xa [out,r];  da += s·gᵀ·x [r,in]  (either may be null: frozen adapter, dx only)
  if (d_db) TSL_TRY(gemm(op, true, false, out_f, r, T, scale, d_dy, xa.p, TSL_BF16, 1.f, d_db, TSL_F32, nullptr));
  if (d_da) TSL_TRY(gemm(op, true, false, r, in_f, T, scale, g.p, d_x, TSL_BF16, 1.f, d_da, TSL_F32, nullptr));
  // dx += s·g·a
  if (d_dx && lora_up_acc_applies(T, in_f, r)) {
    Scratch at;  // aᵀ [in, r], the update kernel's f
    TSL_TRY(lora_cast_bf16(op, d_a, r, in_f, true, &at));
    return lora_up_acc(op, d_dx, T, in_f, g.p, r, false, at.p, r, scale);
  }
  if (d_dx) TSL_TRY(gemm(op, false, false, T, in_f, r, scale, g.p, a16.p, TSL_BF16, 1.f, d_dx, TSL_BF16, nullptr));
  return TSL_OK;
}

}  // extern "C"
