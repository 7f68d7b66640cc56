// Causal GQA attention backward on the tensor cores (WMMA bf16, f32 accumulation), the
// FlashAttention-2 split (Dao 2023) without atomics:
//   dQ kernel:    a block of 4 warps owns 64 query rows (16 per warp) and streams key tiles;
//                 S = Q·Kᵀ, P = exp(S·scale − lse), dP = dO·Vᵀ, dS = P ⊙ (dP − Δ), dQ += dS·K.
//   dK/dV kernel: a block owns 64 keys (16 per warp) and streams 32-query tiles of every query
//                 head of its kv group; Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ, dV += Pᵀ·dO, dK += dSᵀ·Q.
// Accumulators stay in WMMA fragments for the whole loop (their only scaling is the uniform
// softmax scale); scores pass through per-warp shared tiles where two lanes share a row.
#include <math.h>
#include <mma.h>

#include "attention.cuh"

namespace tsl {
namespace {

using namespace nvcuda;
using namespace attn;

constexpr int kWarps = 4;
using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major>;
using FragBc = wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major>;
using FragBr = wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// C[16 × N] (f32, row-major in shared memory) = A[16 × K] · Bᵀ where B is [N × K] row-major in
// shared memory (read as col_major). A is either preloaded fragments or 16 rows in shared memory.
template <int N, int K>
__device__ __forceinline__ void mm_abt(const FragA* a, const __nv_bfloat16* b, int ldb, float* c, int ldc) {
#pragma unroll
  for (int n = 0; n < N / 16; n++) {
    FragC acc;
    wmma::fill_fragment(acc, 0.f);
#pragma unroll
    for (int kk = 0; kk < K / 16; kk++) {
      FragBc bf;
      wmma::load_matrix_sync(bf, b + n * 16 * ldb + kk * 16, ldb);
      wmma::mma_sync(acc, a[kk], bf, acc);
    }
    wmma::store_matrix_sync(c + n * 16, acc, ldc, wmma::mem_row_major);
  }
}

template <int N, int K>
__device__ __forceinline__ void mm_abt(const __nv_bfloat16* a, int lda, const __nv_bfloat16* b, int ldb, float* c, int ldc) {
#pragma unroll
  for (int n = 0; n < N / 16; n++) {
    FragC acc;
    wmma::fill_fragment(acc, 0.f);
#pragma unroll
    for (int kk = 0; kk < K / 16; kk++) {
      FragA af;
      FragBc bf;
      wmma::load_matrix_sync(af, a + kk * 16, lda);
      wmma::load_matrix_sync(bf, b + n * 16 * ldb + kk * 16, ldb);
      wmma::mma_sync(acc, af, bf, acc);
    }
    wmma::store_matrix_sync(c + n * 16, acc, ldc, wmma::mem_row_major);
  }
}

// acc[16 × D] += A[16 × K] (bf16 shared, lda) · B[K × D] (bf16 shared, row-major, ldb)
template <int D, int K>
__device__ __forceinline__ void mm_acc(FragC* acc, const __nv_bfloat16* a, int lda, const __nv_bfloat16* b, int ldb) {
#pragma unroll
  for (int kk = 0; kk < K / 16; kk++) {
    FragA af;
    wmma::load_matrix_sync(af, a + kk * 16, lda);
#pragma unroll
    for (int n = 0; n < D / 16; n++) {
      FragBr bf;
      wmma::load_matrix_sync(bf, b + kk * 16 * ldb + n * 16, ldb);
      wmma::mma_sync(acc[n], af, bf, acc[n]);
    }
  }
}

// Writes a warp's 16 × D accumulator rows (scaled) as bf16 to packed rows, staging through `stage`.
template <int D>
__device__ __forceinline__ void store_rows(FragC* acc, float scale, float* stage, __nv_bfloat16* out, int64_t tok0,
                                           int valid, int64_t stride, int head, int lane) {
  constexpr int ld = D + 4;
#pragma unroll
  for (int n = 0; n < D / 16; n++) {
#pragma unroll
    for (int i = 0; i < acc[n].num_elements; i++) acc[n].x[i] *= scale;
    wmma::store_matrix_sync(stage + n * 16, acc[n], ld, wmma::mem_row_major);
  }
  __syncwarp();
  const int r = lane >> 1, half = lane & 1;
  if (r < valid) {
    __nv_bfloat16* dst = out + (tok0 + r) * stride + (int64_t)head * D;
    for (int c = half * (D / 2); c < half * (D / 2) + D / 2; c += 2)
      *reinterpret_cast<__nv_bfloat162*>(dst + c) = __floats2bfloat162_rn(stage[r * ld + c], stage[r * ld + c + 1]);
  }
}

// ---- dQ -------------------------------------------------------------------------------------
constexpr int kQ = 64, kK = 64, kLdS = kK + 4, kLdP = kK + 8;

template <int D>
struct DqSmem {
  static constexpr size_t k = 0, v = k + (size_t)kK * kRow<D> * 2, s = v + (size_t)kK * kRow<D> * 2;
  static constexpr size_t dp = s + (size_t)kWarps * 16 * kLdS * 4, ds = dp + (size_t)kWarps * 16 * kLdS * 4;
  static constexpr size_t bytes = ds + (size_t)kWarps * 16 * kLdP * 2;
  static_assert(2 * kWarps * 16 * kLdS * 4 >= kWarps * 16 * (D + 4) * 4, "dQ staging must fit in S and dP");
};

template <int D>
__global__ void __launch_bounds__(kWarps * 32) attention_dq_tc_kernel(
    const __nv_bfloat16* __restrict__ dO, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse, const float* __restrict__ delta,
    const int32_t* __restrict__ cu, int64_t T, int Hq, int Hkv, float scale, __nv_bfloat16* __restrict__ dq) {
  using S = DqSmem<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(smem + S::k);
  __nv_bfloat16* Vs = reinterpret_cast<__nv_bfloat16*>(smem + S::v);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* Sw = reinterpret_cast<float*>(smem + S::s) + warp * 16 * kLdS;
  float* dPw = reinterpret_cast<float*>(smem + S::dp) + warp * 16 * kLdS;
  __nv_bfloat16* dSw = reinterpret_cast<__nv_bfloat16*>(smem + S::ds) + warp * 16 * kLdP;

  const int seq = blockIdx.z, h = blockIdx.y, kvh = h / (Hq / Hkv);
  const int64_t start = cu[seq];
  const int len = cu[seq + 1] - (int)start;
  const int q0 = blockIdx.x * kQ;
  if (q0 >= len) return;
  const int r = lane >> 1, half = lane & 1, qi = q0 + warp * 16 + r;
  const bool row_ok = qi < len;
  const float row_lse = row_ok ? lse[(int64_t)h * T + start + qi] : 0.f;
  const float row_delta = row_ok ? delta[(int64_t)h * T + start + qi] : 0.f;

  FragA qf[D / 16], dof[D / 16];
  load_tile<D>(Ks, q, start + q0, len - q0, kQ, (int64_t)Hq * D, h);
  load_tile<D>(Vs, dO, start + q0, len - q0, kQ, (int64_t)Hq * D, h);
  __syncthreads();
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
    wmma::load_matrix_sync(qf[kk], Ks + warp * 16 * kRow<D> + kk * 16, kRow<D>);
    wmma::load_matrix_sync(dof[kk], Vs + warp * 16 * kRow<D> + kk * 16, kRow<D>);
  }
  FragC acc[D / 16];
#pragma unroll
  for (int n = 0; n < D / 16; n++) wmma::fill_fragment(acc[n], 0.f);

