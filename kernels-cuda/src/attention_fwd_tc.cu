// Causal GQA attention forward on the tensor cores (WMMA bf16 16×16×16, f32 accumulation), the
// FlashAttention-2 loop (Dao 2023): a block of 4 warps owns 64 query rows of one head of one
// sequence, each warp 16 rows; Q stays in registers as WMMA fragments, K/V tiles of 64 keys pass
// through shared memory, scores and the running output live in per-warp shared tiles where the
// online softmax can address rows (WMMA fragments hide their row layout). Two lanes share a row.
#include <math.h>
#include <mma.h>

#include "attention.cuh"

namespace tsl {
namespace {

using namespace nvcuda;
using namespace attn;

constexpr int kBQ = 64, kBK = 64, kWarps = 4;
constexpr int kLdS = kBK + 4;  // f32 score row (multiple of 4, keeps 32-byte tile alignment)
constexpr int kLdP = kBK + 8;  // bf16 probability row

template <int D>
struct Smem {
  static constexpr int ldO = D + 4;
  static constexpr size_t k = 0;
  static constexpr size_t v = k + (size_t)kBK * kRow<D> * 2;
  static constexpr size_t s = v + (size_t)kBK * kRow<D> * 2;
  static constexpr size_t p = s + (size_t)kWarps * 16 * kLdS * 4;
  static constexpr size_t o = p + (size_t)kWarps * 16 * kLdP * 2;
  static constexpr size_t bytes = o + (size_t)kWarps * 16 * ldO * 4;
};

template <int D>
__global__ void __launch_bounds__(kWarps * 32) attention_fwd_tc_kernel(
    const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v,
    const int32_t* __restrict__ cu, int64_t T, int Hq, int Hkv, float scale_log2, __nv_bfloat16* __restrict__ o,
    float* __restrict__ lse) {
  using S = Smem<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(smem + S::k);
  __nv_bfloat16* Vs = reinterpret_cast<__nv_bfloat16*>(smem + S::v);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* Sw = reinterpret_cast<float*>(smem + S::s) + warp * 16 * kLdS;
  __nv_bfloat16* Pw = reinterpret_cast<__nv_bfloat16*>(smem + S::p) + warp * 16 * kLdP;
  float* Ow = reinterpret_cast<float*>(smem + S::o) + warp * 16 * S::ldO;

  const int seq = blockIdx.z, h = blockIdx.y, kvh = h / (Hq / Hkv);
  const int64_t start = cu[seq];
  const int len = cu[seq + 1] - (int)start;
  const int q0 = blockIdx.x * kBQ;
  if (q0 >= len) return;

  // Q tile staged through the V buffer into per-warp A fragments.
  load_tile<D>(Vs, q, start + q0, len - q0, kBQ, (int64_t)Hq * D, h);
  for (int i = lane; i < 16 * S::ldO; i += 32) Ow[i] = 0.f;
  __syncthreads();
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> qf[D / 16];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) wmma::load_matrix_sync(qf[kk], Vs + warp * 16 * kRow<D> + kk * 16, kRow<D>);

