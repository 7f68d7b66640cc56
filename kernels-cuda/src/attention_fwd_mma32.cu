// Causal GQA attention forward, FlashAttention-2's shape (Dao 2023, §3.3 and its released kernels):
// each warp owns 32 query rows (two m16 tiles), so every K and V fragment read with ldmatrix feeds
// four mma instead of attention_fwd_mma.cu's two. Blocks of 4 warps (128 rows) share 64-key K/V
// tiles loaded with cp.async two tiles deep. For D 128, Q stays in shared memory and is re-read per
// key tile (FlashAttention-2's default: 64 more registers of Q fragments would not fit beside 128 of
// output and the scores), and each tile is scored 32 keys at a time (32 score registers, no spills);
// D 64 holds Q in registers and scores 64 keys at once. Scores are re-packed in registers as bf16 A
// operands of P·V; row sums stay per thread until the end (the quad shares one maximum, so their
// rescaling is the same), and the output is rescaled only when some row maximum of the warp changed.
// A warp skips keys wholly past its rows and masks only where its rows meet the diagonal. Blocks
// are issued longest first across every head and sequence (the query block is the grid's slowest
// dimension), so the causal triangle's long blocks never form the tail.
//
// Prediction, written before measuring (Llama-3.1-8B heads: 32 q / 8 kv, D 128), against the 16-row
// kernel's 2.01 ms (1 × 8192) and 0.56 ms (4 × 2048) on an H200 (bench/NOTES.md): 1 × 8192 ≈ 1.5 ms
// (1.4–1.65), 4 × 2048 ≈ 0.43 ms (0.40–0.48), i.e. 20–30% less time on the same card. Why: ncu put
// the 16-row kernel at ~50% of both SM issue and L1 throughput, latency-bound at 12 warps per SM;
// here shared-memory reads per mma fall to 62.5% (Q 16 + K 32 + V 32 ldmatrix.x4 per 32 rows and
// 64 keys, against 128), each warp has two independent mma chains per fragment, the softmax
// bookkeeping (row max shuffles, quad sums, mask tests) is shared by more work, and diagonal
// masking covers one warp-tile in four instead of one in two. Against that, 8 warps per SM instead
// of 12 (2 blocks of 4 at up to 255 registers). SDPA's ~0.95 ms stays out of reach on mma.sync.
// Measured (kernels-cuda/dev/bench_attention.py, one H100 call, 16-row kernel in the same run):
// 1 × 8192 2.126 → 1.636 ms (−23%, inside the prediction), 4 × 2048 0.571 → 0.495 ms (−13%, short of
// it: 16 blocks of 128 rows per sequence and head leave more of the step to the diagonal tiles and
// the tail), D 64 at 1 × 8192 1.077 → 0.985 ms (−9%). SDPA in the same run: 0.932, 0.295, 0.660 ms.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention_mma.cuh"