  const int k_end = min(len, q0 + kQ);
  for (int k0 = 0; k0 < k_end; k0 += kK) {
    __syncthreads();
    load_tile<D>(Ks, k, start + k0, len - k0, kK, (int64_t)Hkv * D, kvh);
    load_tile<D>(Vs, v, start + k0, len - k0, kK, (int64_t)Hkv * D, kvh);
    __syncthreads();
    mm_abt<kK, D>(qf, Ks, kRow<D>, Sw, kLdS);
    mm_abt<kK, D>(dof, Vs, kRow<D>, dPw, kLdS);
    __syncwarp();
    for (int c = half * 32; c < half * 32 + 32; c++) {
      const int kj = k0 + c;
      float ds = 0.f;
      if (row_ok && kj <= qi) ds = __expf(Sw[r * kLdS + c] * scale - row_lse) * (dPw[r * kLdS + c] - row_delta);
      dSw[r * kLdP + c] = __float2bfloat16(ds);
    }
    __syncwarp();
    mm_acc<D, kK>(acc, dSw, kLdP, Ks, kRow<D>);
  }
  __syncthreads();  // the S/dP region becomes the output staging
  float* stage = reinterpret_cast<float*>(smem + S::s) + warp * 16 * (D + 4);
  store_rows<D>(acc, scale, stage, dq, start + q0 + warp * 16, len - (q0 + warp * 16), (int64_t)Hq * D, h, lane);
}

// ---- dK, dV ------------------------------------------------------------------------------------
constexpr int kKB = 64, kQB = 32, kLdS2 = kQB + 4, kLdP2 = kQB + 8;

template <int D>
struct DkvSmem {
  static constexpr size_t k = 0, v = k + (size_t)kKB * kRow<D> * 2, q = v + (size_t)kKB * kRow<D> * 2;
  static constexpr size_t dO = q + (size_t)kQB * kRow<D> * 2, s = dO + (size_t)kQB * kRow<D> * 2;
  static constexpr size_t dp = s + (size_t)kWarps * 16 * kLdS2 * 4, p = dp + (size_t)kWarps * 16 * kLdS2 * 4;
  static constexpr size_t ds = p + (size_t)kWarps * 16 * kLdP2 * 2, stats = ds + (size_t)kWarps * 16 * kLdP2 * 2;
  static constexpr size_t bytes = stats + 2 * kQB * 4;
  static_assert(stats - q >= (size_t)kWarps * 16 * (D + 4) * 4, "dK/dV staging must fit from Q on");
};

template <int D>
__global__ void __launch_bounds__(kWarps * 32) attention_dkdv_tc_kernel(
    const __nv_bfloat16* __restrict__ dO, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse, const float* __restrict__ delta,
    const int32_t* __restrict__ cu, int64_t T, int Hq, int Hkv, float scale, __nv_bfloat16* __restrict__ dk,
    __nv_bfloat16* __restrict__ dv) {
  using S = DkvSmem<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(smem + S::k);
  __nv_bfloat16* Vs = reinterpret_cast<__nv_bfloat16*>(smem + S::v);
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem + S::q);
  __nv_bfloat16* dOs = reinterpret_cast<__nv_bfloat16*>(smem + S::dO);
  float* lse_s = reinterpret_cast<float*>(smem + S::stats);
  float* delta_s = lse_s + kQB;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* Sw = reinterpret_cast<float*>(smem + S::s) + warp * 16 * kLdS2;
  float* dPw = reinterpret_cast<float*>(smem + S::dp) + warp * 16 * kLdS2;
  __nv_bfloat16* Pw = reinterpret_cast<__nv_bfloat16*>(smem + S::p) + warp * 16 * kLdP2;
  __nv_bfloat16* dSw = reinterpret_cast<__nv_bfloat16*>(smem + S::ds) + warp * 16 * kLdP2;

