// Causal GQA attention backward with register tiles on mma.sync m16n8k16 (FlashAttention-2, Dao
// 2023), the default for head dims 64 and 128. Same split as the other backward kernels, no atomics:
//   dQ:    each warp owns 16 query rows (Q and dO fragments in registers) and streams 32-key tiles:
//          S = Q·Kᵀ, dP = dO·Vᵀ, dS = P ⊙ (dP − Δ) in registers, dQ += dS·K.
//   dK/dV: each warp owns 16 keys and streams 32-query tiles of every query head in its kv group:
//          Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ, dV += Pᵀ·dO, dK += dSᵀ·Q.
// Score accumulators re-pack as A operands (attention_mma.cuh), so nothing but K/V/Q/dO tiles
// passes through shared memory.
#include <math.h>

#include "attention_mma.cuh"

namespace tsl {
namespace {

using namespace attn;

constexpr int kWarps = 4, kRows = 64, kTile = 32;

template <int D>
__device__ __forceinline__ void store_pair_rows(const float (*acc)[4], float scale, __nv_bfloat16* out, int64_t tok_start,
                                                int r0, int r1, int len, int64_t stride, int head, int tid) {
#pragma unroll
  for (int n = 0; n < D / 8; n++) {
    const int c = n * 8 + tid * 2;
    if (r0 < len)
      *reinterpret_cast<__nv_bfloat162*>(out + (tok_start + r0) * stride + (int64_t)head * D + c) =
          __floats2bfloat162_rn(acc[n][0] * scale, acc[n][1] * scale);
    if (r1 < len)
      *reinterpret_cast<__nv_bfloat162*>(out + (tok_start + r1) * stride + (int64_t)head * D + c) =
          __floats2bfloat162_rn(acc[n][2] * scale, acc[n][3] * scale);
  }
}

template <int D>
__global__ void __launch_bounds__(kWarps * 32) attention_dq_mma_kernel(
    const __nv_bfloat16* __restrict__ dO, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse, const float* __restrict__ delta,
    const int32_t* __restrict__ cu, int64_t T, int Hq, int Hkv, float scale, __nv_bfloat16* __restrict__ dq) {
  extern __shared__ __align__(128) unsigned char smem[];
  __nv_bfloat16* A = reinterpret_cast<__nv_bfloat16*>(smem);  // Q staging, then K tiles
  __nv_bfloat16* B = A + kRows * kRow<D>;                      // dO staging, then V tiles
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2, tid = lane & 3;
  const int seq = blockIdx.z, h = blockIdx.y, kvh = h / (Hq / Hkv);
  const int64_t start = cu[seq];
  const int len = cu[seq + 1] - (int)start;
  const int q0 = blockIdx.x * kRows;
  if (q0 >= len) return;
  const int r0 = q0 + warp * 16 + gid, r1 = r0 + 8;
  const float lse0 = r0 < len ? lse[(int64_t)h * T + start + r0] : 0.f, lse1 = r1 < len ? lse[(int64_t)h * T + start + r1] : 0.f;
  const float dl0 = r0 < len ? delta[(int64_t)h * T + start + r0] : 0.f, dl1 = r1 < len ? delta[(int64_t)h * T + start + r1] : 0.f;

  load_tile<D>(A, q, start + q0, len - q0, kRows, (int64_t)Hq * D, h);
  load_tile<D>(B, dO, start + q0, len - q0, kRows, (int64_t)Hq * D, h);
  __syncthreads();
  uint32_t qa[D / 16][4], da[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
    load_a(qa[kk], A + warp * 16 * kRow<D>, kRow<D>, kk * 16, gid, tid);
    load_a(da[kk], B + warp * 16 * kRow<D>, kRow<D>, kk * 16, gid, tid);
  }
  float acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;

  const int k_end = min(len, q0 + kRows);
  for (int k0 = 0; k0 < k_end; k0 += kTile) {
    __syncthreads();
    load_tile<D>(A, k, start + k0, len - k0, kTile, (int64_t)Hkv * D, kvh);
    load_tile<D>(B, v, start + k0, len - k0, kTile, (int64_t)Hkv * D, kvh);
    __syncthreads();
    float s[kTile / 8][4], dp[kTile / 8][4];
#pragma unroll
    for (int n = 0; n < kTile / 8; n++) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
      dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++) {
        uint32_t b[2];
        load_b_t(b, A, kRow<D>, n * 8, kk * 16, gid, tid);
        mma_bf16(s[n], qa[kk], b[0], b[1]);
        load_b_t(b, B, kRow<D>, n * 8, kk * 16, gid, tid);
        mma_bf16(dp[n], da[kk], b[0], b[1]);
      }
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int kj = k0 + n * 8 + tid * 2 + e;
        const float p0 = (r0 < len && kj <= r0) ? __expf(s[n][e] * scale - lse0) : 0.f;
        const float p1 = (r1 < len && kj <= r1) ? __expf(s[n][2 + e] * scale - lse1) : 0.f;
        s[n][e] = p0 * (dp[n][e] - dl0);
        s[n][2 + e] = p1 * (dp[n][2 + e] - dl1);
      }
    }
#pragma unroll
    for (int j = 0; j < kTile / 16; j++) {
      const uint32_t pa[4] = {pack_bf16(s[2 * j][0], s[2 * j][1]), pack_bf16(s[2 * j][2], s[2 * j][3]),
                              pack_bf16(s[2 * j + 1][0], s[2 * j + 1][1]), pack_bf16(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
      for (int n = 0; n < D / 8; n++) {
        uint32_t b[2];
        load_b_n(b, A, kRow<D>, j * 16, n * 8, gid, tid);
        mma_bf16(acc[n], pa, b[0], b[1]);
      }
    }
  }
  store_pair_rows<D>(acc, scale, dq, start, r0, r1, len, (int64_t)Hq * D, h, tid);
}

template <int D>
__global__ void __launch_bounds__(kWarps * 32) attention_dkdv_mma_kernel(
    const __nv_bfloat16* __restrict__ dO, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse, const float* __restrict__ delta,
    const int32_t* __restrict__ cu, int64_t T, int Hq, int Hkv, float scale, __nv_bfloat16* __restrict__ dk,
    __nv_bfloat16* __restrict__ dv) {
  extern __shared__ __align__(128) unsigned char smem[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* Vs = Ks + kRows * kRow<D>;
  __nv_bfloat16* Qs = Vs + kRows * kRow<D>;
  __nv_bfloat16* dOs = Qs + kTile * kRow<D>;
  float* lse_s = reinterpret_cast<float*>(dOs + kTile * kRow<D>);
  float* delta_s = lse_s + kTile;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2, tid = lane & 3;
  const int seq = blockIdx.z, kvh = blockIdx.y, group = Hq / Hkv;
  const int64_t start = cu[seq];
  const int len = cu[seq + 1] - (int)start;
  const int k0 = blockIdx.x * kRows;
  if (k0 >= len) return;
  const int r0 = k0 + warp * 16 + gid, r1 = r0 + 8;  // this thread's two key rows
  const __nv_bfloat16* Kw = Ks + warp * 16 * kRow<D>;
  const __nv_bfloat16* Vw = Vs + warp * 16 * kRow<D>;

  load_tile<D>(Ks, k, start + k0, len - k0, kRows, (int64_t)Hkv * D, kvh);
  load_tile<D>(Vs, v, start + k0, len - k0, kRows, (int64_t)Hkv * D, kvh);
  float dk_acc[D / 8][4], dv_acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) dk_acc[n][e] = dv_acc[n][e] = 0.f;

  for (int h = kvh * group; h < (kvh + 1) * group; h++) {
    for (int q0 = (k0 / kTile) * kTile; q0 < len; q0 += kTile) {  // causal: earlier queries see none of these keys
      __syncthreads();
      load_tile<D>(Qs, q, start + q0, len - q0, kTile, (int64_t)Hq * D, h);
      load_tile<D>(dOs, dO, start + q0, len - q0, kTile, (int64_t)Hq * D, h);
      for (int i = threadIdx.x; i < kTile; i += blockDim.x) {
        const bool ok = q0 + i < len;
        lse_s[i] = ok ? lse[(int64_t)h * T + start + q0 + i] : 0.f;
        delta_s[i] = ok ? delta[(int64_t)h * T + start + q0 + i] : 0.f;
      }
      __syncthreads();
      float st[kTile / 8][4], dpt[kTile / 8][4];
#pragma unroll
      for (int n = 0; n < kTile / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) st[n][e] = dpt[n][e] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++) {
        uint32_t ka[4], va[4];
        load_a(ka, Kw, kRow<D>, kk * 16, gid, tid);
        load_a(va, Vw, kRow<D>, kk * 16, gid, tid);
#pragma unroll
        for (int n = 0; n < kTile / 8; n++) {
          uint32_t b[2];
          load_b_t(b, Qs, kRow<D>, n * 8, kk * 16, gid, tid);
          mma_bf16(st[n], ka, b[0], b[1]);
          load_b_t(b, dOs, kRow<D>, n * 8, kk * 16, gid, tid);
          mma_bf16(dpt[n], va, b[0], b[1]);
        }
      }
#pragma unroll
      for (int n = 0; n < kTile / 8; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const int c = n * 8 + tid * 2 + e, qi = q0 + c;
          const float p0 = (r0 < len && qi < len && r0 <= qi) ? __expf(st[n][e] * scale - lse_s[c]) : 0.f;
          const float p1 = (r1 < len && qi < len && r1 <= qi) ? __expf(st[n][2 + e] * scale - lse_s[c]) : 0.f;
          st[n][e] = p0;
          st[n][2 + e] = p1;
          dpt[n][e] = p0 * (dpt[n][e] - delta_s[c]);
          dpt[n][2 + e] = p1 * (dpt[n][2 + e] - delta_s[c]);
        }
#pragma unroll
      for (int j = 0; j < kTile / 16; j++) {
        const uint32_t pa[4] = {pack_bf16(st[2 * j][0], st[2 * j][1]), pack_bf16(st[2 * j][2], st[2 * j][3]),
                                pack_bf16(st[2 * j + 1][0], st[2 * j + 1][1]), pack_bf16(st[2 * j + 1][2], st[2 * j + 1][3])};
        const uint32_t sa[4] = {pack_bf16(dpt[2 * j][0], dpt[2 * j][1]), pack_bf16(dpt[2 * j][2], dpt[2 * j][3]),
                                pack_bf16(dpt[2 * j + 1][0], dpt[2 * j + 1][1]), pack_bf16(dpt[2 * j + 1][2], dpt[2 * j + 1][3])};
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
          uint32_t b[2];
          load_b_n(b, dOs, kRow<D>, j * 16, n * 8, gid, tid);
          mma_bf16(dv_acc[n], pa, b[0], b[1]);
          load_b_n(b, Qs, kRow<D>, j * 16, n * 8, gid, tid);
          mma_bf16(dk_acc[n], sa, b[0], b[1]);
        }
      }
    }
  }
  store_pair_rows<D>(dv_acc, 1.f, dv, start, r0, r1, len, (int64_t)Hkv * D, kvh, tid);
  store_pair_rows<D>(dk_acc, scale, dk, start, r0, r1, len, (int64_t)Hkv * D, kvh, tid);
}

