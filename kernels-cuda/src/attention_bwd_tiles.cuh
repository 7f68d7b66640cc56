// Pieces both attention backward passes share (attention_bwd_mma.cu: the dQ pass; attention_bwd_fused.cu:
// the key-block pass, with or without dQ): the tile sizes, the bf16 row store, the per-warp dK/dV tile
// and the query-tile prefetch. mma.sync m16n8k16 register tiles (FlashAttention-2, Dao 2023).
#pragma once
#include "attention_mma.cuh"

namespace tsl {
namespace {

using namespace attn;

constexpr int kTile = 32;        // queries (key-block pass) or keys (dQ pass) per streamed tile
constexpr int kLdS = kTile + 8;  // dSᵀ row stride (bf16): 80 bytes, conflict-free stores and ldmatrix
constexpr float kLog2e = 1.4426950408889634f;

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

// One 32-query tile of the dK/dV work for one warp's 16 keys: Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ,
// dV += Pᵀ·dO, dK += dSᵀ·Q; with kWriteDs it also leaves the warp's 16 rows of dSᵀ (unscaled bf16)
// in dSw for the block's dQ step. kMask: the tile crosses the diagonal or the sequence end.
template <int D, bool kMask, bool kWriteDs>
__device__ __forceinline__ void dkdv_tile(const __nv_bfloat16* Kw, const __nv_bfloat16* Vw, const __nv_bfloat16* Qs,
                                          const __nv_bfloat16* dOs, const float* lse_s, const float* delta_s, int q0,
                                          int r0, int r1, int len, float scale_log2, float (*dk_acc)[4],
                                          float (*dv_acc)[4], __nv_bfloat16* dSw, int lane) {
  const int gid = lane >> 2, tid = lane & 3;
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
    // sa is the A fragment of dSᵀ (keys × queries 16j..16j+15): a0/a2 row gid, a1/a3 row gid + 8.
    if constexpr (kWriteDs) {
      uint32_t* row0 = reinterpret_cast<uint32_t*>(dSw + gid * kLdS + j * 16 + tid * 2);
      uint32_t* row1 = reinterpret_cast<uint32_t*>(dSw + (gid + 8) * kLdS + j * 16 + tid * 2);
      row0[0] = sa[0];
      row1[0] = sa[1];
      row0[4] = sa[2];
      row1[4] = sa[3];
    }
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

// Queues the loads of kRows queries of head h from position q0 (Q, dO, lse and Δ) into stage b.
template <int D, int kRows, int kThreads>
__device__ __forceinline__ void prefetch_rows(__nv_bfloat16* qbase, float* fbase, int b, int h, int q0,
                                              const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ dO,
                                              const float* __restrict__ lse, const float* __restrict__ delta, int64_t start,
                                              int len, int64_t T, int Hq) {
  __nv_bfloat16* Qs = qbase + b * 2 * kRows * kRow<D>;
  cp_tile<D, kRows, kThreads>(Qs, q, start + q0, len - q0, (int64_t)Hq * D, h);
  cp_tile<D, kRows, kThreads>(Qs + kRows * kRow<D>, dO, start + q0, len - q0, (int64_t)Hq * D, h);
  float* f = fbase + b * 2 * kRows;
  if (threadIdx.x < 2 * kRows) {
    const int i = threadIdx.x & (kRows - 1);
    const float* src = threadIdx.x < kRows ? lse : delta;
    const bool ok = q0 + i < len;
    cp_async4(f + threadIdx.x, ok ? src + (int64_t)h * T + start + q0 + i : src, ok ? 4 : 0);
  }
  cp_async_commit();
}

// Queues the loads of query tile `idx` (head and position flattened) into stage idx & 1.
template <int D, int kThreads>
__device__ __forceinline__ void prefetch(__nv_bfloat16* qbase, float* fbase, int idx, int nq, int qfirst, int kvh, int group,
                                         const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ dO,
                                         const float* __restrict__ lse, const float* __restrict__ delta, int64_t start,
                                         int len, int64_t T, int Hq) {
  prefetch_rows<D, kTile, kThreads>(qbase, fbase, idx & 1, kvh * group + idx / nq, qfirst + (idx % nq) * kTile, q, dO, lse,
                                    delta, start, len, T, Hq);
}

}  // namespace
}  // namespace tsl
