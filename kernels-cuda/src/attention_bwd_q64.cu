// Causal GQA attention backward in one pass with FlashAttention-2's tile shapes for sm_80+ mma.sync
// (Dao 2023, §3.2; flash_bwd_kernel.h's head-dim-128 traits: 128-key blocks, 64-query tiles, 8
// warps, each product split 2 × 4 over the warps). attention_bwd_fused.cu gives every warp 16 keys
// and the whole head dim, so each ldmatrix.x4 of a streamed operand feeds only two mma and the
// shared-memory pipe saturates (Nsight Compute on an H200, 4 × 2048: L1/shared 76% of elapsed
// cycles = ~100% of the SMs' active cycles, tensor pipe 27%). Here every warp computes 32 × 32 tiles:
//   1. warp (key group g = w/2, query half w%2): Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ for 32 keys × 32 queries,
//      P and dS = P ⊙ (dP − Δ) as bf16 into shared memory (Pᵀ and dSᵀ, [128 keys][64 queries]);
//   2. warp (key group g, head-dim half w%2): dV += Pᵀ·dO, dK += dSᵀ·Q for 32 keys × D/2 columns
//      (accumulators stay in registers across all tiles of every query head of the kv group);
//   3. warp (query half w%2, head-dim quarter g): dQ = dS·K for 32 queries × D/4 columns over the
//      block's 128 keys, added to an fp32 [T, Hq, D] accumulator with red.global.add.v4.f32.
// ldmatrix.x4 per mma: 0.45 against the 16-key kernel's 0.65 (shared bytes per FLOP −31%). Blocks
// are numbered key block first (block x: key block x / (Hkv · seqs)), so the blocks with the most
// query tiles start first on every head: the key-block-per-head order left the SMs idle 24% of
// the kernel's elapsed cycles at 4 × 2048 (tail of the last wave). Tiles whose keys all lie past
// the queries (the causal diagonal) skip their warps' mma.
// Shared memory: K, V 128 rows; Q, dO 64 rows × 2 stages (cp.async, next tile loads during this
// one); Pᵀ, dSᵀ; lse, Δ: 173 KB at D 128 (sm_90 only: 227 KB per block), 109 KB at D 64 (sm_80 and
// sm_90). Where the device grants less (sm_86/89's 99 KB, A100 at D 128), and with
// TSLOTH_ATTENTION_BWD=fused, attention_bwd_fused.cu's kernel runs. 255 registers, no spills.
//
// Predicted before measuring (written for an H200; kernels-cuda/dev/bench_attention.py, same call as
// fused): bwd 1 × 8192 D 128 4.5–5.5 ms against 7.6 (shared bytes −31% on a shared-bound kernel,
// idle SMs 24% → ≤ 5%); 4 × 2048 1.5–1.8 ms against 2.23; 1 × 8192 D 64 3.0–3.6 ms against 4.38.
// Measured on an H100 (two calls, ms, fused / q64 / SDPA): 1 × 8192 D 128 7.46–7.58 / 5.23–5.31 /
// 2.82–2.92 (−30%, 261 TFLOP/s); 4 × 2048 2.24–2.30 / 1.57–1.65 / 1.06–1.19; 1 × 8192 D 64
// 4.24–4.37 / 3.24–3.38 / 1.79–1.98. Nsight Compute (4 × 2048): SMs active 96.5% of elapsed cycles
// (was 76%), tensor pipe 38% (was 27%), L1/shared 65%, 2 warps per scheduler with 0.3 eligible: now
// latency-bound (fixed-latency dependencies 32% of stalls), the occupancy 255 registers × 256
// threads allow. Variants that measured slower (same call): each key block's query tiles last first
// (FlashAttention-2's order, for L2 reuse of dQ rows) 5.40–5.62 ms; P = exp(…) before dPᵀ's mma (to
// overlap the exp2 with them; spills 12 bytes) 5.41–5.51; both 5.57–5.81; dQ's step before dK/dV's
// 5.46–5.65; Sᵀ and dPᵀ in one loop over the head dim 5.28–5.31.
#include "attention_bwd_tiles.cuh"