template <int D>
tsl_status launch(const void* dO, const void* q, const void* k, const void* v, const float* lse, const float* delta,
                  const int32_t* cu, int seqs, int max_len, int64_t T, int Hq, int Hkv, float scale, void* dq, void* dk,
                  void* dv) {
  const char* op = "tsl_attention_bwd";
  using bf = __nv_bfloat16;
  const size_t smem_dq = (size_t)2 * kRows * kRow<D> * 2;
  auto dq_kernel = attention_dq_mma_kernel<D>;
  TSL_CUDA(op, cudaFuncSetAttribute(dq_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_dq));
  dq_kernel<<<dim3((max_len + kRows - 1) / kRows, Hq, seqs), kWarps * 32, smem_dq, compute_stream()>>>(
      (const bf*)dO, (const bf*)q, (const bf*)k, (const bf*)v, lse, delta, cu, T, Hq, Hkv, scale, (bf*)dq);
  TSL_CHECK_LAUNCH(op);
  const size_t smem_kv = (size_t)(2 * kRows + 2 * kTile) * kRow<D> * 2 + 2 * kTile * 4;
  auto kv_kernel = attention_dkdv_mma_kernel<D>;
  TSL_CUDA(op, cudaFuncSetAttribute(kv_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_kv));
  kv_kernel<<<dim3((max_len + kRows - 1) / kRows, Hkv, seqs), kWarps * 32, smem_kv, compute_stream()>>>(
      (const bf*)dO, (const bf*)q, (const bf*)k, (const bf*)v, lse, delta, cu, T, Hq, Hkv, scale, (bf*)dk, (bf*)dv);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

}  // namespace

tsl_status attention_bwd_mma(const void* dO, const void* q, const void* k, const void* v, const float* lse, const float* delta,
                             const int32_t* cu, int seqs, int max_len, int64_t T, int Hq, int Hkv, int D, float scale, void* dq,
                             void* dk, void* dv, bool* handled) {
  *handled = true;
  switch (D) {
    case 64: return launch<64>(dO, q, k, v, lse, delta, cu, seqs, max_len, T, Hq, Hkv, scale, dq, dk, dv);
    case 128: return launch<128>(dO, q, k, v, lse, delta, cu, seqs, max_len, T, Hq, Hkv, scale, dq, dk, dv);
    default: *handled = false; return TSL_OK;
  }
}

}  // namespace tsl
