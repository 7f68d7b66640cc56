// Causal GQA attention backward in one pass over key blocks (FlashAttention-2, Dao 2023, §3.2 and
// Algorithm 2), so S and dP are computed once per (key, query) pair: 5 matmuls per tile instead of
// the two-pass backward's 7 (attention_bwd_mma.cu's dQ pass plus this kernel without dQ).
//   Each warp owns 16 keys (a block kWarps × 16), streams 32-query tiles of every query head in its
//   kv group: Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ, dV += Pᵀ·dO, dK += dSᵀ·Q (attention_bwd_tiles.cuh), and with kDq
//   writes its dSᵀ rows (bf16) to shared memory; after a barrier the block computes the tile's
//   dQ[q, :] = Σ_k dS[q,k]·K[k,:] over all its keys (warp w: 16 queries × D / (kWarps/2) columns,
//   dS read back through ldmatrix.trans) and adds it to an fp32 accumulator [T, Hq, D] with
//   red.global.add.v4.f32 on sm_90 (scalar atomicAdd elsewhere). A last kernel writes dQ = scale · acc.
// Runs where attention_bwd_q64.cu's 64-query-tile kernel (the default, 30% faster on an H100) does
// not fit the device's shared memory, and with TSLOTH_ATTENTION_BWD=fused: 128-key blocks (8 warps)
// where the device grants their shared memory (D 128 needs 113 KB, more than sm_86/sm_89's 99 KB)
// and they keep as many warps resident as 64-key blocks (4 warps) do, else 64-key blocks. fp32 atomics make dQ's summation order vary from
// run to run (last-bit differences); TSLOTH_ATTENTION_BWD=split gives the deterministic two-pass dQ.
//
// Predicted before measuring: bwd 1 × 8192 (Llama-3.1-8B heads) 6–7 ms on an H200 against the two-pass
// 8.19 ms, from 160 mma per warp and tile against 224, plus ≈ 0.5–1 ms of dQ atomics. Measured on an
// H100 (kernels-cuda/dev/bench_attention.py, bench/NOTES.md): 7.54–7.61 ms against 8.13 (−7%); 4 × 2048
// unchanged (2.24 ms both); D 64 4.41 against 4.57. The atomics and the block-wide dQ step cost more
// than predicted; the 8B 1 × 8192 training step went from 7,260 to 7,453 tokens/s (+2.7%).
#include <stdlib.h>
#include <string.h>

#include "attention_bwd_tiles.cuh"

