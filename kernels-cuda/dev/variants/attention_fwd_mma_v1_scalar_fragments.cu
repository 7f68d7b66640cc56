// Causal GQA attention forward with register-resident tiles (FlashAttention-2, Dao 2023) on the
// mma.sync m16n8k16 bf16 instruction (sm_80+). Each warp owns 16 query rows; a block of 4 warps
// shares 64-key K/V tiles in shared memory. The score accumulators of Q·Kᵀ are re-packed in
// registers as the A operand of P·V (the fragment layouts line up), and each thread knows which two
// rows its accumulators belong to, so the online-softmax rescaling never leaves registers. This
// replaces the WMMA version (attention_fwd_tc.cu) where the output had to live in shared memory.
#include <math.h>

#include "attention_mma.cuh"

namespace tsl {
namespace {

using namespace attn;

constexpr int kBQ = 64, kBK = 64, kWarps = 4;

template <int D>
__global__ void __launch_bounds__(kWarps * 32) attention_fwd_mma_kernel(
    const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v,
    const int32_t* __restrict__ cu, int64_t T, int Hq, int Hkv, float scale_log2, __nv_bfloat16* __restrict__ o,
    float* __restrict__ lse) {
  extern __shared__ __align__(128) unsigned char smem[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* Vs = Ks + kBK * kRow<D>;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int gid = lane >> 2, tid = lane & 3;  // mma fragment coordinates

  const int seq = blockIdx.z, h = blockIdx.y, kvh = h / (Hq / Hkv);
  const int64_t start = cu[seq];
  const int len = cu[seq + 1] - (int)start;
  const int q0 = blockIdx.x * kBQ;
  if (q0 >= len) return;
  const int row0 = q0 + warp * 16 + gid, row1 = row0 + 8;  // the two query rows this thread accumulates

  // Q fragments (A operand), staged through the V buffer.
  load_tile<D>(Vs, q, start + q0, len - q0, kBQ, (int64_t)Hq * D, h);
  __syncthreads();
  uint32_t qa[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) load_a(qa[kk], Vs + warp * 16 * kRow<D>, kRow<D>, kk * 16, gid, tid);
  float acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;

  const int k_end = min(len, q0 + kBQ);
  for (int k0 = 0; k0 < k_end; k0 += kBK) {
    __syncthreads();
    load_tile<D>(Ks, k, start + k0, len - k0, kBK, (int64_t)Hkv * D, kvh);
    load_tile<D>(Vs, v, start + k0, len - k0, kBK, (int64_t)Hkv * D, kvh);
    __syncthreads();
    // S = Q·Kᵀ: 8 tiles of 8 keys, 4 floats each (rows row0/row1, keys 2·tid and 2·tid+1).
    float s[kBK / 8][4];
#pragma unroll
    for (int n = 0; n < kBK / 8; n++) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++) {
        uint32_t kb[2];
        load_b_t(kb, Ks, kRow<D>, n * 8, kk * 16, gid, tid);
        mma_bf16(s[n], qa[kk], kb[0], kb[1]);
      }
    }
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int n = 0; n < kBK / 8; n++) {
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int kj = k0 + n * 8 + tid * 2 + e;
        s[n][e] = (kj <= row0 && kj < len) ? s[n][e] * scale_log2 : -INFINITY;
        s[n][2 + e] = (kj <= row1 && kj < len) ? s[n][2 + e] * scale_log2 : -INFINITY;
        mx0 = fmaxf(mx0, s[n][e]);
        mx1 = fmaxf(mx1, s[n][2 + e]);
      }
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
    const float b0 = n0 == -INFINITY ? 0.f : n0, b1 = n1 == -INFINITY ? 0.f : n1;  // fully masked rows stay finite
    const float c0 = exp2f(m0 - b0), c1 = exp2f(m1 - b1);
    float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
    for (int n = 0; n < kBK / 8; n++) {
      s[n][0] = exp2f(s[n][0] - b0);
      s[n][1] = exp2f(s[n][1] - b0);
      s[n][2] = exp2f(s[n][2] - b1);
      s[n][3] = exp2f(s[n][3] - b1);
      sum0 += s[n][0] + s[n][1];
      sum1 += s[n][2] + s[n][3];
    }
    sum0 += __shfl_xor_sync(0xffffffffu, sum0, 1);
    sum0 += __shfl_xor_sync(0xffffffffu, sum0, 2);
    sum1 += __shfl_xor_sync(0xffffffffu, sum1, 1);
    sum1 += __shfl_xor_sync(0xffffffffu, sum1, 2);
    l0 = l0 * c0 + sum0;
    l1 = l1 * c1 + sum1;
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
      uint32_t pa[4] = {pack_bf16(s[2 * j][0], s[2 * j][1]), pack_bf16(s[2 * j][2], s[2 * j][3]),
                        pack_bf16(s[2 * j + 1][0], s[2 * j + 1][1]), pack_bf16(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
      for (int n = 0; n < D / 8; n++) {
        uint32_t vb[2];
        load_b_n(vb, Vs, kRow<D>, j * 16, n * 8, gid, tid);
        mma_bf16(acc[n], pa, vb[0], vb[1]);
      }
    }
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
  const size_t smem = (size_t)2 * kBK * kRow<D> * 2;
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
