// The two-pass attention backward on mma.sync m16n8k16 register tiles (FlashAttention-2, Dao 2023)
// for head dims 64 and 128, chosen with TSLOTH_ATTENTION_BWD=split (the default is a single pass:
// attention_bwd_q64.cu, or attention_bwd_fused.cu where that does not fit). No atomics, so dQ is
// bit-for-bit repeatable:
//   dQ:    each warp owns 16 query rows (Q and dO fragments in registers) and streams 32-key tiles:
//          S = Q·Kᵀ, dP = dO·Vᵀ, dS = P ⊙ (dP − Δ) in registers, dQ += dS·K (this file).
//   dK/dV: attention_bwd_fused.cu's key-block pass without its dQ step.
// Score accumulators re-pack as A operands (attention_mma.cuh), so nothing but K/V/Q/dO tiles
// passes through shared memory. The streamed tiles come in with cp.async two stages deep (the next
// tile loads while this one is computed) and reach the tensor cores through ldmatrix; only tiles
// that cross the diagonal or the sequence end are masked. The previous version (scalar fragment
// loads, synchronous tiles) is kept in kernels-cuda/dev/variants/.
#include <math.h>

#include "attention_bwd_tiles.cuh"

namespace tsl {

tsl_status attention_bwd_key_pass(const void* dO, const void* q, const void* k, const void* v, const float* lse,
                                  const float* delta, const int32_t* cu, int seqs, int max_len, int64_t T, int Hq, int Hkv,
                                  int D, float scale, void* dk, void* dv);

namespace {

constexpr int kWarps = 4, kRows = 64;
// Blocks per SM the dQ kernel's register budget is sized for. 3 (168 registers, a few spilled)
// against 2 (no spills) on an H200: 8% slower at 4 × 2048, 4% faster at 1 × 8192; 2 is kept.
#ifndef TSL_ATTN_DQ_MIN_BLOCKS
#define TSL_ATTN_DQ_MIN_BLOCKS 2
#endif

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
  return attention_bwd_key_pass(dO, q, k, v, lse, delta, cu, seqs, max_len, T, Hq, Hkv, D, scale, dk, dv);
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