  const int seq = blockIdx.z, kvh = blockIdx.y, group = Hq / Hkv;
  const int64_t start = cu[seq];
  const int len = cu[seq + 1] - (int)start;
  const int k0 = blockIdx.x * kKB;
  if (k0 >= len) return;
  const int r = lane >> 1, half = lane & 1, kj = k0 + warp * 16 + r;  // this lane's key row

  load_tile<D>(Ks, k, start + k0, len - k0, kKB, (int64_t)Hkv * D, kvh);
  load_tile<D>(Vs, v, start + k0, len - k0, kKB, (int64_t)Hkv * D, kvh);
  // K and V stay in shared memory for the whole block (the dK/dV accumulators take the registers).
  const __nv_bfloat16* Kw = Ks + warp * 16 * kRow<D>;
  const __nv_bfloat16* Vw = Vs + warp * 16 * kRow<D>;
  FragC dk_acc[D / 16], dv_acc[D / 16];
#pragma unroll
  for (int n = 0; n < D / 16; n++) {
    wmma::fill_fragment(dk_acc[n], 0.f);
    wmma::fill_fragment(dv_acc[n], 0.f);
  }

  for (int h = kvh * group; h < (kvh + 1) * group; h++) {
    for (int q0 = (k0 / kQB) * kQB; q0 < len; q0 += kQB) {  // causal: earlier queries see none of these keys
      __syncthreads();
      load_tile<D>(Qs, q, start + q0, len - q0, kQB, (int64_t)Hq * D, h);
      load_tile<D>(dOs, dO, start + q0, len - q0, kQB, (int64_t)Hq * D, h);
      for (int i = threadIdx.x; i < kQB; i += blockDim.x) {
        const bool ok = q0 + i < len;
        lse_s[i] = ok ? lse[(int64_t)h * T + start + q0 + i] : 0.f;
        delta_s[i] = ok ? delta[(int64_t)h * T + start + q0 + i] : 0.f;
      }
      __syncthreads();
      mm_abt<kQB, D>(Kw, kRow<D>, Qs, kRow<D>, Sw, kLdS2);   // Sᵀ = K·Qᵀ
      mm_abt<kQB, D>(Vw, kRow<D>, dOs, kRow<D>, dPw, kLdS2); // dPᵀ = V·dOᵀ
      __syncwarp();
      for (int c = half * (kQB / 2); c < half * (kQB / 2) + kQB / 2; c++) {
        const int qi = q0 + c;
        float p = 0.f, ds = 0.f;
        if (kj < len && qi < len && kj <= qi) {
          p = __expf(Sw[r * kLdS2 + c] * scale - lse_s[c]);
          ds = p * (dPw[r * kLdS2 + c] - delta_s[c]);
        }
        Pw[r * kLdP2 + c] = __float2bfloat16(p);
        dSw[r * kLdP2 + c] = __float2bfloat16(ds);
      }
      __syncwarp();
      mm_acc<D, kQB>(dv_acc, Pw, kLdP2, dOs, kRow<D>);  // dV += Pᵀ·dO
      mm_acc<D, kQB>(dk_acc, dSw, kLdP2, Qs, kRow<D>);  // dK += dSᵀ·Q
    }
  }
  __syncthreads();  // Q onwards becomes the output staging
  float* stage = reinterpret_cast<float*>(smem + S::q) + warp * 16 * (D + 4);
  const int row0 = k0 + warp * 16;
  store_rows<D>(dv_acc, 1.f, stage, dv, start + row0, len - row0, (int64_t)Hkv * D, kvh, lane);
  __syncwarp();
  store_rows<D>(dk_acc, scale, stage, dk, start + row0, len - row0, (int64_t)Hkv * D, kvh, lane);
}