namespace tsl {

tsl_status attention_dq_finish(const float* acc, uint64_t n, float scale, void* dq);  // attention_bwd_fused.cu

namespace {

constexpr int kBq = 64;          // queries per streamed tile
constexpr int kBk = 128;         // keys per block
constexpr int kThreads = 256;    // 8 warps: 4 key groups of 32 × 2
constexpr int kLdP = kBq + 8;    // Pᵀ / dSᵀ row stride (bf16): 144 bytes, conflict-free stores and ldmatrix

// [K | V (128 rows each) | stage 0: Q, dO (64 rows each) | stage 1 | Pᵀ | dSᵀ | lse, Δ per stage]
template <int D>
constexpr size_t q64_smem() {
  return (size_t)(2 * kBk + 4 * kBq) * kRow<D> * 2 + (size_t)2 * kBk * kLdP * 2 + 4 * kBq * 4;
}

// First query of tile `idx` (head-major, nq tiles per head from k0 on).
__device__ __forceinline__ int tile_q0(int idx, int nq, int k0) { return k0 + (idx % nq) * kBq; }

// Queues the loads of query tile `idx` (head and position flattened) into stage idx & 1.
template <int D>
__device__ __forceinline__ void prefetch_q64(__nv_bfloat16* stage, float* fst, int idx, int nq, int k0, int kvh, int group,
                                             const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ dO,
                                             const float* __restrict__ lse, const float* __restrict__ delta, int64_t start,
                                             int len, int64_t T, int Hq) {
  prefetch_rows<D, kBq, kThreads>(stage, fst, idx & 1, kvh * group + idx / nq, tile_q0(idx, nq, k0), q, dO, lse, delta, start,
                                  len, T, Hq);
}

// acc[2][4] (32 rows from r0 × 32 columns from c0 of this warp's tile) += A·Bᵀ over the head dim,
// A = rows r0.. of As, B = rows c0.. of Bs (both row-major [row][D]).
template <int D>
__device__ __forceinline__ void rows_by_rows(float (*acc)[4][4], const __nv_bfloat16* As, const __nv_bfloat16* Bs, int r0,
                                             int c0, int lane) {
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
    uint32_t a0[4], a1[4];
    ldsm_a(a0, As + r0 * kRow<D>, kRow<D>, kk * 16, lane);
    ldsm_a(a1, As + (r0 + 16) * kRow<D>, kRow<D>, kk * 16, lane);
#pragma unroll
    for (int np = 0; np < 2; np++) {
      uint32_t b[4];
      ldsm_bt2(b, Bs, kRow<D>, c0 + np * 16, kk * 16, lane);
      mma_bf16(acc[0][2 * np], a0, b[0], b[1]);
      mma_bf16(acc[0][2 * np + 1], a0, b[2], b[3]);
      mma_bf16(acc[1][2 * np], a1, b[0], b[1]);
      mma_bf16(acc[1][2 * np + 1], a1, b[2], b[3]);
    }
  }
}

// Step 1 for one warp: 32 keys (rows kr.. of Ks/Vs) × 32 queries (columns qc.. of the tile), Pᵀ and
// dSᵀ (unscaled) stored as bf16. kMask: some pair has key > query or query ≥ len.
template <int D, bool kMask>
__device__ __forceinline__ void scores_tile(const __nv_bfloat16* Ks, const __nv_bfloat16* Vs, const __nv_bfloat16* Qs,
                                            const __nv_bfloat16* dOs, const float* f, __nv_bfloat16* Pt, __nv_bfloat16* dSt,
                                            int kr, int qc, int key0, int q0, int len, float scale_log2, int lane) {
  const int gid = lane >> 2, tid = lane & 3;
  float st[2][4][4], dpt[2][4][4];
#pragma unroll
  for (int m = 0; m < 2; m++)
#pragma unroll
    for (int n = 0; n < 4; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) st[m][n][e] = dpt[m][n][e] = 0.f;
  rows_by_rows<D>(st, Ks, Qs, kr, qc, lane);
  rows_by_rows<D>(dpt, Vs, dOs, kr, qc, lane);
  // P = exp(S·scale − lse) in place of Sᵀ, stored as Pᵀ.
#pragma unroll
  for (int n = 0; n < 4; n++) {
    const int c = qc + n * 8 + tid * 2;  // this thread's two query columns c, c + 1
    const float l0 = f[c] * kLog2e, l1 = f[c + 1] * kLog2e;
#pragma unroll
    for (int m = 0; m < 2; m++) {
      float* p = st[m][n];
#pragma unroll
      for (int e = 0; e < 4; e++) p[e] = fast_exp2(fmaf(p[e], scale_log2, (e & 1) ? -l1 : -l0));
      if (kMask) {
        const int qi = q0 + c, kj = key0 + m * 16 + gid;
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int qe = qi + (e & 1), ke = kj + (e >> 1) * 8;
          p[e] = (qe < len && ke <= qe) ? p[e] : 0.f;
        }
      }
      const int row = kr + m * 16 + gid;
      *reinterpret_cast<uint32_t*>(Pt + row * kLdP + c) = pack_bf16(p[0], p[1]);
      *reinterpret_cast<uint32_t*>(Pt + (row + 8) * kLdP + c) = pack_bf16(p[2], p[3]);
    }
  }
  // dS = P ⊙ (dP − Δ), stored as dSᵀ.
#pragma unroll
  for (int n = 0; n < 4; n++) {
    const int c = qc + n * 8 + tid * 2;
    const float d0 = f[kBq + c], d1 = f[kBq + c + 1];
#pragma unroll
    for (int m = 0; m < 2; m++) {
      const float* p = st[m][n];
      const int row = kr + m * 16 + gid;
      *reinterpret_cast<uint32_t*>(dSt + row * kLdP + c) =
          pack_bf16(p[0] * (dpt[m][n][0] - d0), p[1] * (dpt[m][n][1] - d1));
      *reinterpret_cast<uint32_t*>(dSt + (row + 8) * kLdP + c) =
          pack_bf16(p[2] * (dpt[m][n][2] - d0), p[3] * (dpt[m][n][3] - d1));
    }
  }
}

