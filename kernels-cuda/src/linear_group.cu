// Grouped LoRA linears for training: a layer's q/k/v (or gate/up) projections share their input x,
// so the group's LoRA down-projections run as ONE GEMM (x read once, not once per projection), and
// in backward the adapters' dA and the LoRA share of dx run as one GEMM each for the whole group
// (K = Σr). The host orchestrates around the per-weight NF4 dequantize, so only one base weight sits
// in the workspace at a time and peak VRAM does not grow:
//   forward:  tsl_lora_down_group (xa), then per matrix tsl_linear_fwd_xa;
//   backward: tsl_lora_down_group (xa, for dB), per matrix tsl_linear_bwd_xa (dx (+)= dy·W, its
//             columns of g, dB), then tsl_lora_up_group_bwd (dA_i += its rows of gᵀ·x, dx += g·A_all).
// The group's xa and g are [T, Σr] with adapter i's columns at col0_i = Σ_{j<i} r_j: the per-matrix
// calls read and write their block of columns in place through the GEMM's row stride (gemm_ld), in
// the same layouts as tsl_linear_fwd / tsl_linear_bwd use for one adapter.
#include "common.cuh"
#include "gemm.h"
#include "lora_lowrank.h"

namespace tsl {
namespace {

// q, k, v is the largest group a Llama layer has; a few more leaves room without a heap array.
constexpr int kMaxGroup = 8;

// Row blocks of several f32 matrices stacked: block i is rows [row0[i], row0[i+1]) of the stack.
struct Stack {
  const float* src[kMaxGroup];
  float* dst[kMaxGroup];
  int64_t row0[kMaxGroup + 1];
  int count;
};

__device__ __forceinline__ int block_of(const Stack& s, int64_t row) {
  int i = 0;
  while (i + 1 < s.count && row >= s.row0[i + 1]) i++;
  return i;
}

// out bf16 [Σr, cols] = the blocks src_i f32 [r_i, cols] one under the other.
__global__ void stack_to_bf16(Stack s, int64_t cols, __nv_bfloat16* out) {
  const uint64_t n = (uint64_t)s.row0[s.count] * cols;
  for (uint64_t e = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; e < n; e += (uint64_t)gridDim.x * blockDim.x) {
    const int64_t row = (int64_t)(e / cols), col = (int64_t)(e % cols);
    const int i = block_of(s, row);
    out[e] = __float2bfloat16(s.src[i][(uint64_t)(row - s.row0[i]) * cols + col]);
  }
}

// dst_i f32 [r_i, cols] += block i of src f32 [Σr, cols]; blocks whose dst is null are skipped.
__global__ void scatter_add_rows(Stack s, int64_t cols, const float* src) {
  const uint64_t n = (uint64_t)s.row0[s.count] * cols;
  for (uint64_t e = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; e < n; e += (uint64_t)gridDim.x * blockDim.x) {
    const int64_t row = (int64_t)(e / cols), col = (int64_t)(e % cols);
    const int i = block_of(s, row);
    if (s.dst[i]) s.dst[i][(uint64_t)(row - s.row0[i]) * cols + col] += src[e];
  }
}

// The adapters of a group from the host arrays: a_i f32 [r_i, in] (and dA_i, 0 = frozen).
tsl_status make_stack(const char* op, int32_t count, const uint64_t* h_a, const int32_t* h_r, const uint64_t* h_da, Stack* s) {
  TSL_REQUIRE(op, count >= 1 && count <= kMaxGroup, "a group holds 1..%d adapters, found %d", kMaxGroup, count);
  TSL_REQUIRE(op, h_a && h_r, "h_a and h_r (host arrays of count entries) are required");
  s->count = count;
  s->row0[0] = 0;
  for (int i = 0; i < count; i++) {
    TSL_REQUIRE(op, h_a[i] != 0 && h_r[i] > 0, "adapter %d needs a device pointer a and r > 0, found a=%s r=%d", i,
                h_a[i] ? "set" : "null", h_r[i]);
    s->src[i] = reinterpret_cast<const float*>(h_a[i]);
    s->dst[i] = h_da ? reinterpret_cast<float*>(h_da[i]) : nullptr;
    s->row0[i + 1] = s->row0[i] + h_r[i];
  }
  for (int i = count; i < kMaxGroup; i++) {
    s->src[i] = nullptr;
    s->dst[i] = nullptr;
    s->row0[i + 1] = s->row0[count];
  }
  return TSL_OK;
}

// bf16 copy of the stacked blocks ([Σr, cols]) in op scratch (the adapters are f32 masters).
tsl_status stacked_bf16(const char* op, const Stack& s, int64_t cols, Scratch* out) {
  const uint64_t n = (uint64_t)s.row0[s.count] * cols;
  TSL_TRY(scratch_alloc(op, n * 2, &out->p));
  stack_to_bf16<<<blocks_for(n, 256), 256, 0, compute_stream()>>>(s, cols, (__nv_bfloat16*)out->p);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" {

tsl_status tsl_lora_down_group(int32_t count, const uint64_t* h_a, const int32_t* h_r, const void* d_x, int64_t T,
                               int64_t in_f, void* d_xa) {
  const char* op = "tsl_lora_down_group";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, T >= 0 && in_f > 0, "bad shape T=%lld in=%lld", (long long)T, (long long)in_f);
  TSL_REQUIRE(op, d_x && d_xa, "x and xa are required");
  Stack s;
  TSL_TRY(make_stack(op, count, h_a, h_r, nullptr, &s));
  if (T == 0) return TSL_OK;
  Scratch a16;
  TSL_TRY(stacked_bf16(op, s, in_f, &a16));
  // xa [T, Σr] = x · A_allᵀ: one pass over x for the whole group.
  return gemm(op, false, true, T, s.row0[count], in_f, 1.f, d_x, a16.p, TSL_BF16, 0.f, d_xa, TSL_BF16, nullptr);
}

tsl_status tsl_linear_fwd_xa(const void* d_x, const void* d_w, const void* d_bias, int32_t bias_dtype, const void* d_xa,
                             int64_t ld_xa, const float* d_b, float scale, int64_t T, int64_t in_f, int64_t out_f, int32_t r,
                             void* d_y) {
  const char* op = "tsl_linear_fwd_xa";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, T >= 0 && in_f > 0 && out_f > 0, "bad shape T=%lld in=%lld out=%lld", (long long)T, (long long)in_f, (long long)out_f);
  TSL_REQUIRE(op, d_x && d_w && d_y, "x, w and y are required");
  TSL_REQUIRE(op, !d_xa == !d_b && (!d_b || (r > 0 && ld_xa >= r)), "LoRA needs both xa and b, r > 0 and ld_xa >= r (r=%d ld_xa=%lld)",
              r, (long long)ld_xa);
  TSL_REQUIRE(op, !d_bias || is_float_dtype(bias_dtype), "bias dtype must be f32/bf16/f16, found %d", bias_dtype);
  if (T == 0) return TSL_OK;
  // The base and bias exactly as the single linear computes them.
  TSL_TRY(tsl_linear_fwd(d_x, d_w, d_bias, bias_dtype, nullptr, nullptr, 0.f, T, in_f, out_f, 0, d_y));
  if (!d_b) return TSL_OK;
  Scratch b16;
  TSL_TRY(lora_cast_bf16(op, d_b, out_f, r, false, &b16));
  // y += s · xa · bᵀ, xa read in place from the group's [T, Σr] (row stride ld_xa).
  if (lora_up_acc_applies(T, out_f, r)) return lora_up_acc(op, d_y, T, out_f, d_xa, ld_xa, false, b16.p, r, scale);
  return gemm_ld(op, false, true, T, out_f, r, scale, d_xa, ld_xa, b16.p, r, TSL_BF16, 1.f, d_y, out_f, TSL_BF16, nullptr);
}

tsl_status tsl_linear_bwd_xa(const void* d_dy, const void* d_w, const float* d_b, float scale, int64_t T, int64_t in_f,
                             int64_t out_f, int32_t r, const void* d_xa, int64_t ld, float dx_beta, void* d_dx, void* d_g,
                             float* d_db) {
  const char* op = "tsl_linear_bwd_xa";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, T >= 0 && in_f > 0 && out_f > 0, "bad shape T=%lld in=%lld out=%lld", (long long)T, (long long)in_f, (long long)out_f);
  TSL_REQUIRE(op, d_dy, "dy is required");
  TSL_REQUIRE(op, !d_dx || d_w, "dx needs the base weight w");
  TSL_REQUIRE(op, !(d_g || d_db) || (d_b && r > 0 && ld >= r), "g and db need the adapter's b, r > 0 and ld >= r (r=%d ld=%lld)", r,
              (long long)ld);
  TSL_REQUIRE(op, !d_db || d_xa, "db needs xa (tsl_lora_down_group)");
  TSL_REQUIRE(op, dx_beta == 0.f || dx_beta == 1.f, "dx_beta must be 0 (write dx) or 1 (add to dx), found %g", (double)dx_beta);
  if (T == 0) return TSL_OK;
  // dx (+)= dy · W: the group's projections add into one dx in the GEMM epilogue.
  if (d_dx) TSL_TRY(gemm(op, false, false, T, in_f, out_f, 1.f, d_dy, d_w, TSL_BF16, dx_beta, d_dx, TSL_BF16, nullptr));
  // g [T, r] = s · dy · b: this adapter's columns of the group's g (row stride ld), scale folded in.
  if (d_g) {
    Scratch b16;
    TSL_TRY(lora_cast_bf16(op, d_b, out_f, r, false, &b16));
    TSL_TRY(gemm_ld(op, false, false, T, r, out_f, scale, d_dy, out_f, b16.p, r, TSL_BF16, 0.f, d_g, ld, TSL_BF16, nullptr));
  }
  // dB [out, r] += s · dyᵀ · xa, xa read in place (row stride ld).
  if (d_db) TSL_TRY(gemm_ld(op, true, false, out_f, r, T, scale, d_dy, out_f, d_xa, ld, TSL_BF16, 1.f, d_db, r, TSL_F32, nullptr));
  return TSL_OK;
}

