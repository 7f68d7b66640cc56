// Token embedding lookup and its gradient (scatter-add with f32 atomics: several tokens may share
// an id, and the order of their additions does not matter beyond rounding).
#include "common.cuh"

namespace tsl {
namespace {

__global__ void embedding_fwd_kernel(const void* __restrict__ table, int tdt, const int32_t* __restrict__ ids, int64_t V,
                                     int64_t H, __nv_bfloat16* __restrict__ out) {
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  const bool ok = id >= 0 && id < V;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x)
    out[t * H + j] = __float2bfloat16(ok ? load_as_float(table, tdt, (uint64_t)id * H + j) : __int_as_float(0x7fc00000));
}

__global__ void embedding_bwd_kernel(const __nv_bfloat16* __restrict__ dy, const int32_t* __restrict__ ids, int64_t V,
                                     int64_t H, float* __restrict__ dtable) {
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  if (id < 0 || id >= V) return;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) atomicAdd(&dtable[(int64_t)id * H + j], __bfloat162float(dy[t * H + j]));
}

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" {

tsl_status tsl_embedding_fwd(const void* d_table, int32_t table_dtype, const int32_t* d_ids, int64_t T, int64_t V, int64_t H,
                             void* d_out) {
  const char* op = "tsl_embedding_fwd";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, is_float_dtype(table_dtype), "table dtype must be f32/bf16/f16, got %d", table_dtype);
  TSL_REQUIRE(op, T >= 0 && T <= 0x7fffffff && H > 0 && V > 0, "bad shape T=%lld V=%lld H=%lld", (long long)T, (long long)V, (long long)H);
  if (T == 0) return TSL_OK;
  embedding_fwd_kernel<<<(unsigned)T, 256, 0, compute_stream()>>>(d_table, table_dtype, d_ids, V, H, (__nv_bfloat16*)d_out);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

tsl_status tsl_embedding_bwd(const void* d_dy, const int32_t* d_ids, int64_t T, int64_t V, int64_t H, float* d_dtable) {
  const char* op = "tsl_embedding_bwd";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, T >= 0 && T <= 0x7fffffff && H > 0 && V > 0, "bad shape T=%lld V=%lld H=%lld", (long long)T, (long long)V, (long long)H);
  if (T == 0) return TSL_OK;
  embedding_bwd_kernel<<<(unsigned)T, 256, 0, compute_stream()>>>((const __nv_bfloat16*)d_dy, d_ids, V, H, d_dtable);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

}  // extern "C"
