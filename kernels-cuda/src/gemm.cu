// GEMM through cuBLASLt (bf16/f16 operands, f32 accumulation, bias epilogue), with descriptors and
// the heuristic's algorithm cached per shape: a training step repeats the same few dozen shapes, and
// the heuristic query costs more than a small matmul. Row-major problems are mapped onto
// cuBLASLt's column-major convention by computing Cᵀ = op(B)ᵀ·op(A)ᵀ (swap the operands, keep the
// transpose flags). Without cuBLASLt a plain tiled kernel computes the same (slowly but correctly).
#include <stdlib.h>
#include <string.h>

#include <map>
#include <mutex>
#include <tuple>

#include "cublaslt.h"
#include "gemm.h"
#include "profile.h"

namespace tsl {
namespace {

constexpr size_t kWorkspaceBytes = 32ull << 20;  // cuBLASLt's recommendation for Hopper is 32 MiB

cudaDataType_t cuda_type(int dt) { return dt == TSL_BF16 ? CUDA_R_16BF : dt == TSL_F16 ? CUDA_R_16F : CUDA_R_32F; }

uint32_t alignment_of(const void* p) {
  uintptr_t a = (uintptr_t)p;
  uint32_t al = 256;
  while (al > 1 && (a % al)) al >>= 1;
  return al;
}

// M, N, K, transposes, dtypes, bias, alignments of A, B, C, and the row strides lda, ldb, ldc.
using Key = std::tuple<int64_t, int64_t, int64_t, bool, bool, int, int, bool, uint32_t, uint32_t, uint32_t, int64_t, int64_t, int64_t>;

struct Plan {
  lt::MatmulDesc desc = nullptr;
  lt::MatrixLayout a = nullptr, b = nullptr, c = nullptr;
  lt::MatmulAlgo algo;
};

std::mutex g_mutex;
lt::Handle g_handle = nullptr;
void* g_workspace = nullptr;
std::map<Key, Plan> g_plans;

const char* lt_status(const lt::Api* api, int s) {
  return api->getStatusString ? api->getStatusString(s) : "cuBLASLt error";
}

#define LT(call)                                                                                     \
  do {                                                                                               \
    int s_ = (call);                                                                                 \
    if (s_ != 0) return fail(TSL_ERR_CUBLASLT, op, "%s failed: %s (%d)", #call, lt_status(api, s_), s_); \
  } while (0)

tsl_status make_plan(const char* op, const lt::Api* api, const Key& key, bool ta, bool tb, int64_t M, int64_t N,
                     int64_t K, int64_t lda, int64_t ldb, int64_t ldc, int abdt, int cdt, bool bias, uint32_t ala,
                     uint32_t alb, uint32_t alc, Plan* out) {
  Plan p;
  LT(api->matmulDescCreate(&p.desc, lt::COMPUTE_32F, CUDA_R_32F));
  // cuBLASLt's "A" is our B and its "B" is our A (the column-major view of the transposed product).
  int opa = tb ? lt::OP_T : lt::OP_N, opb = ta ? lt::OP_T : lt::OP_N;
  LT(api->matmulDescSetAttribute(p.desc, lt::DESC_TRANSA, &opa, sizeof opa));
  LT(api->matmulDescSetAttribute(p.desc, lt::DESC_TRANSB, &opb, sizeof opb));
  uint32_t epi = bias ? lt::EPILOGUE_BIAS : lt::EPILOGUE_DEFAULT;
  LT(api->matmulDescSetAttribute(p.desc, lt::DESC_EPILOGUE, &epi, sizeof epi));
  LT(api->matrixLayoutCreate(&p.a, cuda_type(abdt), tb ? K : N, tb ? N : K, ldb));
  LT(api->matrixLayoutCreate(&p.b, cuda_type(abdt), ta ? M : K, ta ? K : M, lda));
  LT(api->matrixLayoutCreate(&p.c, cuda_type(cdt), N, M, ldc));
  lt::Preference pref;
  LT(api->preferenceCreate(&pref));
  uint64_t ws = kWorkspaceBytes;
  api->preferenceSetAttribute(pref, lt::PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  api->preferenceSetAttribute(pref, 5, &alb, sizeof alb);  // MIN_ALIGNMENT_A_BYTES (its A = our B)
  api->preferenceSetAttribute(pref, 6, &ala, sizeof ala);  // MIN_ALIGNMENT_B_BYTES
  api->preferenceSetAttribute(pref, 7, &alc, sizeof alc);  // C
  api->preferenceSetAttribute(pref, 8, &alc, sizeof alc);  // D
  lt::HeuristicResult res[1];
  int found = 0;
  int s = api->algoGetHeuristic(g_handle, p.desc, p.a, p.b, p.c, p.c, pref, 1, res, &found);
  api->preferenceDestroy(pref);
  if (s != 0 || found == 0)
    return fail(TSL_ERR_CUBLASLT, op, "cuBLASLt has no algorithm for M=%lld N=%lld K=%lld (%s)", (long long)M,
                (long long)N, (long long)K, s ? lt_status(api, s) : "none returned");
  p.algo = res[0].algo;
  g_plans[key] = p;
  *out = p;
  return TSL_OK;
}

// The fallback: 16×16 tiles in shared memory, dtype read per element, f32 accumulation.
__global__ void gemm_fallback_kernel(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
                                     int64_t lda, const void* B, int64_t ldb, int abdt, float beta, void* C, int64_t ldc,
                                     int cdt, const void* bias) {
  __shared__ float As[16][17], Bs[16][17];
  const int64_t row = blockIdx.y * 16 + threadIdx.y, col = blockIdx.x * 16 + threadIdx.x;
  float acc = 0.f;
  for (int64_t k0 = 0; k0 < K; k0 += 16) {
    int64_t ka = k0 + threadIdx.x, kb = k0 + threadIdx.y;
    As[threadIdx.y][threadIdx.x] =
        (row < M && ka < K) ? load_as_float(A, abdt, ta ? (uint64_t)ka * lda + row : (uint64_t)row * lda + ka) : 0.f;
    Bs[threadIdx.y][threadIdx.x] =
        (col < N && kb < K) ? load_as_float(B, abdt, tb ? (uint64_t)col * ldb + kb : (uint64_t)kb * ldb + col) : 0.f;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < 16; kk++) acc += As[threadIdx.y][kk] * Bs[kk][threadIdx.x];
    __syncthreads();
  }
  if (row < M && col < N) {
    uint64_t i = (uint64_t)row * ldc + col;
    float v = alpha * acc + (beta != 0.f ? beta * load_as_float(C, cdt, i) : 0.f);
    if (bias) v += load_as_float(bias, cdt, col);
    store_from_float(C, cdt, i, v);
  }
}

bool fallback_forced() {
  const char* e = getenv("TSLOTH_GEMM");
  return e && strcmp(e, "fallback") == 0;
}

}  // namespace

tsl_status gemm(const char* op, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
                const void* B, int abdt, float beta, void* C, int cdt, const void* bias) {
  return gemm_ld(op, ta, tb, M, N, K, alpha, A, ta ? M : K, B, tb ? K : N, abdt, beta, C, N, cdt, bias);
}

tsl_status gemm_ld(const char* op, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
                   int64_t lda, const void* B, int64_t ldb, int abdt, float beta, void* C, int64_t ldc, int cdt,
                   const void* bias) {
  TSL_REQUIRE(op, is_float_dtype(abdt) && is_float_dtype(cdt), "GEMM dtypes must be f32/bf16/f16");
  TSL_REQUIRE(op, M >= 0 && N >= 0 && K >= 0, "negative GEMM size");
  TSL_REQUIRE(op, lda >= (ta ? M : K) && ldb >= (tb ? K : N) && ldc >= N,
              "GEMM row strides lda=%lld ldb=%lld ldc=%lld shorter than the rows (%lld, %lld, %lld)", (long long)lda,
              (long long)ldb, (long long)ldc, (long long)(ta ? M : K), (long long)(tb ? K : N), (long long)N);
  if (M == 0 || N == 0) return TSL_OK;
  const char* why = nullptr;
  const lt::Api* api = fallback_forced() ? nullptr : lt::api(&why);
  if (!api || K == 0) {
    if (K == 0 && beta == 1.f && !bias && alpha != 0.f) return TSL_OK;
    dim3 grid((unsigned)((N + 15) / 16), (unsigned)((M + 15) / 16));
    TSL_REQUIRE(op, grid.y <= 65535, "M too large for the fallback GEMM (%lld)", (long long)M);
    gemm_fallback_kernel<<<grid, dim3(16, 16), 0, compute_stream()>>>(ta, tb, M, N, K, alpha, A, lda, B, ldb, abdt, beta, C,
                                                                      ldc, cdt, bias);
    TSL_CHECK_LAUNCH(op);
    return TSL_OK;
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_handle) {
    LT(api->create(&g_handle));
    TSL_TRY(scratch_alloc(op, kWorkspaceBytes, &g_workspace));
  }
  uint32_t ala = alignment_of(A), alb = alignment_of(B), alc = alignment_of(C);
  Key key{M, N, K, ta, tb, abdt, cdt, bias != nullptr, ala, alb, alc, lda, ldb, ldc};
  Plan plan;
  auto it = g_plans.find(key);
  if (it != g_plans.end()) plan = it->second;
  else TSL_TRY(make_plan(op, api, key, ta, tb, M, N, K, lda, ldb, ldc, abdt, cdt, bias != nullptr, ala, alb, alc, &plan));
  if (bias) LT(api->matmulDescSetAttribute(plan.desc, lt::DESC_BIAS_POINTER, &bias, sizeof bias));
  LT(api->matmul(g_handle, plan.desc, &alpha, B, plan.a, A, plan.b, &beta, C, plan.c, C, plan.c, &plan.algo, g_workspace,
                 kWorkspaceBytes, compute_stream()));
  if (profile_enabled()) {  // the device-time profile names each GEMM by its shape
    char label[96];
    snprintf(label, sizeof label, "gemm %lldx%lldx%lld%s", (long long)M, (long long)N, (long long)K, beta != 0.f ? " acc" : "");
    TSL_TRY(profile_mark(label));
  }
  return TSL_OK;
}

}  // namespace tsl

using namespace tsl;

extern "C" {

tsl_status tsl_gemm_available(void) {
  TSL_TRY(ensure_init("tsl_gemm_available"));
  const char* why = nullptr;
  if (!lt::api(&why)) return fail(TSL_ERR_CUBLASLT, "tsl_gemm_available", "%s", why);
  return TSL_OK;
}

tsl_status tsl_gemm(int32_t trans_a, int32_t trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void* d_a,
                    const void* d_b, int32_t ab_dtype, float beta, void* d_c, int32_t c_dtype, const void* d_bias) {
  TSL_TRY(ensure_init("tsl_gemm"));
  return gemm("tsl_gemm", trans_a != 0, trans_b != 0, M, N, K, alpha, d_a, d_b, ab_dtype, beta, d_c, c_dtype, d_bias);
}

}  // extern "C"
