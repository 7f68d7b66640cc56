// Causal GQA attention backward with register tiles on mma.sync m16n8k16 (FlashAttention-2, Dao
// 2023), the default for head dims 64 and 128. Same split as the other backward kernels, no atomics:
//   dQ:    each warp owns 16 query rows (Q and dO fragments in registers) and streams 32-key tiles:
//          S = Q·Kᵀ, dP = dO·Vᵀ, dS = P ⊙ (dP − Δ) in registers, dQ += dS·K.
//   dK/dV: each warp owns 16 keys and streams 32-query tiles of every query head in its kv group:
//          Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ, dV += Pᵀ·dO, dK += dSᵀ·Q.
// Score accumulators re-pack as A operands (attention_mma.cuh), so nothing but K/V/Q/dO tiles
// passes through shared memory. The streamed tiles come in with cp.async two stages deep (the next
// tile loads while this one is computed) and reach the tensor cores through ldmatrix; only tiles
// that cross the diagonal or the sequence end are masked. The previous version (scalar fragment
// loads, synchronous tiles) is kept in kernels-cuda/dev/variants/.
#include <math.h>

#include "attention_mma.cuh"

namespace tsl {
namespace {

using namespace attn;

constexpr int kWarps = 4, kRows = 64, kTile = 32;
constexpr float kLog2e = 1.4426950408889634f;
// Blocks per SM the dQ kernel's register budget is sized for. 3 (168 registers, a few spilled)
// against 2 (no spills) on an H200: 8% slower at 4 × 2048, 4% faster at 1 × 8192; 2 is kept.
#ifndef TSL_ATTN_DQ_MIN_BLOCKS
#define TSL_ATTN_DQ_MIN_BLOCKS 2
#endif

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

// One 32-key tile of the dQ pass. kMask: some key of the tile lies past one of this warp's rows.
template <int D, bool kMask>
__device__ __forceinline__ void dq_tile(const uint32_t (*qa)[4], const uint32_t (*da)[4], const __nv_bfloat16* Ks,
                                        const __nv_bfloat16* Vs, int k0, int r0, int r1, float scale_log2, float lse0,
                                        float lse1, float dl0, float dl1, float (*acc)[4], int lane) {
  const int tid = lane & 3;
  float s[kTile / 8][4], dp[kTile / 8][4];
#pragma unroll
  for (int n = 0; n < kTile / 8; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
    for (int n = 0; n < kTile / 8; n += 2) {
      uint32_t b[4];
      ldsm_bt2(b, Ks, kRow<D>, n * 8, kk * 16, lane);
      mma_bf16(s[n], qa[kk], b[0], b[1]);
      mma_bf16(s[n + 1], qa[kk], b[2], b[3]);
      ldsm_bt2(b, Vs, kRow<D>, n * 8, kk * 16, lane);
      mma_bf16(dp[n], da[kk], b[0], b[1]);
      mma_bf16(dp[n + 1], da[kk], b[2], b[3]);
    }
  }
#pragma unroll
  for (int n = 0; n < kTile / 8; n++)
#pragma unroll
    for (int e = 0; e < 2; e++) {
      float p0 = fast_exp2(fmaf(s[n][e], scale_log2, -lse0)), p1 = fast_exp2(fmaf(s[n][2 + e], scale_log2, -lse1));
      if (kMask) {
        const int kj = k0 + n * 8 + tid * 2 + e;
        p0 = kj <= r0 ? p0 : 0.f;
        p1 = kj <= r1 ? p1 : 0.f;
      }
      s[n][e] = p0 * (dp[n][e] - dl0);
      s[n][2 + e] = p1 * (dp[n][2 + e] - dl1);
    }
#pragma unroll
  for (int j = 0; j < kTile / 16; j++) {
    const uint32_t pa[4] = {pack_bf16(s[2 * j][0], s[2 * j][1]), pack_bf16(s[2 * j][2], s[2 * j][3]),
                            pack_bf16(s[2 * j + 1][0], s[2 * j + 1][1]), pack_bf16(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
    for (int n = 0; n < D / 8; n += 2) {
      uint32_t b[4];
      ldsm_bn2(b, Ks, kRow<D>, j * 16, n * 8, lane);
      mma_bf16(acc[n], pa, b[0], b[1]);
      mma_bf16(acc[n + 1], pa, b[2], b[3]);
    }
  }
}

template <int D>
__global__ void __launch_bounds__(kWarps * 32, TSL_ATTN_DQ_MIN_BLOCKS) attention_dq_mma_kernel(
    const __nv_bfloat16* __restrict__ dO, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse, const float* __restrict__ delta,
    const int32_t* __restrict__ cu, int64_t T, int Hq, int Hkv, float scale, __nv_bfloat16* __restrict__ dq) {
  extern __shared__ __align__(128) unsigned char smem[];
  // Two stages of [K tile | V tile] (128 rows in all); Q and dO are staged through the same rows.
  __nv_bfloat16* const base = reinterpret_cast<__nv_bfloat16*>(smem);
  constexpr int kStage = 2 * kTile * kRow<D>;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2, tid = lane & 3;
  const int seq = blockIdx.z, h = blockIdx.y, kvh = h / (Hq / Hkv);
  const int64_t start = cu[seq];
  const int len = cu[seq + 1] - (int)start;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kRows;  // longest rows first
  if (q0 >= len) return;
  const int r0 = q0 + warp * 16 + gid, r1 = r0 + 8;
  const int64_t kv_stride = (int64_t)Hkv * D;
  const float scale_log2 = scale * kLog2e;
  const float lse0 = r0 < len ? lse[(int64_t)h * T + start + r0] * kLog2e : 0.f;
  const float lse1 = r1 < len ? lse[(int64_t)h * T + start + r1] * kLog2e : 0.f;
  const float dl0 = r0 < len ? delta[(int64_t)h * T + start + r0] : 0.f, dl1 = r1 < len ? delta[(int64_t)h * T + start + r1] : 0.f;

  cp_tile<D, kRows, kWarps * 32>(base, q, start + q0, len - q0, (int64_t)Hq * D, h);
  cp_tile<D, kRows, kWarps * 32>(base + kRows * kRow<D>, dO, start + q0, len - q0, (int64_t)Hq * D, h);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  uint32_t qa[D / 16][4], da[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
    ldsm_a(qa[kk], base + warp * 16 * kRow<D>, kRow<D>, kk * 16, lane);
    ldsm_a(da[kk], base + (kRows + warp * 16) * kRow<D>, kRow<D>, kk * 16, lane);
  }
  __syncthreads();
  float acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;

  const int tiles = (min(len, q0 + kRows) + kTile - 1) / kTile;
  const int warp_row_min = q0 + warp * 16;
  cp_tile<D, kTile, kWarps * 32>(base, k, start, len, kv_stride, kvh);
  cp_tile<D, kTile, kWarps * 32>(base + kTile * kRow<D>, v, start, len, kv_stride, kvh);
  cp_async_commit();
  for (int t = 0; t < tiles; t++) {
    if (t + 1 < tiles) {
      const int kn = (t + 1) * kTile;
      __nv_bfloat16* st = base + ((t + 1) & 1) * kStage;
      cp_tile<D, kTile, kWarps * 32>(st, k, start + kn, len - kn, kv_stride, kvh);
      cp_tile<D, kTile, kWarps * 32>(st + kTile * kRow<D>, v, start + kn, len - kn, kv_stride, kvh);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const __nv_bfloat16* Ks = base + (t & 1) * kStage;
    const int k0 = t * kTile;
    if (k0 + kTile - 1 > warp_row_min)
      dq_tile<D, true>(qa, da, Ks, Ks + kTile * kRow<D>, k0, r0, r1, scale_log2, lse0, lse1, dl0, dl1, acc, lane);
    else
      dq_tile<D, false>(qa, da, Ks, Ks + kTile * kRow<D>, k0, r0, r1, scale_log2, lse0, lse1, dl0, dl1, acc, lane);
    __syncthreads();
  }
  store_pair_rows<D>(acc, scale, dq, start, r0, r1, len, (int64_t)Hq * D, h, tid);
}

// One 32-query tile of the dK/dV pass. kMask: the tile crosses the diagonal or the sequence end.
template <int D, bool kMask>
__device__ __forceinline__ void dkdv_tile(const __nv_bfloat16* Kw, const __nv_bfloat16* Vw, const __nv_bfloat16* Qs,
                                          const __nv_bfloat16* dOs, const float* lse_s, const float* delta_s, int q0,
                                          int r0, int r1, int len, float scale_log2, float (*dk_acc)[4],
                                          float (*dv_acc)[4], int lane) {
  const int tid = lane & 3;
  float st[kTile / 8][4], dpt[kTile / 8][4];
#pragma unroll
  for (int n = 0; n < kTile / 8; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) st[n][e] = dpt[n][e] = 0.f;
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
    uint32_t ka[4], va[4];
    ldsm_a(ka, Kw, kRow<D>, kk * 16, lane);
    ldsm_a(va, Vw, kRow<D>, kk * 16, lane);
#pragma unroll
    for (int n = 0; n < kTile / 8; n += 2) {
      uint32_t b[4];
      ldsm_bt2(b, Qs, kRow<D>, n * 8, kk * 16, lane);
      mma_bf16(st[n], ka, b[0], b[1]);
      mma_bf16(st[n + 1], ka, b[2], b[3]);
      ldsm_bt2(b, dOs, kRow<D>, n * 8, kk * 16, lane);
      mma_bf16(dpt[n], va, b[0], b[1]);
      mma_bf16(dpt[n + 1], va, b[2], b[3]);
    }
  }
#pragma unroll
  for (int n = 0; n < kTile / 8; n++)
#pragma unroll
    for (int e = 0; e < 2; e++) {
      const int c = n * 8 + tid * 2 + e;
      const float l = lse_s[c] * kLog2e, dl = delta_s[c];
      float p0 = fast_exp2(fmaf(st[n][e], scale_log2, -l)), p1 = fast_exp2(fmaf(st[n][2 + e], scale_log2, -l));
      if (kMask) {
        const int qi = q0 + c;
        p0 = (qi < len && r0 <= qi) ? p0 : 0.f;
        p1 = (qi < len && r1 <= qi) ? p1 : 0.f;
      }
      st[n][e] = p0;
      st[n][2 + e] = p1;
      dpt[n][e] = p0 * (dpt[n][e] - dl);
      dpt[n][2 + e] = p1 * (dpt[n][2 + e] - dl);
    }
#pragma unroll
  for (int j = 0; j < kTile / 16; j++) {
    const uint32_t pa[4] = {pack_bf16(st[2 * j][0], st[2 * j][1]), pack_bf16(st[2 * j][2], st[2 * j][3]),
                            pack_bf16(st[2 * j + 1][0], st[2 * j + 1][1]), pack_bf16(st[2 * j + 1][2], st[2 * j + 1][3])};
    const uint32_t sa[4] = {pack_bf16(dpt[2 * j][0], dpt[2 * j][1]), pack_bf16(dpt[2 * j][2], dpt[2 * j][3]),
                            pack_bf16(dpt[2 * j + 1][0], dpt[2 * j + 1][1]), pack_bf16(dpt[2 * j + 1][2], dpt[2 * j + 1][3])};
#pragma unroll
    for (int n = 0; n < D / 8; n += 2) {
      uint32_t b[4];
      ldsm_bn2(b, dOs, kRow<D>, j * 16, n * 8, lane);
      mma_bf16(dv_acc[n], pa, b[0], b[1]);
      mma_bf16(dv_acc[n + 1], pa, b[2], b[3]);
      ldsm_bn2(b, Qs, kRow<D>, j * 16, n * 8, lane);
      mma_bf16(dk_acc[n], sa, b[0], b[1]);
      mma_bf16(dk_acc[n + 1], sa, b[2], b[3]);
    }
  }
}

// Queues the loads of query tile `idx` (head and position flattened) into stage idx & 1.
template <int D>
__device__ __forceinline__ void dkdv_prefetch(__nv_bfloat16* qbase, float* fbase, int idx, int nq, int qfirst, int kvh,
                                              int group, const __nv_bfloat16* __restrict__ q,
                                              const __nv_bfloat16* __restrict__ dO, const float* __restrict__ lse,
                                              const float* __restrict__ delta, int64_t start, int len, int64_t T, int Hq) {
  const int h = kvh * group + idx / nq, q0 = qfirst + (idx % nq) * kTile, b = idx & 1;
  __nv_bfloat16* Qs = qbase + b * 2 * kTile * kRow<D>;
  cp_tile<D, kTile, kWarps * 32>(Qs, q, start + q0, len - q0, (int64_t)Hq * D, h);
  cp_tile<D, kTile, kWarps * 32>(Qs + kTile * kRow<D>, dO, start + q0, len - q0, (int64_t)Hq * D, h);
  float* f = fbase + b * 2 * kTile;
  if (threadIdx.x < 2 * kTile) {
    const int i = threadIdx.x & (kTile - 1);
    const float* src = threadIdx.x < kTile ? lse : delta;
    const bool ok = q0 + i < len;
    cp_async4(f + threadIdx.x, ok ? src + (int64_t)h * T + start + q0 + i : src, ok ? 4 : 0);
  }
  cp_async_commit();
}

template <int D>
__global__ void __launch_bounds__(kWarps * 32) attention_dkdv_mma_kernel(
    const __nv_bfloat16* __restrict__ dO, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse, const float* __restrict__ delta,
    const int32_t* __restrict__ cu, int64_t T, int Hq, int Hkv, float scale, __nv_bfloat16* __restrict__ dk,
    __nv_bfloat16* __restrict__ dv) {
  extern __shared__ __align__(128) unsigned char smem[];
  // [K 64 rows | V 64 rows | stage 0: Q 32, dO 32 | stage 1: Q 32, dO 32 | lse, Δ per stage]
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* Vs = Ks + kRows * kRow<D>;
  __nv_bfloat16* qbase = Vs + kRows * kRow<D>;
  float* fbase = reinterpret_cast<float*>(qbase + 4 * kTile * kRow<D>);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2, tid = lane & 3;
  const int seq = blockIdx.z, kvh = blockIdx.y, group = Hq / Hkv;
  const int64_t start = cu[seq];
  const int len = cu[seq + 1] - (int)start;
  const int k0 = blockIdx.x * kRows;  // lowest keys (the most queries) first
  if (k0 >= len) return;
  const int r0 = k0 + warp * 16 + gid, r1 = r0 + 8;  // this thread's two key rows
  const int warp_key_max = k0 + warp * 16 + 15;
  const __nv_bfloat16* Kw = Ks + warp * 16 * kRow<D>;
  const __nv_bfloat16* Vw = Vs + warp * 16 * kRow<D>;
  const float scale_log2 = scale * kLog2e;

  cp_tile<D, kRows, kWarps * 32>(Ks, k, start + k0, len - k0, (int64_t)Hkv * D, kvh);
  cp_tile<D, kRows, kWarps * 32>(Vs, v, start + k0, len - k0, (int64_t)Hkv * D, kvh);
  float dk_acc[D / 8][4], dv_acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) dk_acc[n][e] = dv_acc[n][e] = 0.f;

  const int qfirst = k0;  // causal: earlier queries see none of these keys (k0 is a multiple of kTile)
  const int nq = (len - qfirst + kTile - 1) / kTile, tiles = nq * group;
  dkdv_prefetch<D>(qbase, fbase, 0, nq, qfirst, kvh, group, q, dO, lse, delta, start, len, T, Hq);  // K, V ride along
  for (int t = 0; t < tiles; t++) {
    if (t + 1 < tiles) {
      dkdv_prefetch<D>(qbase, fbase, t + 1, nq, qfirst, kvh, group, q, dO, lse, delta, start, len, T, Hq);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int q0 = qfirst + (t % nq) * kTile, b = t & 1;
    const __nv_bfloat16* Qs = qbase + b * 2 * kTile * kRow<D>;
    const float* f = fbase + b * 2 * kTile;
    if (q0 < warp_key_max || q0 + kTile > len)
      dkdv_tile<D, true>(Kw, Vw, Qs, Qs + kTile * kRow<D>, f, f + kTile, q0, r0, r1, len, scale_log2, dk_acc, dv_acc, lane);
    else
      dkdv_tile<D, false>(Kw, Vw, Qs, Qs + kTile * kRow<D>, f, f + kTile, q0, r0, r1, len, scale_log2, dk_acc, dv_acc, lane);
    __syncthreads();
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
  const size_t smem_dq = (size_t)2 * kRows * kRow<D> * 2;  // = two stages of 32-key K and V tiles
  auto dq_kernel = attention_dq_mma_kernel<D>;
  TSL_CUDA(op, cudaFuncSetAttribute(dq_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_dq));
  dq_kernel<<<dim3((max_len + kRows - 1) / kRows, Hq, seqs), kWarps * 32, smem_dq, compute_stream()>>>(
      (const bf*)dO, (const bf*)q, (const bf*)k, (const bf*)v, lse, delta, cu, T, Hq, Hkv, scale, (bf*)dq);
  TSL_CHECK_LAUNCH(op);
  const size_t smem_kv = (size_t)(2 * kRows + 4 * kTile) * kRow<D> * 2 + 4 * kTile * 4;
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
