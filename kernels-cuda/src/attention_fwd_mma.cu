// Causal GQA attention forward with register-resident tiles (FlashAttention-2, Dao 2023) on the
// mma.sync m16n8k16 bf16 instruction (sm_80+). Each warp owns 16 query rows; a block of 4 warps
// shares 64-key K/V tiles in shared memory, loaded with cp.async two tiles deep so the next tile's
// loads overlap this tile's math, and read into fragments with ldmatrix (.trans for V). The score
// accumulators of Q·Kᵀ are re-packed in registers as the A operand of P·V (the fragment layouts
// line up), so the online-softmax rescaling never leaves registers. Only the diagonal tile needs
// the causal mask; blocks are issued longest-first so the causal triangle's heavy tiles don't form
// the tail. The previous version (scalar fragment loads, synchronous tiles) is kept in
// kernels-cuda/dev/variants/.
#include <math.h>

#include "attention_mma.cuh"

namespace tsl {
namespace {

using namespace attn;

constexpr int kBQ = 64, kBK = 64, kWarps = 4;

// One K/V tile: S = Q·Kᵀ, online softmax, O += P·V. kMask: the tile holds keys past some row.
template <int D, bool kMask>
__device__ __forceinline__ void fwd_tile(const uint32_t (*qa)[4], const __nv_bfloat16* Ks, const __nv_bfloat16* Vs, int k0,
                                         int row0, int row1, float scale_log2, float (*acc)[4], float& m0, float& m1,
                                         float& l0, float& l1, int lane) {
  const int tid = lane & 3;
  float s[kBK / 8][4];
#pragma unroll
  for (int n = 0; n < kBK / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
    for (int n = 0; n < kBK / 8; n += 2) {
      uint32_t kb[4];
      ldsm_bt2(kb, Ks, kRow<D>, n * 8, kk * 16, lane);
      mma_bf16(s[n], qa[kk], kb[0], kb[1]);
      mma_bf16(s[n + 1], qa[kk], kb[2], kb[3]);
    }
  }
  // Row maxima on the raw scores (the scale is positive), then p = 2^(s·scale·log2e − max) as one
  // FFMA and one ex2 per score.
  float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
  for (int n = 0; n < kBK / 8; n++) {
#pragma unroll
    for (int e = 0; e < 2; e++) {
      if (kMask) {
        const int kj = k0 + n * 8 + tid * 2 + e;
        if (kj > row0) s[n][e] = -INFINITY;
        if (kj > row1) s[n][2 + e] = -INFINITY;
      }
      mx0 = fmaxf(mx0, s[n][e]);
      mx1 = fmaxf(mx1, s[n][2 + e]);
    }
  }
  const float n0 = fmaxf(m0, quad_max(mx0) * scale_log2), n1 = fmaxf(m1, quad_max(mx1) * scale_log2);
  const float b0 = n0 == -INFINITY ? 0.f : n0, b1 = n1 == -INFINITY ? 0.f : n1;  // fully masked rows stay finite
  const float c0 = fast_exp2(m0 - b0), c1 = fast_exp2(m1 - b1);
  float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
  for (int n = 0; n < kBK / 8; n++) {
    s[n][0] = fast_exp2(fmaf(s[n][0], scale_log2, -b0));
    s[n][1] = fast_exp2(fmaf(s[n][1], scale_log2, -b0));
    s[n][2] = fast_exp2(fmaf(s[n][2], scale_log2, -b1));
    s[n][3] = fast_exp2(fmaf(s[n][3], scale_log2, -b1));
    sum0 += s[n][0] + s[n][1];
    sum1 += s[n][2] + s[n][3];
  }
  l0 = l0 * c0 + quad_sum(sum0);
  l1 = l1 * c1 + quad_sum(sum1);
  m0 = n0;
  m1 = n1;
#pragma unroll
  for (int n = 0; n < D / 8; n++) {
    acc[n][0] *= c0;
    acc[n][1] *= c0;
    acc[n][2] *= c1;
    acc[n][3] *= c1;
  }
  // O += P·V, P re-packed from the score accumulators (keys j·16 .. j·16+15 form one A operand).
#pragma unroll
  for (int j = 0; j < kBK / 16; j++) {
    const uint32_t pa[4] = {pack_bf16(s[2 * j][0], s[2 * j][1]), pack_bf16(s[2 * j][2], s[2 * j][3]),
                            pack_bf16(s[2 * j + 1][0], s[2 * j + 1][1]), pack_bf16(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
    for (int n = 0; n < D / 8; n += 2) {
      uint32_t vb[4];
      ldsm_bn2(vb, Vs, kRow<D>, j * 16, n * 8, lane);
      mma_bf16(acc[n], pa, vb[0], vb[1]);
      mma_bf16(acc[n + 1], pa, vb[2], vb[3]);
    }
  }
}

template <int D>
__global__ void __launch_bounds__(kWarps * 32, 3) attention_fwd_mma_kernel(
    const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v,
    const int32_t* __restrict__ cu, int64_t T, int Hq, int Hkv, float scale_log2, __nv_bfloat16* __restrict__ o,
    float* __restrict__ lse) {
  extern __shared__ __align__(128) unsigned char smem[];
  // Two stages of [K tile | V tile]; Q is staged through stage 1 before the loop needs it.
  __nv_bfloat16* const base = reinterpret_cast<__nv_bfloat16*>(smem);
  constexpr int kStage = 2 * kBK * kRow<D>;
  auto stage = [&](int i) { return base + i * kStage; };
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int gid = lane >> 2, tid = lane & 3;  // mma fragment coordinates

  const int seq = blockIdx.z, h = blockIdx.y, kvh = h / (Hq / Hkv);
  const int64_t start = cu[seq];
  const int len = cu[seq + 1] - (int)start;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kBQ;  // longest rows first
  if (q0 >= len) return;
  const int row0 = q0 + warp * 16 + gid, row1 = row0 + 8;  // the two query rows this thread accumulates
  const int64_t kv_stride = (int64_t)Hkv * D;

  cp_tile<D, kBQ, kWarps * 32>(stage(1), q, start + q0, len - q0, (int64_t)Hq * D, h);
  cp_async_commit();
  cp_tile<D, kBK, kWarps * 32>(stage(0), k, start, len, kv_stride, kvh);
  cp_tile<D, kBK, kWarps * 32>(stage(0) + kBK * kRow<D>, v, start, len, kv_stride, kvh);
  cp_async_commit();
  cp_async_wait<1>();
  __syncthreads();
  uint32_t qa[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) ldsm_a(qa[kk], stage(1) + warp * 16 * kRow<D>, kRow<D>, kk * 16, lane);
  __syncthreads();  // stage 1 is free for the second K/V tile

  float acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;

  const int tiles = (min(len, q0 + kBQ) + kBK - 1) / kBK;
  for (int t = 0; t < tiles; t++) {
    if (t + 1 < tiles) {
      const int kn = (t + 1) * kBK;
      __nv_bfloat16* st = stage((t + 1) & 1);
      cp_tile<D, kBK, kWarps * 32>(st, k, start + kn, len - kn, kv_stride, kvh);
      cp_tile<D, kBK, kWarps * 32>(st + kBK * kRow<D>, v, start + kn, len - kn, kv_stride, kvh);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const __nv_bfloat16* Ks = stage(t & 1);
    const int k0 = t * kBK;
    // Keys below q0 are visible to every row of the block; the tile reaching q0 is the diagonal.
    if (k0 + kBK > q0)
      fwd_tile<D, true>(qa, Ks, Ks + kBK * kRow<D>, k0, row0, row1, scale_log2, acc, m0, m1, l0, l1, lane);
    else
      fwd_tile<D, false>(qa, Ks, Ks + kBK * kRow<D>, k0, row0, row1, scale_log2, acc, m0, m1, l0, l1, lane);
    __syncthreads();  // everyone is done with this stage before it is refilled
  }
  const float i0 = 1.f / l0, i1 = 1.f / l1;
  const int64_t stride = (int64_t)Hq * D;
#pragma unroll
  for (int n = 0; n < D / 8; n++) {
    const int c = n * 8 + tid * 2;
    if (row0 < len)
      *reinterpret_cast<__nv_bfloat162*>(o + (start + row0) * stride + (int64_t)h * D + c) =
          __floats2bfloat162_rn(acc[n][0] * i0, acc[n][1] * i0);
    if (row1 < len)
      *reinterpret_cast<__nv_bfloat162*>(o + (start + row1) * stride + (int64_t)h * D + c) =
          __floats2bfloat162_rn(acc[n][2] * i1, acc[n][3] * i1);
  }
  if (tid == 0) {
    if (row0 < len) lse[(int64_t)h * T + start + row0] = (m0 + log2f(l0)) * 0.6931471805599453f;
    if (row1 < len) lse[(int64_t)h * T + start + row1] = (m1 + log2f(l1)) * 0.6931471805599453f;
  }
}

template <int D>
tsl_status launch_mma(const void* q, const void* k, const void* v, const int32_t* cu, int seqs, int max_len, int64_t T,
                      int Hq, int Hkv, float scale, void* o, float* lse) {
  const char* op = "tsl_attention_fwd";
  const size_t smem = (size_t)4 * kBK * kRow<D> * 2;  // two stages of K and V (Q staged inside)
  auto kernel = attention_fwd_mma_kernel<D>;
  TSL_CUDA(op, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  dim3 grid((max_len + kBQ - 1) / kBQ, Hq, seqs);
  kernel<<<grid, kWarps * 32, smem, compute_stream()>>>((const __nv_bfloat16*)q, (const __nv_bfloat16*)k,
                                                        (const __nv_bfloat16*)v, cu, T, Hq, Hkv,
                                                        scale * 1.4426950408889634f, (__nv_bfloat16*)o, lse);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

}  // namespace

tsl_status attention_fwd_mma(const void* q, const void* k, const void* v, const int32_t* cu, int seqs, int max_len,
                             int64_t T, int Hq, int Hkv, int D, float scale, void* o, float* lse, bool* handled) {
  *handled = true;
  switch (D) {
    case 64: return launch_mma<64>(q, k, v, cu, seqs, max_len, T, Hq, Hkv, scale, o, lse);
    case 128: return launch_mma<128>(q, k, v, cu, seqs, max_len, T, Hq, Hkv, scale, o, lse);
    default: *handled = false; return TSL_OK;
  }
}

}  // namespace tsl
