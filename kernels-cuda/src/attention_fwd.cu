// Causal attention forward over packed sequences with grouped-query heads, FlashAttention-2 style
// (Dao 2023): a block owns BQ query rows of one head of one sequence and streams that sequence's
// key/value tiles through shared memory with an online softmax, so no T×T matrix ever exists. Four
// threads share a query row (scores for every 4th key, every 4th output column), keeping the
// per-thread state at D/4 + BK/4 floats. This is the plain tiled version on CUDA cores, kept for head
// dims without a tensor-core kernel (attention_fwd_mma32.cu, attention_fwd_mma.cu) and as their reference
// (TSLOTH_ATTENTION=simple selects it for every head dim).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.cuh"

namespace tsl {

tsl_status attention_fwd_tensor_cores(const void* q, const void* k, const void* v, const int32_t* cu, int seqs, int max_len,
                                      int64_t T, int Hq, int Hkv, int D, float scale, void* o, float* lse, bool* handled);
tsl_status attention_fwd_mma(const void* q, const void* k, const void* v, const int32_t* cu, int seqs, int max_len,
                             int64_t T, int Hq, int Hkv, int D, float scale, void* o, float* lse, bool* handled);
tsl_status attention_fwd_mma32(const char* mode, const void* q, const void* k, const void* v, const int32_t* cu, int seqs,
                               int max_len, int64_t T, int Hq, int Hkv, int D, float scale, void* o, float* lse,
                               bool* handled);

namespace {

using namespace attn;

template <int D, int BQ, int BK>
__global__ void __launch_bounds__(BQ * 4) attention_fwd_kernel(
    const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v,
    const int32_t* __restrict__ cu, int64_t T, int Hq, int Hkv, float scale_log2, __nv_bfloat16* __restrict__ o,
    float* __restrict__ lse) {
  extern __shared__ __align__(16) unsigned char smem[];
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* Ks = Qs + BQ * kRow<D>;
  __nv_bfloat16* Vs = Ks + BK * kRow<D>;
  float* Ps = reinterpret_cast<float*>(Vs + BK * kRow<D>);  // [BQ][BK + 1]

  const int seq = blockIdx.z, h = blockIdx.y, kvh = h / (Hq / Hkv);
  const int64_t start = cu[seq];
  const int len = cu[seq + 1] - (int)start;
  const int q0 = blockIdx.x * BQ;
  if (q0 >= len) return;
  const int r = threadIdx.x >> 2, sub = threadIdx.x & 3;
  const int qi = q0 + r;  // this row's position within the sequence

  load_tile<D>(Qs, q, start + q0, len - q0, BQ, (int64_t)Hq * D, h);
  float acc[D / 4];
#pragma unroll
  for (int i = 0; i < D / 4; i++) acc[i] = 0.f;
  float m = -INFINITY, l = 0.f;

  const int k_end = min(len, q0 + BQ);  // causal: no key past the tile's last query
  for (int k0 = 0; k0 < k_end; k0 += BK) {
    __syncthreads();  // the previous tile's readers are done
    load_tile<D>(Ks, k, start + k0, len - k0, BK, (int64_t)Hkv * D, kvh);
    load_tile<D>(Vs, v, start + k0, len - k0, BK, (int64_t)Hkv * D, kvh);
    __syncthreads();
    float s[BK / 4];
    float tile_max = -INFINITY;
#pragma unroll
    for (int j = 0; j < BK / 4; j++) {
      const int c = sub + 4 * j, kj = k0 + c;
      float x = dot_rows<D>(Qs + r * kRow<D>, Ks + c * kRow<D>) * scale_log2;
      s[j] = (kj <= qi && kj < len) ? x : -INFINITY;
      tile_max = fmaxf(tile_max, s[j]);
    }
    tile_max = quad_max(tile_max);
    const float m_new = fmaxf(m, tile_max);
    // Rows past the sequence end see only masked keys; keep their arithmetic finite.
    const float base = m_new == -INFINITY ? 0.f : m_new;
    const float corr = exp2f(m - base);
    float rowsum = 0.f;
#pragma unroll
    for (int j = 0; j < BK / 4; j++) {
      const float p = exp2f(s[j] - base);
      rowsum += p;
      Ps[r * (BK + 1) + sub + 4 * j] = p;
    }
    l = l * corr + quad_sum(rowsum);
    m = m_new;
    __syncwarp();
#pragma unroll
    for (int i = 0; i < D / 4; i++) acc[i] *= corr;
    for (int c = 0; c < BK; c++) {
      const float p = Ps[r * (BK + 1) + c];
#pragma unroll
      for (int i = 0; i < D / 4; i++) acc[i] = fmaf(p, __bfloat162float(Vs[c * kRow<D> + sub + 4 * i]), acc[i]);
    }
    __syncwarp();
  }
  if (qi < len) {
    const float inv = 1.f / l;
    __nv_bfloat16* out = o + (start + qi) * (int64_t)Hq * D + (int64_t)h * D;
#pragma unroll
    for (int i = 0; i < D / 4; i++) out[sub + 4 * i] = __float2bfloat16(acc[i] * inv);
    if (sub == 0) lse[(int64_t)h * T + start + qi] = (m + log2f(l)) * 0.6931471805599453f;
  }
}

template <int D, int BQ, int BK>
tsl_status launch(const void* q, const void* k, const void* v, const int32_t* cu, int seqs, int max_len, int64_t T, int Hq,
                  int Hkv, float scale, void* o, float* lse) {
  const char* op = "tsl_attention_fwd";
  const size_t smem = (size_t)(BQ + 2 * BK) * kRow<D> * 2 + (size_t)BQ * (BK + 1) * 4;
  auto kernel = attention_fwd_kernel<D, BQ, BK>;
  TSL_CUDA(op, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  dim3 grid((max_len + BQ - 1) / BQ, Hq, seqs);
  kernel<<<grid, BQ * 4, smem, compute_stream()>>>((const __nv_bfloat16*)q, (const __nv_bfloat16*)k, (const __nv_bfloat16*)v,
                                                   cu, T, Hq, Hkv, scale * 1.4426950408889634f, (__nv_bfloat16*)o, lse);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" tsl_status tsl_attention_fwd(const void* d_q, const void* d_k, const void* d_v, const int32_t* d_cu_seqlens,
                                        int32_t num_seqs, int32_t max_seqlen, int64_t T, int32_t Hq, int32_t Hkv, int32_t D,
                                        float scale, void* d_o, float* d_lse) {
  const char* op = "tsl_attention_fwd";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, Hq > 0 && Hkv > 0 && Hq % Hkv == 0, "query heads (%d) must be a multiple of kv heads (%d)", Hq, Hkv);
  TSL_REQUIRE(op, num_seqs >= 0 && num_seqs <= 65535 && max_seqlen >= 0, "bad sequence count %d / max length %d", num_seqs, max_seqlen);
  TSL_REQUIRE(op, attn::aligned16(d_q) && attn::aligned16(d_k) && attn::aligned16(d_v), "q, k, v must be 16-byte aligned");
  if (T == 0 || num_seqs == 0 || max_seqlen == 0) return TSL_OK;
  // Kernel choice: mma.sync with 32 query rows per warp (attention_fwd_mma32.cu) for head dims 64
  // and 128, then mma.sync with 16 rows per warp (attention_fwd_mma.cu) where that one does not apply
  // (less than 104 KB of shared memory per block, as on sm_86/sm_89 at D 128) or where
  // TSLOTH_ATTENTION_FWD=rows16 asks for it (rows32w2: the 32-row kernel in 2-warp blocks; both for
  // timing in kernels-cuda/dev/bench_attention.py), else this file's CUDA-core kernel.
  // TSLOTH_ATTENTION=wmma|simple selects the older versions (kept as references).
  const char* force = getenv("TSLOTH_ATTENTION");
  const bool simple = force && strcmp(force, "simple") == 0, wmma = force && strcmp(force, "wmma") == 0;
  if (!simple) {
    bool handled = false;
    tsl_status st = TSL_OK;
    if (wmma)
      st = attention_fwd_tensor_cores(d_q, d_k, d_v, d_cu_seqlens, num_seqs, max_seqlen, T, Hq, Hkv, D, scale, d_o, d_lse,
                                      &handled);
    else
      st = attention_fwd_mma32(getenv("TSLOTH_ATTENTION_FWD"), d_q, d_k, d_v, d_cu_seqlens, num_seqs, max_seqlen, T, Hq,
                               Hkv, D, scale, d_o, d_lse, &handled);
    if (!wmma && !handled && st == TSL_OK)
      st = attention_fwd_mma(d_q, d_k, d_v, d_cu_seqlens, num_seqs, max_seqlen, T, Hq, Hkv, D, scale, d_o, d_lse, &handled);
    if (handled || st != TSL_OK) return st;
  }
  switch (D) {
    case 16: return launch<16, 64, 64>(d_q, d_k, d_v, d_cu_seqlens, num_seqs, max_seqlen, T, Hq, Hkv, scale, d_o, d_lse);
    case 32: return launch<32, 64, 64>(d_q, d_k, d_v, d_cu_seqlens, num_seqs, max_seqlen, T, Hq, Hkv, scale, d_o, d_lse);
    case 64: return launch<64, 64, 64>(d_q, d_k, d_v, d_cu_seqlens, num_seqs, max_seqlen, T, Hq, Hkv, scale, d_o, d_lse);
    case 128: return launch<128, 64, 64>(d_q, d_k, d_v, d_cu_seqlens, num_seqs, max_seqlen, T, Hq, Hkv, scale, d_o, d_lse);
    case 256: return launch<256, 32, 32>(d_q, d_k, d_v, d_cu_seqlens, num_seqs, max_seqlen, T, Hq, Hkv, scale, d_o, d_lse);
    default: return fail(TSL_ERR_INVALID, op, "head_dim %d is not supported (16, 32, 64, 128 or 256)", D);
  }
}