// Zeros for a warp's 32 × 32 piece of Pᵀ and dSᵀ whose pairs are all masked.
__device__ __forceinline__ void zero_tile(__nv_bfloat16* Pt, __nv_bfloat16* dSt, int kr, int qc, int lane) {
  const int gid = lane >> 2, tid = lane & 3;
#pragma unroll
  for (int m = 0; m < 4; m++)
#pragma unroll
    for (int n = 0; n < 4; n++) {
      const int off = (kr + m * 8 + gid) * kLdP + qc + n * 8 + tid * 2;
      *reinterpret_cast<uint32_t*>(Pt + off) = 0u;
      *reinterpret_cast<uint32_t*>(dSt + off) = 0u;
    }
}

// Step 2 for one warp: acc[32 keys from kr][D/2 columns from dc] += Aᵀ·B over the tile's 64 queries
// (A = Pᵀ or dSᵀ rows, B = dO or Q rows).
template <int D>
__device__ __forceinline__ void key_rows_update(float (*acc)[D / 16][4], const __nv_bfloat16* At, const __nv_bfloat16* B,
                                                int kr, int dc, int lane) {
#pragma unroll
  for (int kq = 0; kq < kBq / 16; kq++) {
    uint32_t a0[4], a1[4];
    ldsm_a(a0, At + kr * kLdP, kLdP, kq * 16, lane);
    ldsm_a(a1, At + (kr + 16) * kLdP, kLdP, kq * 16, lane);
#pragma unroll
    for (int np = 0; np < D / 32; np++) {
      uint32_t b[4];
      ldsm_bn2(b, B, kRow<D>, kq * 16, dc + np * 16, lane);
      mma_bf16(acc[0][2 * np], a0, b[0], b[1]);
      mma_bf16(acc[0][2 * np + 1], a0, b[2], b[3]);
      mma_bf16(acc[1][2 * np], a1, b[0], b[1]);
      mma_bf16(acc[1][2 * np + 1], a1, b[2], b[3]);
    }
  }
}

// Step 3 for one warp: dQ[32 queries from qc][D/4 columns from dc] = dS·K over the block's first
// `keys` keys (a multiple of 16; later keys have dS = 0), added to acc_g (row stride `stride`).
template <int D>
__device__ __forceinline__ void dq_update(const __nv_bfloat16* dSt, const __nv_bfloat16* Ks, float* __restrict__ acc_g,
                                          int64_t tok0, int valid, int64_t stride, int head, int qc, int dc, int keys,
                                          int lane) {
  constexpr int kN = D / 32;  // 8-column tiles per warp
  const int gid = lane >> 2, tid = lane & 3;
  float acc[2][kN][4];
#pragma unroll
  for (int m = 0; m < 2; m++)
#pragma unroll
    for (int n = 0; n < kN; n++) acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < kBk / 16; kk++) {
    if (kk * 16 >= keys) break;  // warp-uniform
    // dS[q][k] from dSᵀ[k][q] by ldmatrix.trans (pieces as in attention_bwd_fused.cu's dq_tile).
    const __nv_bfloat16* row = dSt + (kk * 16 + (lane & 7) + ((lane >> 4) << 3)) * kLdP + qc + ((lane >> 3) & 1) * 8;
    uint32_t a0[4], a1[4];
    ldsm_x4_t(a0, row);
    ldsm_x4_t(a1, row + 16);
#pragma unroll
    for (int np = 0; np < kN / 2; np++) {
      uint32_t b[4];
      ldsm_bn2(b, Ks, kRow<D>, kk * 16, dc + np * 16, lane);
      mma_bf16(acc[0][2 * np], a0, b[0], b[1]);
      mma_bf16(acc[0][2 * np + 1], a0, b[2], b[3]);
      mma_bf16(acc[1][2 * np], a1, b[0], b[1]);
      mma_bf16(acc[1][2 * np + 1], a1, b[2], b[3]);
    }
  }
  // Lane pairs swap halves so each lane holds four consecutive columns of one row.
  const bool odd = tid & 1;