template <int D>
tsl_status launch(const void* dO, const void* q, const void* k, const void* v, const float* lse, const float* delta,
                  const int32_t* cu, int seqs, int max_len, int64_t T, int Hq, int Hkv, float scale, void* dq, void* dk,
                  void* dv) {
  const char* op = "tsl_attention_bwd";
  using bf = __nv_bfloat16;
  auto dq_kernel = attention_dq_tc_kernel<D>;
  TSL_CUDA(op, cudaFuncSetAttribute(dq_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)DqSmem<D>::bytes));
  dq_kernel<<<dim3((max_len + kQ - 1) / kQ, Hq, seqs), kWarps * 32, DqSmem<D>::bytes, compute_stream()>>>(
      (const bf*)dO, (const bf*)q, (const bf*)k, (const bf*)v, lse, delta, cu, T, Hq, Hkv, scale, (bf*)dq);
  TSL_CHECK_LAUNCH(op);
  auto kv_kernel = attention_dkdv_tc_kernel<D>;
  TSL_CUDA(op, cudaFuncSetAttribute(kv_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)DkvSmem<D>::bytes));
  kv_kernel<<<dim3((max_len + kKB - 1) / kKB, Hkv, seqs), kWarps * 32, DkvSmem<D>::bytes, compute_stream()>>>(
      (const bf*)dO, (const bf*)q, (const bf*)k, (const bf*)v, lse, delta, cu, T, Hq, Hkv, scale, (bf*)dk, (bf*)dv);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

}  // namespace

tsl_status attention_bwd_tensor_cores(const void* dO, const void* q, const void* k, const void* v, const float* lse,
                                      const float* delta, const int32_t* cu, int seqs, int max_len, int64_t T, int Hq,
                                      int Hkv, int D, float scale, void* dq, void* dk, void* dv, bool* handled) {
  *handled = true;
  switch (D) {
    case 64: return launch<64>(dO, q, k, v, lse, delta, cu, seqs, max_len, T, Hq, Hkv, scale, dq, dk, dv);
    case 128: return launch<128>(dO, q, k, v, lse, delta, cu, seqs, max_len, T, Hq, Hkv, scale, dq, dk, dv);
    default: *handled = false; return TSL_OK;
  }
}

}  // namespace tsl