  const int r = lane >> 1, half = lane & 1;  // this lane's row in the warp's 16, and which 32 keys
  const int qi = q0 + warp * 16 + r;
  float m = -INFINITY, l = 0.f;
  const int k_end = min(len, q0 + kBQ);
  for (int k0 = 0; k0 < k_end; k0 += kBK) {
    __syncthreads();  // everyone is done with the previous K/V (and the staged Q)
    load_tile<D>(Ks, k, start + k0, len - k0, kBK, (int64_t)Hkv * D, kvh);
    load_tile<D>(Vs, v, start + k0, len - k0, kBK, (int64_t)Hkv * D, kvh);
    __syncthreads();
    // S = Q·Kᵀ for this warp's 16 rows and the tile's 64 keys.
#pragma unroll
    for (int n = 0; n < kBK / 16; n++) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> kf;
        wmma::load_matrix_sync(kf, Ks + n * 16 * kRow<D> + kk * 16, kRow<D>);
        wmma::mma_sync(acc, qf[kk], kf, acc);
      }
      wmma::store_matrix_sync(Sw + n * 16, acc, kLdS, wmma::mem_row_major);
    }
    __syncwarp();
    // Online softmax over this lane's 32 keys, combined with the row's other lane.
    float tile_max = -INFINITY;
    for (int c = half * 32; c < half * 32 + 32; c++) {
      const int kj = k0 + c;
      const float x = (kj <= qi && kj < len) ? Sw[r * kLdS + c] * scale_log2 : -INFINITY;
      Sw[r * kLdS + c] = x;
      tile_max = fmaxf(tile_max, x);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float m_new = fmaxf(m, tile_max);
    const float base = m_new == -INFINITY ? 0.f : m_new;
    const float corr = exp2f(m - base);
    float rowsum = 0.f;
    for (int c = half * 32; c < half * 32 + 32; c++) {
      const float p = exp2f(Sw[r * kLdS + c] - base);
      rowsum += p;
      Pw[r * kLdP + c] = __float2bfloat16(p);
    }
    rowsum += __shfl_xor_sync(0xffffffffu, rowsum, 1);
    l = l * corr + rowsum;
    m = m_new;
    // Once the running maxima settle, corr is exactly 1 for every row: skip the shared-memory pass.
    if (__any_sync(0xffffffffu, corr != 1.f))
      for (int c = half * (D / 2); c < half * (D / 2) + D / 2; c++) Ow[r * S::ldO + c] *= corr;
    __syncwarp();
    // O += P·V
#pragma unroll
    for (int n = 0; n < D / 16; n++) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, Ow + n * 16, S::ldO, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kBK / 16; kk++) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> pf;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> vf;
        wmma::load_matrix_sync(pf, Pw + kk * 16, kLdP);
        wmma::load_matrix_sync(vf, Vs + kk * 16 * kRow<D> + n * 16, kRow<D>);
        wmma::mma_sync(acc, pf, vf, acc);
      }
      wmma::store_matrix_sync(Ow + n * 16, acc, S::ldO, wmma::mem_row_major);
    }
    __syncwarp();
  }
  if (qi < len) {
    const float inv = 1.f / l;
    __nv_bfloat16* out = o + (start + qi) * (int64_t)Hq * D + (int64_t)h * D;
    for (int c = half * (D / 2); c < half * (D / 2) + D / 2; c += 2)
      *reinterpret_cast<__nv_bfloat162*>(out + c) = __floats2bfloat162_rn(Ow[r * S::ldO + c] * inv, Ow[r * S::ldO + c + 1] * inv);
    if (half == 0) lse[(int64_t)h * T + start + qi] = (m + log2f(l)) * 0.6931471805599453f;
  }
}

template <int D>
tsl_status launch_tc(const void* q, const void* k, const void* v, const int32_t* cu, int seqs, int max_len, int64_t T, int Hq,
                     int Hkv, float scale, void* o, float* lse) {
  const char* op = "tsl_attention_fwd";
  auto kernel = attention_fwd_tc_kernel<D>;
  TSL_CUDA(op, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)Smem<D>::bytes));
  dim3 grid((max_len + kBQ - 1) / kBQ, Hq, seqs);
  kernel<<<grid, kWarps * 32, Smem<D>::bytes, compute_stream()>>>((const __nv_bfloat16*)q, (const __nv_bfloat16*)k,
                                                                  (const __nv_bfloat16*)v, cu, T, Hq, Hkv,
                                                                  scale * 1.4426950408889634f, (__nv_bfloat16*)o, lse);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

}  // namespace

// Head dims with a tensor-core path; attention_fwd.cu falls back to the CUDA-core kernel for others.
tsl_status attention_fwd_tensor_cores(const void* q, const void* k, const void* v, const int32_t* cu, int seqs, int max_len,
                                      int64_t T, int Hq, int Hkv, int D, float scale, void* o, float* lse, bool* handled) {
  *handled = true;
  switch (D) {
    case 64: return launch_tc<64>(q, k, v, cu, seqs, max_len, T, Hq, Hkv, scale, o, lse);
    case 128: return launch_tc<128>(q, k, v, cu, seqs, max_len, T, Hq, Hkv, scale, o, lse);
    default: *handled = false; return TSL_OK;
  }
}

}  // namespace tsl