tsl_status tsl_lora_up_group_bwd(int32_t count, const uint64_t* h_a, const int32_t* h_r, const uint64_t* h_da,
                                 const void* d_x, const void* d_g, int64_t T, int64_t in_f, void* d_dx) {
  const char* op = "tsl_lora_up_group_bwd";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, T >= 0 && in_f > 0, "bad shape T=%lld in=%lld", (long long)T, (long long)in_f);
  TSL_REQUIRE(op, d_g, "g is required");
  Stack s;
  TSL_TRY(make_stack(op, count, h_a, h_r, h_da, &s));
  bool any_da = false;
  for (int i = 0; i < count; i++) any_da = any_da || s.dst[i];
  TSL_REQUIRE(op, d_x || !any_da, "dA needs x");
  if (T == 0) return TSL_OK;
  const int64_t sum_r = s.row0[count];
  if (any_da && count == 1) {
    // dA [r, in] += gᵀ · x straight from the GEMM epilogue.
    TSL_TRY(gemm(op, true, false, sum_r, in_f, T, 1.f, d_g, d_x, TSL_BF16, 1.f, s.dst[0], TSL_F32, nullptr));
  } else if (any_da) {
    // dA_all [Σr, in] = gᵀ · x in one GEMM (one pass over x), then each adapter's rows into its dA.
    Scratch da_all;
    TSL_TRY(scratch_alloc(op, (uint64_t)sum_r * in_f * 4, &da_all.p));
    TSL_TRY(gemm(op, true, false, sum_r, in_f, T, 1.f, d_g, d_x, TSL_BF16, 0.f, da_all.p, TSL_F32, nullptr));
    const uint64_t n = (uint64_t)sum_r * in_f;
    scatter_add_rows<<<blocks_for(n, 256), 256, 0, compute_stream()>>>(s, in_f, (const float*)da_all.p);
    TSL_CHECK_LAUNCH(op);
  }
  if (!d_dx) return TSL_OK;
  // dx [T, in] += g · A_all (K = Σr): the LoRA share of every projection in one read+write of dx.
  if (count == 1 && lora_up_acc_applies(T, in_f, (int)sum_r)) {
    Scratch at;  // A_allᵀ [in, r], the update kernel's f
    TSL_TRY(lora_cast_bf16(op, s.src[0], sum_r, in_f, true, &at));
    return lora_up_acc(op, d_dx, T, in_f, d_g, sum_r, false, at.p, (int)sum_r, 1.f);
  }
  Scratch a16;
  TSL_TRY(stacked_bf16(op, s, in_f, &a16));
  return gemm(op, false, false, T, in_f, sum_r, 1.f, d_g, a16.p, TSL_BF16, 1.f, d_dx, TSL_BF16, nullptr);
}

}  // extern "C"