#pragma unroll
  for (int m = 0; m < 2; m++) {
    const int row = qc + m * 16 + gid + (odd ? 8 : 0);
    float* dst = acc_g + (tok0 + row) * stride + (int64_t)head * D + dc + (tid >> 1) * 4;
#pragma unroll
    for (int n = 0; n < kN; n++) {
      const float g0 = __shfl_xor_sync(0xffffffffu, odd ? acc[m][n][0] : acc[m][n][2], 1);
      const float g1 = __shfl_xor_sync(0xffffffffu, odd ? acc[m][n][1] : acc[m][n][3], 1);
      if (row < valid) {
        if (odd)
          red_add4(dst + n * 8, g0, g1, acc[m][n][2], acc[m][n][3]);
        else
          red_add4(dst + n * 8, acc[m][n][0], acc[m][n][1], g0, g1);
      }
    }
  }
}

template <int D>
__device__ __forceinline__ void store_key_rows(const float (*acc)[D / 16][4], float scale, __nv_bfloat16* out, int64_t start,
                                               int row0, int len, int64_t stride, int head, int dc, int lane) {
  const int gid = lane >> 2, tid = lane & 3;
#pragma unroll
  for (int m = 0; m < 2; m++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int r = row0 + m * 16 + gid + h * 8;
      if (r >= len) continue;
      __nv_bfloat16* dst = out + (start + r) * stride + (int64_t)head * D + dc + tid * 2;
#pragma unroll
      for (int n = 0; n < D / 16; n++)
        *reinterpret_cast<__nv_bfloat162*>(dst + n * 8) =
            __floats2bfloat162_rn(acc[m][n][2 * h] * scale, acc[m][n][2 * h + 1] * scale);
    }
}

template <int D>
__global__ void __launch_bounds__(kThreads, 1) attention_bwd_q64_kernel(
    const __nv_bfloat16* __restrict__ dO, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse, const float* __restrict__ delta,
    const int32_t* __restrict__ cu, int64_t T, int Hq, int Hkv, int seqs, float scale, float* __restrict__ dq_acc,
    __nv_bfloat16* __restrict__ dk, __nv_bfloat16* __restrict__ dv) {
  extern __shared__ __align__(128) unsigned char smem[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* Vs = Ks + kBk * kRow<D>;
  __nv_bfloat16* stage = Vs + kBk * kRow<D>;
  __nv_bfloat16* Pt = stage + 4 * kBq * kRow<D>;
  __nv_bfloat16* dSt = Pt + kBk * kLdP;
  float* fst = reinterpret_cast<float*>(dSt + kBk * kLdP);  // layout: q64_smem
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int per_block = Hkv * seqs, kb = blockIdx.x / per_block;
  const int kvh = blockIdx.x % per_block % Hkv, seq = blockIdx.x % per_block / Hkv, group = Hq / Hkv;
  const int64_t start = cu[seq];
  const int len = cu[seq + 1] - (int)start;
  const int k0 = kb * kBk;
  if (k0 >= len) return;
  const int g = warp >> 1, half = warp & 1;
  const int kr = g * 32;  // this warp's key rows (steps 1, 2)
  const int key0 = k0 + kr;
  const float scale_log2 = scale * kLog2e;

  cp_tile<D, kBk, kThreads>(Ks, k, start + k0, len - k0, (int64_t)Hkv * D, kvh);
  cp_tile<D, kBk, kThreads>(Vs, v, start + k0, len - k0, (int64_t)Hkv * D, kvh);
  float dk_acc[2][D / 16][4], dv_acc[2][D / 16][4];
#pragma unroll
  for (int m = 0; m < 2; m++)
#pragma unroll
    for (int n = 0; n < D / 16; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) dk_acc[m][n][e] = dv_acc[m][n][e] = 0.f;

  const int nq = (len - k0 + kBq - 1) / kBq, tiles = nq * group;  // causal: queries from k0 on
  prefetch_q64<D>(stage, fst, 0, nq, k0, kvh, group, q, dO, lse, delta, start, len, T, Hq);  // K, V ride along
  for (int t = 0; t < tiles; t++) {
    cp_async_wait<0>();
    // Every warp has finished tile t − 1 (its stage, Pᵀ and dSᵀ): tile t + 1 may load, and Pᵀ/dSᵀ be rewritten.
    __syncthreads();
    if (t + 1 < tiles) prefetch_q64<D>(stage, fst, t + 1, nq, k0, kvh, group, q, dO, lse, delta, start, len, T, Hq);
    const int h = kvh * group + t / nq, q0 = tile_q0(t, nq, k0), b = t & 1;
    const __nv_bfloat16* Qs = stage + b * 2 * kBq * kRow<D>;
    const __nv_bfloat16* dOs = Qs + kBq * kRow<D>;
    const float* f = fst + b * 2 * kBq;
    const int qc = half * 32, qlo = q0 + qc;  // step 1: this warp's queries
    if (key0 > qlo + 31 || qlo >= len)
      zero_tile(Pt, dSt, kr, qc, lane);
    else if (key0 + 31 > qlo || qlo + 32 > len)
      scores_tile<D, true>(Ks, Vs, Qs, dOs, f, Pt, dSt, kr, qc, key0, q0, len, scale_log2, lane);
    else
      scores_tile<D, false>(Ks, Vs, Qs, dOs, f, Pt, dSt, kr, qc, key0, q0, len, scale_log2, lane);
    __syncthreads();  // Pᵀ and dSᵀ complete
    // Keys past this warp's last query have dS = 0: only the diagonal tiles stop early.
    const int keys = min(kBk, (qlo + 32 - k0 + 15) & ~15);
    if (key0 < q0 + kBq && key0 < len) {  // some of this warp's keys see some query of the tile
      key_rows_update<D>(dv_acc, Pt, dOs, kr, half * (D / 2), lane);
      key_rows_update<D>(dk_acc, dSt, Qs, kr, half * (D / 2), lane);
    }
    if (qlo < len)
      dq_update<D>(dSt, Ks, dq_acc, start + q0, len - q0, (int64_t)Hq * D, h, qc, g * (D / 4), keys, lane);
  }
  store_key_rows<D>(dv_acc, 1.f, dv, start, key0, len, (int64_t)Hkv * D, kvh, half * (D / 2), lane);
  store_key_rows<D>(dk_acc, scale, dk, start, key0, len, (int64_t)Hkv * D, kvh, half * (D / 2), lane);
}

}  // namespace