namespace tsl {
namespace {

using namespace attn;

// kWarps warps of 32 rows; kBK keys per K/V tile in shared memory, scored kBN at a time (64 scores
// per thread for kBN 64, 32 for kBN 32); kQInRegs: Q fragments in registers for the whole block.
template <int D, int kWarps, int kBK, int kBN, bool kQInRegs_>
struct Shape32 {
  static constexpr int kThreads = kWarps * 32, kBQ = kWarps * 32;
  static constexpr int kQ = kBQ * kRow<D>, kStage = 2 * kBK * kRow<D>;  // elements: Q tile, one [K | V] stage
  static constexpr size_t kSmem = (size_t)(kQ + 2 * kStage) * sizeof(__nv_bfloat16);
  static constexpr bool kQInRegs = kQInRegs_;
  static constexpr int kQk = kQInRegs ? D / 16 : 1;  // Q fragments per m tile held in registers
  static_assert(kBK % kBN == 0 && kBN % 16 == 0, "key tiles split into 16-key steps");
};

// kBN keys of K/V for one warp's 32 rows (tile m = rows m·16 .. m·16+15; a thread holds rows
// m·16 + gid and m·16 + gid + 8, index 2m and 2m + 1 of mx/lsum). qa: Q fragments when held in
// registers, else Qw (the warp's rows in shared memory) is read here. kMask: some key of the tile
// lies past some row of the warp.
template <int D, int kBN, bool kQInRegs, bool kMask, int kQk>
__device__ __forceinline__ void tile32(const uint32_t (*qa)[kQk][4], const __nv_bfloat16* Qw, const __nv_bfloat16* Ks,
                                       const __nv_bfloat16* Vs, int k0, int rw, float scale_log2, float (*acc)[D / 8][4],
                                       float* mx, float* lsum, int lane) {
  const int gid = lane >> 2, tid = lane & 3;
  float s[2][kBN / 8][4];
#pragma unroll
  for (int m = 0; m < 2; m++)
#pragma unroll
    for (int n = 0; n < kBN / 8; n++) s[m][n][0] = s[m][n][1] = s[m][n][2] = s[m][n][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
    uint32_t a[2][4];
#pragma unroll
    for (int m = 0; m < 2; m++) {
      if (kQInRegs) {
#pragma unroll
        for (int i = 0; i < 4; i++) a[m][i] = qa[m][kk][i];
      } else {
        ldsm_a(a[m], Qw + m * 16 * kRow<D>, kRow<D>, kk * 16, lane);
      }
    }
#pragma unroll
    for (int n = 0; n < kBN / 8; n += 2) {
      uint32_t kb[4];
      ldsm_bt2(kb, Ks, kRow<D>, n * 8, kk * 16, lane);
#pragma unroll
      for (int m = 0; m < 2; m++) {
        mma_bf16(s[m][n], a[m], kb[0], kb[1]);
        mma_bf16(s[m][n + 1], a[m], kb[2], kb[3]);
      }
    }
  }
  // Row maxima on the raw scores (the scale is positive), then p = 2^(s·scale·log2e − max) as one
  // FFMA and one ex2 per score.
  float tmax[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
#pragma unroll
  for (int m = 0; m < 2; m++) {
#pragma unroll
    for (int n = 0; n < kBN / 8; n++) {
#pragma unroll
      for (int e = 0; e < 2; e++) {
        if (kMask) {
          const int kj = k0 + n * 8 + tid * 2 + e, row = rw + m * 16 + gid;
          if (kj > row) s[m][n][e] = -INFINITY;
          if (kj > row + 8) s[m][n][2 + e] = -INFINITY;
        }
        tmax[2 * m] = fmaxf(tmax[2 * m], s[m][n][e]);
        tmax[2 * m + 1] = fmaxf(tmax[2 * m + 1], s[m][n][2 + e]);
      }
    }
  }
  float base[4], corr[4];
#pragma unroll
  for (int r = 0; r < 4; r++) {
    const float nm = fmaxf(mx[r], quad_max(tmax[r]) * scale_log2);
    base[r] = nm == -INFINITY ? 0.f : nm;  // rows that have seen only masked keys stay finite
    corr[r] = fast_exp2(mx[r] - base[r]);
    mx[r] = nm;
  }
  // P in bf16 right away (32 registers instead of 64 while the output is rescaled and P·V runs):
  // keys j·16 .. j·16+15 of m tile m form the A operand p[m][j].
  uint32_t p[2][kBN / 16][4];
#pragma unroll
  for (int m = 0; m < 2; m++) {
    float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
    for (int n = 0; n < kBN / 8; n++) {
      const float p0 = fast_exp2(fmaf(s[m][n][0], scale_log2, -base[2 * m]));
      const float p1 = fast_exp2(fmaf(s[m][n][1], scale_log2, -base[2 * m]));
      const float p2 = fast_exp2(fmaf(s[m][n][2], scale_log2, -base[2 * m + 1]));
      const float p3 = fast_exp2(fmaf(s[m][n][3], scale_log2, -base[2 * m + 1]));
      sum0 += p0 + p1;
      sum1 += p2 + p3;
      p[m][n >> 1][(n & 1) * 2] = pack_bf16(p0, p1);
      p[m][n >> 1][(n & 1) * 2 + 1] = pack_bf16(p2, p3);
    }
    lsum[2 * m] = lsum[2 * m] * corr[2 * m] + sum0;
    lsum[2 * m + 1] = lsum[2 * m + 1] * corr[2 * m + 1] + sum1;
  }
  // Once the running maxima settle, most tiles change none of the warp's: skip the D/2 multiplies
  // per row then (a warp-uniform vote; corr is exactly 1 when a maximum is unchanged).
  if (__any_sync(0xffffffffu, corr[0] != 1.f || corr[1] != 1.f || corr[2] != 1.f || corr[3] != 1.f)) {
#pragma unroll
    for (int m = 0; m < 2; m++)
#pragma unroll
      for (int n = 0; n < D / 8; n++) {
        acc[m][n][0] *= corr[2 * m];
        acc[m][n][1] *= corr[2 * m];
        acc[m][n][2] *= corr[2 * m + 1];
        acc[m][n][3] *= corr[2 * m + 1];
      }
  }
  // O += P·V; one V fragment serves both m tiles.
#pragma unroll
  for (int j = 0; j < kBN / 16; j++) {
#pragma unroll
    for (int n = 0; n < D / 8; n += 2) {
      uint32_t vb[4];
      ldsm_bn2(vb, Vs, kRow<D>, j * 16, n * 8, lane);
#pragma unroll
      for (int m = 0; m < 2; m++) {
        mma_bf16(acc[m][n], p[m][j], vb[0], vb[1]);
        mma_bf16(acc[m][n + 1], p[m][j], vb[2], vb[3]);
      }
    }
  }
}

// Grid: (query heads, sequences, query blocks), the last reversed so the longest blocks go first.
template <int D, int kWarps, int kBK, int kBN, bool kQInRegs, int kMinBlocks>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks) attention_fwd_mma32_kernel(
    const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v,
    const int32_t* __restrict__ cu, int64_t T, int Hq, int Hkv, float scale_log2, __nv_bfloat16* __restrict__ o,
    float* __restrict__ lse) {
  using S = Shape32<D, kWarps, kBK, kBN, kQInRegs>;
  extern __shared__ __align__(128) unsigned char smem[];
  // [Q tile | stage 0: K, V | stage 1: K, V]
  __nv_bfloat16* const Qs = reinterpret_cast<__nv_bfloat16*>(smem);
  auto stage = [&](int i) { return Qs + S::kQ + i * S::kStage; };
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int gid = lane >> 2, tid = lane & 3;

  const int h = blockIdx.x, seq = blockIdx.y, kvh = h / (Hq / Hkv);
  const int64_t start = cu[seq];
  const int len = cu[seq + 1] - (int)start;
  const int q0 = (gridDim.z - 1 - blockIdx.z) * S::kBQ;
  if (q0 >= len) return;
  const int rw = q0 + warp * 32;  // the warp's first row
  const int64_t kv_stride = (int64_t)Hkv * D;

  cp_tile<D, S::kBQ, S::kThreads>(Qs, q, start + q0, len - q0, (int64_t)Hq * D, h);
  cp_async_commit();
  cp_tile<D, kBK, S::kThreads>(stage(0), k, start, len, kv_stride, kvh);
  cp_tile<D, kBK, S::kThreads>(stage(0) + kBK * kRow<D>, v, start, len, kv_stride, kvh);
  cp_async_commit();
  const __nv_bfloat16* Qw = Qs + warp * 32 * kRow<D>;
  uint32_t qa[2][S::kQk][4];
  if (S::kQInRegs) {
    cp_async_wait<1>();
    __syncthreads();
#pragma unroll
    for (int m = 0; m < 2; m++)
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++) ldsm_a(qa[m][kk], Qw + m * 16 * kRow<D>, kRow<D>, kk * 16, lane);
  }