namespace tsl {

tsl_status attention_bwd_q64(const void* dO, const void* q, const void* k, const void* v, const float* lse, const float* delta,
                             const int32_t* cu, int seqs, int max_len, int64_t T, int Hq, int Hkv, int D, float scale, void* dq,
                             void* dk, void* dv, bool* handled);

namespace {


// [K | V (16·kWarps rows each) | stage 0: Q 32, dO 32 | stage 1: Q 32, dO 32 | dSᵀ (kDq only) | lse, Δ per stage]
template <int D, int kWarps, bool kDq>
constexpr size_t fused_smem() {
  return (size_t)(2 * 16 * kWarps + 4 * kTile) * kRow<D> * 2 + (kDq ? (size_t)16 * kWarps * kLdS * 2 : 0) + 4 * kTile * 4;
}


// The tile's dQ contribution over the block's keys, added into acc (fp32 [T, Hq, D]). Warp w takes
// queries (w & 1) · 16.. and columns (w >> 1) · kCols..; dS[q][k] comes from dSᵀ by ldmatrix.trans.
template <int D, int kWarps>
__device__ __forceinline__ void dq_tile(const __nv_bfloat16* dSs, const __nv_bfloat16* Ks, float* __restrict__ acc_g,
                                        int64_t tok0, int valid, int64_t stride, int head, int warp, int lane) {
  constexpr int kCols = D / (kWarps / 2), kN = kCols / 8;
  static_assert(kN % 2 == 0, "column share must be a multiple of 16");
  const int gid = lane >> 2, tid = lane & 3, m0 = (warp & 1) * 16, c0 = (warp >> 1) * kCols;
  float acc[kN][4];
#pragma unroll
  for (int n = 0; n < kN; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
#pragma unroll
  for (int ks = 0; ks < kWarps; ks++) {  // 16 keys per step
    uint32_t a[4];
    // Four 8×8 pieces of dSᵀ (rows = keys): lanes 0–7 keys 0–7 / queries 0–7, 8–15 keys 0–7 / queries
    // 8–15, 16–23 keys 8–15 / queries 0–7, 24–31 keys 8–15 / queries 8–15; .trans makes them a0..a3.
    ldsm_x4_t(a, dSs + (ks * 16 + (lane & 7) + ((lane >> 4) << 3)) * kLdS + m0 + ((lane >> 3) & 1) * 8);
#pragma unroll
    for (int n = 0; n < kN; n += 2) {
      uint32_t b[4];
      ldsm_bn2(b, Ks, kRow<D>, ks * 16, c0 + n * 8, lane);
      mma_bf16(acc[n], a, b[0], b[1]);
      mma_bf16(acc[n + 1], a, b[2], b[3]);
    }
  }
  // Lane pairs swap halves so each lane holds four consecutive columns of one row: even tid row
  // m0 + gid, odd tid row m0 + gid + 8, columns 4 · (tid / 2)...
  const bool odd = tid & 1;
  const int row = m0 + gid + (odd ? 8 : 0);
  float* dst = acc_g + (tok0 + row) * stride + (int64_t)head * D + c0 + (tid >> 1) * 4;
#pragma unroll
  for (int n = 0; n < kN; n++) {
    const float g0 = __shfl_xor_sync(0xffffffffu, odd ? acc[n][0] : acc[n][2], 1);
    const float g1 = __shfl_xor_sync(0xffffffffu, odd ? acc[n][1] : acc[n][3], 1);
    if (row < valid) {
      if (odd)
        red_add4(dst + n * 8, g0, g1, acc[n][2], acc[n][3]);
      else
        red_add4(dst + n * 8, acc[n][0], acc[n][1], g0, g1);
    }
  }
}


// The key-block pass: dK, dV and, with kDq, each query tile's dQ contribution (atomics into dq_acc).
template <int D, int kWarps, bool kDq>
__global__ void __launch_bounds__(kWarps * 32) attention_bwd_fused_kernel(
    const __nv_bfloat16* __restrict__ dO, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse, const float* __restrict__ delta,
    const int32_t* __restrict__ cu, int64_t T, int Hq, int Hkv, float scale, float* __restrict__ dq_acc,
    __nv_bfloat16* __restrict__ dk, __nv_bfloat16* __restrict__ dv) {
  constexpr int kThreads = kWarps * 32, kKeys = kWarps * 16;
  extern __shared__ __align__(128) unsigned char smem[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* Vs = Ks + kKeys * kRow<D>;
  __nv_bfloat16* qbase = Vs + kKeys * kRow<D>;
  __nv_bfloat16* dSs = qbase + 4 * kTile * kRow<D>;
  float* fbase = reinterpret_cast<float*>(kDq ? dSs + kKeys * kLdS : dSs);  // layout: fused_smem
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2, tid = lane & 3;
  const int seq = blockIdx.z, kvh = blockIdx.y, group = Hq / Hkv;
  const int64_t start = cu[seq];
  const int len = cu[seq + 1] - (int)start;
  const int k0 = blockIdx.x * kKeys;  // lowest keys (the most queries) first
  if (k0 >= len) return;
  const int r0 = k0 + warp * 16 + gid, r1 = r0 + 8;  // this thread's two key rows
  const int warp_key_max = k0 + warp * 16 + 15;
  const __nv_bfloat16* Kw = Ks + warp * 16 * kRow<D>;
  const __nv_bfloat16* Vw = Vs + warp * 16 * kRow<D>;
  __nv_bfloat16* dSw = dSs + warp * 16 * kLdS;
  const float scale_log2 = scale * kLog2e;

  cp_tile<D, kKeys, kThreads>(Ks, k, start + k0, len - k0, (int64_t)Hkv * D, kvh);
  cp_tile<D, kKeys, kThreads>(Vs, v, start + k0, len - k0, (int64_t)Hkv * D, kvh);
  float dk_acc[D / 8][4], dv_acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) dk_acc[n][e] = dv_acc[n][e] = 0.f;

  const int qfirst = k0;  // causal: earlier queries see none of these keys (k0 is a multiple of kTile)
  const int nq = (len - qfirst + kTile - 1) / kTile, tiles = nq * group;
  prefetch<D, kThreads>(qbase, fbase, 0, nq, qfirst, kvh, group, q, dO, lse, delta, start, len, T, Hq);  // K, V ride along
  for (int t = 0; t < tiles; t++) {
    cp_async_wait<0>();
    // After this barrier every warp has finished tile t − 1 (its stage and dSᵀ reads), so tile t + 1
    // may load into the other stage while this one is computed.
    __syncthreads();
    if (t + 1 < tiles) prefetch<D, kThreads>(qbase, fbase, t + 1, nq, qfirst, kvh, group, q, dO, lse, delta, start, len, T, Hq);
    const int h = kvh * group + t / nq, q0 = qfirst + (t % nq) * kTile, b = t & 1;
    const __nv_bfloat16* Qs = qbase + b * 2 * kTile * kRow<D>;
    const float* f = fbase + b * 2 * kTile;
    if (q0 < warp_key_max || q0 + kTile > len)
      dkdv_tile<D, true, kDq>(Kw, Vw, Qs, Qs + kTile * kRow<D>, f, f + kTile, q0, r0, r1, len, scale_log2, dk_acc, dv_acc, dSw, lane);
    else
      dkdv_tile<D, false, kDq>(Kw, Vw, Qs, Qs + kTile * kRow<D>, f, f + kTile, q0, r0, r1, len, scale_log2, dk_acc, dv_acc, dSw, lane);
    if constexpr (kDq) {
      __syncthreads();  // all of dSᵀ written
      dq_tile<D, kWarps>(dSs, Ks, dq_acc, start + q0, len - q0, (int64_t)Hq * D, h, warp, lane);
    }
  }
  store_pair_rows<D>(dv_acc, 1.f, dv, start, r0, r1, len, (int64_t)Hkv * D, kvh, tid);
  store_pair_rows<D>(dk_acc, scale, dk, start, r0, r1, len, (int64_t)Hkv * D, kvh, tid);
}

// dq = bf16(scale · acc), four elements per thread (n is a multiple of 4: D is 64 or 128).
__global__ void dq_finish_kernel(const float4* __restrict__ acc, uint64_t n4, float scale, __nv_bfloat162* __restrict__ dq) {
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n4; i += (uint64_t)gridDim.x * blockDim.x) {
    const float4 a = acc[i];
    dq[2 * i] = __floats2bfloat162_rn(a.x * scale, a.y * scale);
    dq[2 * i + 1] = __floats2bfloat162_rn(a.z * scale, a.w * scale);
  }
}

enum class Width { kAuto, k64, k128 };

template <int D, int kWarps, bool kDq>
tsl_status launch(const void* dO, const void* q, const void* k, const void* v, const float* lse, const float* delta,
                  const int32_t* cu, int seqs, int max_len, int64_t T, int Hq, int Hkv, float scale, float* acc, void* dk,
                  void* dv) {
  const char* op = "tsl_attention_bwd";
  using bf = __nv_bfloat16;
  constexpr int kKeys = kWarps * 16;
  const size_t smem = fused_smem<D, kWarps, kDq>();
  auto kernel = attention_bwd_fused_kernel<D, kWarps, kDq>;
  TSL_CUDA(op, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  kernel<<<dim3((max_len + kKeys - 1) / kKeys, Hkv, seqs), kWarps * 32, smem, compute_stream()>>>(
      (const bf*)dO, (const bf*)q, (const bf*)k, (const bf*)v, lse, delta, cu, T, Hq, Hkv, scale, acc, (bf*)dk, (bf*)dv);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

template <int D>
tsl_status run(const void* dO, const void* q, const void* k, const void* v, const float* lse, const float* delta,
               const int32_t* cu, int seqs, int max_len, int64_t T, int Hq, int Hkv, float scale, void* dq, void* dk, void* dv,
               bool wide) {
  const char* op = "tsl_attention_bwd";
  const uint64_t n = (uint64_t)T * Hq * D;
  Scratch acc;
  TSL_TRY(scratch_alloc(op, n * 4, &acc.p));
  TSL_CUDA(op, cudaMemsetAsync(acc.p, 0, n * 4, compute_stream()));
  float* a = static_cast<float*>(acc.p);
  const tsl_status st = wide ? launch<D, 8, true>(dO, q, k, v, lse, delta, cu, seqs, max_len, T, Hq, Hkv, scale, a, dk, dv)
                             : launch<D, 4, true>(dO, q, k, v, lse, delta, cu, seqs, max_len, T, Hq, Hkv, scale, a, dk, dv);
  if (st != TSL_OK) return st;
  dq_finish_kernel<<<blocks_for(n / 4, 256), 256, 0, compute_stream()>>>(static_cast<const float4*>(acc.p), n / 4, scale,
                                                                        static_cast<__nv_bfloat162*>(dq));
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

// Key-block width: 128 keys (half the dQ atomics of 64) where the device grants the shared memory
// and, unless `want` forces it, where as many warps stay resident per SM as with 64-key blocks
// (D 128: 8 either way; D 64: 8 against 12, as 166 registers × 256 threads leave room for one block).
template <int D>
tsl_status pick_wide(Width want, bool* wide) {
  const char* op = "tsl_attention_bwd";
  *wide = false;
  if (want == Width::k64) return TSL_OK;
  int dev = 0, optin = 0;
  TSL_CUDA(op, cudaGetDevice(&dev));
  TSL_CUDA(op, cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  if ((size_t)optin < fused_smem<D, 8, true>()) return TSL_OK;
  if (want == Width::k128) {
    *wide = true;
    return TSL_OK;
  }
  int blocks8 = 0, blocks4 = 0;
  TSL_CUDA(op, cudaFuncSetAttribute(attention_bwd_fused_kernel<D, 8, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)fused_smem<D, 8, true>()));
  TSL_CUDA(op, cudaFuncSetAttribute(attention_bwd_fused_kernel<D, 4, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)fused_smem<D, 4, true>()));
  TSL_CUDA(op, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks8, attention_bwd_fused_kernel<D, 8, true>, 256,
                                                             fused_smem<D, 8, true>()));
  TSL_CUDA(op, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks4, attention_bwd_fused_kernel<D, 4, true>, 128,
                                                             fused_smem<D, 4, true>()));
  *wide = blocks8 > 0 && 2 * blocks8 >= blocks4;
  return TSL_OK;
}

}  // namespace

// The single-pass backward for head dims 64 and 128 (sets *handled). By default the 64-query-tile
// kernel of attention_bwd_q64.cu where the device grants its shared memory, else this file's kernel
// with the block width chosen by pick_wide. TSLOTH_ATTENTION_BWD: q64 (the same default, named),
// fused (this file's kernel, width by pick_wide), fused64 or fused128 (a forced width; 128 only where
// the shared memory allows), split (leaves *handled false: the caller runs the two-pass backward,
// deterministic dQ). Other head dims leave *handled false too.
tsl_status attention_bwd_fused(const void* dO, const void* q, const void* k, const void* v, const float* lse,
                               const float* delta, const int32_t* cu, int seqs, int max_len, int64_t T, int Hq, int Hkv, int D,
                               float scale, void* dq, void* dk, void* dv, bool* handled) {
  const char* op = "tsl_attention_bwd";
  *handled = false;
  const char* mode = getenv("TSLOTH_ATTENTION_BWD");
  const bool automatic = !mode || !*mode || strcmp(mode, "q64") == 0;
  Width want = Width::kAuto;
  if (automatic || strcmp(mode, "fused") == 0)
    want = Width::kAuto;
  else if (strcmp(mode, "fused64") == 0)
    want = Width::k64;
  else if (strcmp(mode, "fused128") == 0)
    want = Width::k128;
  else if (strcmp(mode, "split") == 0)
    return TSL_OK;
  else
    TSL_REQUIRE(op, false, "TSLOTH_ATTENTION_BWD must be q64, fused, fused64, fused128 or split, got \"%s\"", mode);
  if (D != 64 && D != 128) return TSL_OK;
  if (automatic) {
    TSL_TRY(attention_bwd_q64(dO, q, k, v, lse, delta, cu, seqs, max_len, T, Hq, Hkv, D, scale, dq, dk, dv, handled));
    if (*handled) return TSL_OK;
  }
  *handled = true;
  bool wide = false;
  if (D == 64) {
    TSL_TRY(pick_wide<64>(want, &wide));
    return run<64>(dO, q, k, v, lse, delta, cu, seqs, max_len, T, Hq, Hkv, scale, dq, dk, dv, wide);
  }
  TSL_TRY(pick_wide<128>(want, &wide));
  return run<128>(dO, q, k, v, lse, delta, cu, seqs, max_len, T, Hq, Hkv, scale, dq, dk, dv, wide);
}

// dq = bf16(scale · acc) for the single-pass backwards' fp32 accumulator (n elements, a multiple of 4).
tsl_status attention_dq_finish(const float* acc, uint64_t n, float scale, void* dq) {
  dq_finish_kernel<<<blocks_for(n / 4, 256), 256, 0, compute_stream()>>>(reinterpret_cast<const float4*>(acc), n / 4, scale,
                                                                        static_cast<__nv_bfloat162*>(dq));
  TSL_CHECK_LAUNCH("tsl_attention_bwd");
  return TSL_OK;
}

// dK and dV alone (64-key blocks), for the two-pass backward of attention_bwd_mma.cu.
tsl_status attention_bwd_key_pass(const void* dO, const void* q, const void* k, const void* v, const float* lse,
                                  const float* delta, const int32_t* cu, int seqs, int max_len, int64_t T, int Hq, int Hkv,
                                  int D, float scale, void* dk, void* dv) {
  if (D == 64) return launch<64, 4, false>(dO, q, k, v, lse, delta, cu, seqs, max_len, T, Hq, Hkv, scale, nullptr, dk, dv);
  return launch<128, 4, false>(dO, q, k, v, lse, delta, cu, seqs, max_len, T, Hq, Hkv, scale, nullptr, dk, dv);
}

}  // namespace tsl