// The 64-query-tile backward for head dims 64 and 128 where the device grants q64_smem (sets
// *handled); otherwise *handled stays false and the caller runs attention_bwd_fused.cu's kernel.
tsl_status attention_bwd_q64(const void* dO, const void* q, const void* k, const void* v, const float* lse, const float* delta,
                             const int32_t* cu, int seqs, int max_len, int64_t T, int Hq, int Hkv, int D, float scale, void* dq,
                             void* dk, void* dv, bool* handled) {
  const char* op = "tsl_attention_bwd";
  using bf = __nv_bfloat16;
  *handled = false;
  if (D != 128 && D != 64) return TSL_OK;
  const size_t smem = D == 128 ? q64_smem<128>() : q64_smem<64>();
  int dev = 0, optin = 0;
  TSL_CUDA(op, cudaGetDevice(&dev));
  TSL_CUDA(op, cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  if ((size_t)optin < smem) return TSL_OK;
  *handled = true;
  const uint64_t n = (uint64_t)T * Hq * D;
  Scratch acc;
  TSL_TRY(scratch_alloc(op, n * 4, &acc.p));
  TSL_CUDA(op, cudaMemsetAsync(acc.p, 0, n * 4, compute_stream()));
  auto kernel = D == 128 ? attention_bwd_q64_kernel<128> : attention_bwd_q64_kernel<64>;
  TSL_CUDA(op, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  const uint64_t blocks = (uint64_t)((max_len + kBk - 1) / kBk) * Hkv * seqs;
  TSL_REQUIRE(op, blocks <= 0x7fffffffu,
              "one block per 128 keys, kv head and sequence must stay under 2^31 blocks, got %llu: split the batch",
              (unsigned long long)blocks);
  kernel<<<(unsigned)blocks, kThreads, smem, compute_stream()>>>((const bf*)dO, (const bf*)q, (const bf*)k, (const bf*)v, lse,
                                                                 delta, cu, T, Hq, Hkv, seqs, scale,
                                                                 static_cast<float*>(acc.p), (bf*)dk, (bf*)dv);
  TSL_CHECK_LAUNCH(op);
  return attention_dq_finish(static_cast<const float*>(acc.p), n, scale, dq);
}

}  // namespace tsl