  float acc[2][D / 8][4];
#pragma unroll
  for (int m = 0; m < 2; m++)
#pragma unroll
    for (int n = 0; n < D / 8; n++) acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.f;
  float mx[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, lsum[4] = {0.f, 0.f, 0.f, 0.f};

  const int tiles = (min(len, q0 + S::kBQ) + kBK - 1) / kBK;
  for (int t = 0; t < tiles; t++) {
    if (t + 1 < tiles) {
      const int kn = (t + 1) * kBK;
      __nv_bfloat16* st = stage((t + 1) & 1);
      cp_tile<D, kBK, S::kThreads>(st, k, start + kn, len - kn, kv_stride, kvh);
      cp_tile<D, kBK, S::kThreads>(st + kBK * kRow<D>, v, start + kn, len - kn, kv_stride, kvh);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const __nv_bfloat16* Ks = stage(t & 1);
#pragma unroll
    for (int sub = 0; sub < kBK / kBN; sub++) {
      const int k0 = t * kBK + sub * kBN;
      const __nv_bfloat16* Kn = Ks + sub * kBN * kRow<D>;
      const __nv_bfloat16* Vn = Kn + kBK * kRow<D>;
      // Warp-uniform: keys wholly past the warp's last row are skipped; keys reaching past its first
      // row are masked.
      if (k0 <= rw + 31) {
        if (k0 + kBN - 1 > rw)
          tile32<D, kBN, kQInRegs, true, S::kQk>(qa, Qw, Kn, Vn, k0, rw, scale_log2, acc, mx, lsum, lane);
        else
          tile32<D, kBN, kQInRegs, false, S::kQk>(qa, Qw, Kn, Vn, k0, rw, scale_log2, acc, mx, lsum, lane);
      }
    }
    __syncthreads();  // everyone is done with this stage before it is refilled
  }
  const int64_t stride = (int64_t)Hq * D;
#pragma unroll
  for (int r = 0; r < 4; r++) {
    const int row = rw + (r >> 1) * 16 + (r & 1) * 8 + gid;
    const float l = quad_sum(lsum[r]), inv = 1.f / l;
    if (row < len) {
      __nv_bfloat16* out = o + (start + row) * stride + (int64_t)h * D + tid * 2;
#pragma unroll
      for (int n = 0; n < D / 8; n++)
        *reinterpret_cast<__nv_bfloat162*>(out + n * 8) =
            __floats2bfloat162_rn(acc[r >> 1][n][(r & 1) * 2] * inv, acc[r >> 1][n][(r & 1) * 2 + 1] * inv);
      if (tid == 0) lse[(int64_t)h * T + start + row] = (mx[r] + log2f(l)) * 0.6931471805599453f;
    }
  }
}

template <int D, int kWarps, int kBK, int kBN, bool kQInRegs, int kMinBlocks>
tsl_status launch32(const void* q, const void* k, const void* v, const int32_t* cu, int seqs, int max_len, int64_t T,
                    int Hq, int Hkv, float scale, void* o, float* lse, bool* handled) {
  const char* op = "tsl_attention_fwd";
  using S = Shape32<D, kWarps, kBK, kBN, kQInRegs>;
  const int blocks = (max_len + S::kBQ - 1) / S::kBQ;
  int dev = 0, optin = 0;
  TSL_CUDA(op, cudaGetDevice(&dev));
  TSL_CUDA(op, cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  // D 128 with 64-key tiles needs 104 KB, more than sm_86/sm_89 grant (99 KB); the 16-row kernel runs there.
  if ((size_t)optin < S::kSmem || blocks > 65535) return TSL_OK;
  *handled = true;
  auto kernel = attention_fwd_mma32_kernel<D, kWarps, kBK, kBN, kQInRegs, kMinBlocks>;
  TSL_CUDA(op, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)S::kSmem));
  kernel<<<dim3(Hq, seqs, blocks), S::kThreads, S::kSmem, compute_stream()>>>(
      (const __nv_bfloat16*)q, (const __nv_bfloat16*)k, (const __nv_bfloat16*)v, cu, T, Hq, Hkv,
      scale * 1.4426950408889634f, (__nv_bfloat16*)o, lse);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

// Block shapes (registers and spills from `nvcc --resource-usage`, sm_90; times on an H100, see the
// header):
//   default: 4 warps (128 rows), 64-key tiles. D 128 scores them 32 keys at a time with Q re-read
//     from shared memory (247 registers, 2 blocks per SM, no spills): scoring all 64 at once
//     (FlashAttention-2's 128 × 64) was 4% faster but spills 84 bytes at the 255-register cap.
//     D 64 scores all 64 at once with Q in registers (254 registers, 2 blocks), 2% faster than
//     32 at a time from shared memory (167 registers, 3 blocks).
//   two warps (TSLOTH_ATTENTION_FWD=rows32w2): 64-row blocks (half the causal waste on the
//     diagonal), 32-key tiles; D 128: 247 registers, 4 blocks per SM; D 64: 164 registers, 6 blocks.
//     3–6% slower than the default.
template <int D>
tsl_status run32(bool two_warps, const void* q, const void* k, const void* v, const int32_t* cu, int seqs, int max_len,
                 int64_t T, int Hq, int Hkv, float scale, void* o, float* lse, bool* handled) {
  if (two_warps)
    return launch32<D, 2, 32, 32, false, D == 128 ? 4 : 6>(q, k, v, cu, seqs, max_len, T, Hq, Hkv, scale, o, lse, handled);
  if constexpr (D == 128)
    return launch32<128, 4, 64, 32, false, 2>(q, k, v, cu, seqs, max_len, T, Hq, Hkv, scale, o, lse, handled);
  else
    return launch32<D, 4, 64, 64, true, 2>(q, k, v, cu, seqs, max_len, T, Hq, Hkv, scale, o, lse, handled);
}

}  // namespace

// The 32-rows-per-warp forward for head dims 64 and 128; *handled stays false (the caller runs the
// 16-row kernel) for other head dims, on devices without the shared memory, or when `mode` names the
// 16-row kernel. mode: TSLOTH_ATTENTION_FWD's value (null or empty: the default shape).
tsl_status attention_fwd_mma32(const char* mode, const void* q, const void* k, const void* v, const int32_t* cu, int seqs,
                               int max_len, int64_t T, int Hq, int Hkv, int D, float scale, void* o, float* lse,
                               bool* handled) {
  const char* op = "tsl_attention_fwd";
  *handled = false;
  const bool two_warps = mode && strcmp(mode, "rows32w2") == 0;
  if (mode && strcmp(mode, "rows16") == 0) return TSL_OK;
  TSL_REQUIRE(op, !mode || !*mode || two_warps || strcmp(mode, "rows32") == 0,
              "TSLOTH_ATTENTION_FWD must be rows32 (the default), rows32w2 or rows16, got \"%s\"", mode);
  if (D == 64) return run32<64>(two_warps, q, k, v, cu, seqs, max_len, T, Hq, Hkv, scale, o, lse, handled);
  if (D == 128) return run32<128>(two_warps, q, k, v, cu, seqs, max_len, T, Hq, Hkv, scale, o, lse, handled);
  return TSL_OK;
}

}  // namespace tsl
