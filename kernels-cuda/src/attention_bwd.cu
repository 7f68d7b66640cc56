// Causal GQA attention backward over packed sequences, FlashAttention-2 style (Dao 2023): P is
// recomputed from the forward's lse, never stored. Three launches, no atomics (deterministic):
//   1. Δ[h,t] = Σ_d dO·O
//   2. dQ: a block owns BQ query rows of a head and streams key/value tiles (like the forward)
//   3. dK, dV: a block owns BK key rows of a kv head and streams the query tiles of every query
//      head in its group, accumulating in registers, so GQA needs no reduction afterwards.
// These are the CUDA-core kernels; head dims 64 and 128 go to the tensor-core versions
// (attention_bwd_mma.cu by default, attention_bwd_tc.cu with TSLOTH_ATTENTION=wmma).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.cuh"

namespace tsl {

tsl_status attention_bwd_tensor_cores(const void* dO, const void* q, const void* k, const void* v, const float* lse,
                                      const float* delta, const int32_t* cu, int seqs, int max_len, int64_t T, int Hq,
                                      int Hkv, int D, float scale, void* dq, void* dk, void* dv, bool* handled);
tsl_status attention_bwd_mma(const void* dO, const void* q, const void* k, const void* v, const float* lse, const float* delta,
                             const int32_t* cu, int seqs, int max_len, int64_t T, int Hq, int Hkv, int D, float scale, void* dq,
                             void* dk, void* dv, bool* handled);
tsl_status attention_bwd_fused(const void* dO, const void* q, const void* k, const void* v, const float* lse,
                               const float* delta, const int32_t* cu, int seqs, int max_len, int64_t T, int Hq, int Hkv, int D,
                               float scale, void* dq, void* dk, void* dv, bool* handled);

namespace {

using namespace attn;

__global__ void attention_delta_kernel(const __nv_bfloat16* __restrict__ dO, const __nv_bfloat16* __restrict__ o, int64_t T,
                                       int Hq, int D, float* __restrict__ delta) {
  const int64_t w = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5;  // one warp per (t, h)
  if (w >= T * Hq) return;
  const int64_t t = w / Hq;
  const int h = (int)(w % Hq);
  const int64_t base = t * Hq * D + (int64_t)h * D;
  float acc = 0.f;
  for (int d = threadIdx.x & 31; d < D; d += 32) acc += __bfloat162float(dO[base + d]) * __bfloat162float(o[base + d]);
  acc = warp_sum(acc);
  if ((threadIdx.x & 31) == 0) delta[(int64_t)h * T + t] = acc;
}

template <int D, int BQ, int BK>
__global__ void __launch_bounds__(BQ * 4) attention_dq_kernel(
    const __nv_bfloat16* __restrict__ dO, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse, const float* __restrict__ delta,
    const int32_t* __restrict__ cu, int64_t T, int Hq, int Hkv, float scale, __nv_bfloat16* __restrict__ dq) {
  extern __shared__ __align__(16) unsigned char smem[];
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* dOs = Qs + BQ * kRow<D>;
  __nv_bfloat16* Ks = dOs + BQ * kRow<D>;
  __nv_bfloat16* Vs = Ks + BK * kRow<D>;
  float* dSs = reinterpret_cast<float*>(Vs + BK * kRow<D>);  // [BQ][BK + 1]

  const int seq = blockIdx.z, h = blockIdx.y, kvh = h / (Hq / Hkv);
  const int64_t start = cu[seq];
  const int len = cu[seq + 1] - (int)start;
  const int q0 = blockIdx.x * BQ;
  if (q0 >= len) return;
  const int r = threadIdx.x >> 2, sub = threadIdx.x & 3, qi = q0 + r;
  const bool row_ok = qi < len;
  const float row_lse = row_ok ? lse[(int64_t)h * T + start + qi] : 0.f;
  const float row_delta = row_ok ? delta[(int64_t)h * T + start + qi] : 0.f;

  load_tile<D>(Qs, q, start + q0, len - q0, BQ, (int64_t)Hq * D, h);
  load_tile<D>(dOs, dO, start + q0, len - q0, BQ, (int64_t)Hq * D, h);
  float acc[D / 4];
#pragma unroll
  for (int i = 0; i < D / 4; i++) acc[i] = 0.f;

  const int k_end = min(len, q0 + BQ);
  for (int k0 = 0; k0 < k_end; k0 += BK) {
    __syncthreads();
    load_tile<D>(Ks, k, start + k0, len - k0, BK, (int64_t)Hkv * D, kvh);
    load_tile<D>(Vs, v, start + k0, len - k0, BK, (int64_t)Hkv * D, kvh);
    __syncthreads();
#pragma unroll
    for (int j = 0; j < BK / 4; j++) {
      const int c = sub + 4 * j, kj = k0 + c;
      float ds = 0.f;
      if (row_ok && kj <= qi) {
        const float p = __expf(dot_rows<D>(Qs + r * kRow<D>, Ks + c * kRow<D>) * scale - row_lse);
        const float dp = dot_rows<D>(dOs + r * kRow<D>, Vs + c * kRow<D>);
        ds = p * (dp - row_delta);
      }
      dSs[r * (BK + 1) + c] = ds;
    }
    __syncwarp();
    for (int c = 0; c < BK; c++) {
      const float ds = dSs[r * (BK + 1) + c];
#pragma unroll
      for (int i = 0; i < D / 4; i++) acc[i] = fmaf(ds, __bfloat162float(Ks[c * kRow<D> + sub + 4 * i]), acc[i]);
    }
    __syncwarp();
  }
  if (row_ok) {
    __nv_bfloat16* out = dq + (start + qi) * (int64_t)Hq * D + (int64_t)h * D;
#pragma unroll
    for (int i = 0; i < D / 4; i++) out[sub + 4 * i] = __float2bfloat16(acc[i] * scale);
  }
}

template <int D, int BK, int BQ>
__global__ void __launch_bounds__(BK * 4) attention_dkdv_kernel(
    const __nv_bfloat16* __restrict__ dO, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse, const float* __restrict__ delta,
    const int32_t* __restrict__ cu, int64_t T, int Hq, int Hkv, float scale, __nv_bfloat16* __restrict__ dk,
    __nv_bfloat16* __restrict__ dv) {
  extern __shared__ __align__(16) unsigned char smem[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* Vs = Ks + BK * kRow<D>;
  __nv_bfloat16* Qs = Vs + BK * kRow<D>;
  __nv_bfloat16* dOs = Qs + BQ * kRow<D>;
  float* Ps = reinterpret_cast<float*>(dOs + BQ * kRow<D>);  // [BK][BQ + 1]
  float* dSs = Ps + BK * (BQ + 1);                            // [BK][BQ + 1]
  float* lse_s = dSs + BK * (BQ + 1);                         // [BQ]
  float* delta_s = lse_s + BQ;                                // [BQ]

  const int seq = blockIdx.z, kvh = blockIdx.y, group = Hq / Hkv;
  const int64_t start = cu[seq];
  const int len = cu[seq + 1] - (int)start;
  const int k0 = blockIdx.x * BK;
  if (k0 >= len) return;
  const int c = threadIdx.x >> 2, sub = threadIdx.x & 3, kj = k0 + c;

  load_tile<D>(Ks, k, start + k0, len - k0, BK, (int64_t)Hkv * D, kvh);
  load_tile<D>(Vs, v, start + k0, len - k0, BK, (int64_t)Hkv * D, kvh);
  float dk_acc[D / 4], dv_acc[D / 4];
#pragma unroll
  for (int i = 0; i < D / 4; i++) dk_acc[i] = dv_acc[i] = 0.f;

  for (int h = kvh * group; h < (kvh + 1) * group; h++) {
    for (int q0 = (k0 / BQ) * BQ; q0 < len; q0 += BQ) {  // causal: queries before k0 see none of these keys
      __syncthreads();
      load_tile<D>(Qs, q, start + q0, len - q0, BQ, (int64_t)Hq * D, h);
      load_tile<D>(dOs, dO, start + q0, len - q0, BQ, (int64_t)Hq * D, h);
      for (int i = threadIdx.x; i < BQ; i += blockDim.x) {
        const bool ok = q0 + i < len;
        lse_s[i] = ok ? lse[(int64_t)h * T + start + q0 + i] : 0.f;
        delta_s[i] = ok ? delta[(int64_t)h * T + start + q0 + i] : 0.f;
      }
      __syncthreads();
#pragma unroll
      for (int j = 0; j < BQ / 4; j++) {
        const int rr = sub + 4 * j, qi = q0 + rr;
        float p = 0.f, ds = 0.f;
        if (kj < len && qi < len && kj <= qi) {
          p = __expf(dot_rows<D>(Ks + c * kRow<D>, Qs + rr * kRow<D>) * scale - lse_s[rr]);
          const float dp = dot_rows<D>(Vs + c * kRow<D>, dOs + rr * kRow<D>);
          ds = p * (dp - delta_s[rr]);
        }
        Ps[c * (BQ + 1) + rr] = p;
        dSs[c * (BQ + 1) + rr] = ds;
      }
      __syncwarp();
      for (int rr = 0; rr < BQ; rr++) {
        const float p = Ps[c * (BQ + 1) + rr], ds = dSs[c * (BQ + 1) + rr];
#pragma unroll
        for (int i = 0; i < D / 4; i++) {
          dv_acc[i] = fmaf(p, __bfloat162float(dOs[rr * kRow<D> + sub + 4 * i]), dv_acc[i]);
          dk_acc[i] = fmaf(ds, __bfloat162float(Qs[rr * kRow<D> + sub + 4 * i]), dk_acc[i]);
        }
      }
    }
  }
  if (kj < len) {
    const int64_t base = (start + kj) * (int64_t)Hkv * D + (int64_t)kvh * D;
#pragma unroll
    for (int i = 0; i < D / 4; i++) {
      dk[base + sub + 4 * i] = __float2bfloat16(dk_acc[i] * scale);
      dv[base + sub + 4 * i] = __float2bfloat16(dv_acc[i]);
    }
  }
}

template <int D, int BQ, int BK, int BK2, int BQ2>
tsl_status launch(const void* dO, const void* q, const void* k, const void* v, const float* lse, const float* delta,
                  const int32_t* cu, int seqs, int max_len, int64_t T, int Hq, int Hkv, float scale, void* dq, void* dk, void* dv) {
  const char* op = "tsl_attention_bwd";
  using bf = __nv_bfloat16;
  const size_t smem_dq = (size_t)(2 * BQ + 2 * BK) * kRow<D> * 2 + (size_t)BQ * (BK + 1) * 4;
  auto dq_kernel = attention_dq_kernel<D, BQ, BK>;
  TSL_CUDA(op, cudaFuncSetAttribute(dq_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_dq));
  dq_kernel<<<dim3((max_len + BQ - 1) / BQ, Hq, seqs), BQ * 4, smem_dq, compute_stream()>>>(
      (const bf*)dO, (const bf*)q, (const bf*)k, (const bf*)v, lse, delta, cu, T, Hq, Hkv, scale, (bf*)dq);
  TSL_CHECK_LAUNCH(op);
  const size_t smem_kv = (size_t)(2 * BK2 + 2 * BQ2) * kRow<D> * 2 + (size_t)2 * BK2 * (BQ2 + 1) * 4 + 2 * BQ2 * 4;
  auto kv_kernel = attention_dkdv_kernel<D, BK2, BQ2>;
  TSL_CUDA(op, cudaFuncSetAttribute(kv_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_kv));
  kv_kernel<<<dim3((max_len + BK2 - 1) / BK2, Hkv, seqs), BK2 * 4, smem_kv, compute_stream()>>>(
      (const bf*)dO, (const bf*)q, (const bf*)k, (const bf*)v, lse, delta, cu, T, Hq, Hkv, scale, (bf*)dk, (bf*)dv);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" tsl_status tsl_attention_bwd(const void* d_do, const void* d_q, const void* d_k, const void* d_v, const void* d_o,
                                        const float* d_lse, const int32_t* d_cu_seqlens, int32_t num_seqs, int32_t max_seqlen,
                                        int64_t T, int32_t Hq, int32_t Hkv, int32_t D, float scale, void* d_dq, void* d_dk,
                                        void* d_dv) {
  const char* op = "tsl_attention_bwd";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, Hq > 0 && Hkv > 0 && Hq % Hkv == 0, "query heads (%d) must be a multiple of kv heads (%d)", Hq, Hkv);
  TSL_REQUIRE(op, num_seqs >= 0 && num_seqs <= 65535 && max_seqlen >= 0, "bad sequence count %d / max length %d", num_seqs, max_seqlen);
  TSL_REQUIRE(op, attn::aligned16(d_q) && attn::aligned16(d_k) && attn::aligned16(d_v) && attn::aligned16(d_do),
              "q, k, v, dO must be 16-byte aligned");
  TSL_REQUIRE(op, D == 16 || D == 32 || D == 64 || D == 128 || D == 256, "head_dim %d is not supported (16, 32, 64, 128 or 256)", D);
  if (T == 0 || num_seqs == 0 || max_seqlen == 0) return TSL_OK;
  Scratch delta;
  TSL_TRY(scratch_alloc(op, (uint64_t)T * Hq * 4, &delta.p));
  const uint64_t warps = (uint64_t)T * Hq;
  attention_delta_kernel<<<blocks_for(warps * 32, 256, 0x7fffffffu), 256, 0, compute_stream()>>>(
      (const __nv_bfloat16*)d_do, (const __nv_bfloat16*)d_o, T, Hq, D, (float*)delta.p);
  TSL_CHECK_LAUNCH(op);
  const float* dl = (const float*)delta.p;
  // Head dims 64 and 128 run on mma.sync register tiles: the single-pass backward with atomic dQ
  // (attention_bwd_q64.cu where its shared memory fits, else attention_bwd_fused.cu; the dispatch and
  // TSLOTH_ATTENTION_BWD's values are in attention_bwd_fused), or with TSLOTH_ATTENTION_BWD=split the
  // two-pass one (attention_bwd_mma.cu). TSLOTH_ATTENTION=wmma or simple selects the WMMA (attention_bwd_tc.cu)
  // or this file's CUDA-core kernels instead, for any head dim.
  const char* force = getenv("TSLOTH_ATTENTION");
  const bool simple = force && strcmp(force, "simple") == 0, wmma = force && strcmp(force, "wmma") == 0;
  if (!simple && !wmma) {
    bool handled = false;
    tsl_status st = attention_bwd_fused(d_do, d_q, d_k, d_v, d_lse, dl, d_cu_seqlens, num_seqs, max_seqlen, T, Hq, Hkv, D,
                                        scale, d_dq, d_dk, d_dv, &handled);
    if (handled) return st;
  }
  if (!simple) {
    bool handled = false;
    tsl_status st = wmma ? attention_bwd_tensor_cores(d_do, d_q, d_k, d_v, d_lse, dl, d_cu_seqlens, num_seqs, max_seqlen, T, Hq,
                                                      Hkv, D, scale, d_dq, d_dk, d_dv, &handled)
                         : attention_bwd_mma(d_do, d_q, d_k, d_v, d_lse, dl, d_cu_seqlens, num_seqs, max_seqlen, T, Hq, Hkv, D,
                                             scale, d_dq, d_dk, d_dv, &handled);
    if (handled) return st;
  }
  // Tile sizes keep shared memory under the 99 KB that sm_86/sm_89 allow per block.
  switch (D) {
    case 16: return launch<16, 64, 64, 64, 64>(d_do, d_q, d_k, d_v, d_lse, dl, d_cu_seqlens, num_seqs, max_seqlen, T, Hq, Hkv, scale, d_dq, d_dk, d_dv);
    case 32: return launch<32, 64, 64, 64, 64>(d_do, d_q, d_k, d_v, d_lse, dl, d_cu_seqlens, num_seqs, max_seqlen, T, Hq, Hkv, scale, d_dq, d_dk, d_dv);
    case 64: return launch<64, 64, 64, 64, 32>(d_do, d_q, d_k, d_v, d_lse, dl, d_cu_seqlens, num_seqs, max_seqlen, T, Hq, Hkv, scale, d_dq, d_dk, d_dv);
    case 128: return launch<128, 64, 64, 64, 32>(d_do, d_q, d_k, d_v, d_lse, dl, d_cu_seqlens, num_seqs, max_seqlen, T, Hq, Hkv, scale, d_dq, d_dk, d_dv);
    default: return launch<256, 32, 32, 32, 32>(d_do, d_q, d_k, d_v, d_lse, dl, d_cu_seqlens, num_seqs, max_seqlen, T, Hq, Hkv, scale, d_dq, d_dk, d_dv);
  }
}
