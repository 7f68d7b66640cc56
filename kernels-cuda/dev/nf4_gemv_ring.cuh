// NF4 matrix-vector bench, the sm_90 ring kernel (round 12, lost): weights streamed into shared
// memory by the Hopper bulk-copy engine (cp.async.bulk, completion counted on an mbarrier), so the
// bytes in flight no longer live in registers. Uses the common pieces of
// kernels-cuda/src/nf4_gemv_kernels.cuh; included by nf4_gemv_variants_ring.cuh only.
//
// Why: with the weights loaded into registers (nf4_gemv.cu's portable kernel) 16 warps per SM keep
// ~16-32 KB in flight per SM, one iteration at a time, and the loads alone (no math) reach 78% of
// copy on an H100 but 69-71% on an H200, whose 4.2 TB/s at ~1 us of latency needs ~32 KB per SM
// all the time (Little's law). Here one producer warp per block keeps a ring of kStages stages
// (8 x 16 KB, 128 KB per SM) filled while 16 consumer warps decode from shared memory.
// A stage holds one chunk (32·kWords code words = 1 KB, the span whose 32 absmax blocks lane j
// decodes once, as in the portable kernel) of each of the 16·kRows rows of a row group; a block owns
// a contiguous range of rows (grid = SMs, one block each: the ring and the table take ~195 KB) and
// walks its groups chunk by chunk, so a warp keeps its rows' sums in registers across the chunks.
// The rows may come from up to kMaxGroup matrices sharing x (q/k/v, gate/up): one launch for all.
// Measured (H100, one run, layer of 7 / 4 launches; v10w_autoc_pdl 60.0 us in the same run): the
// loads alone (probe_ring) 54.0 / 49.4 us, 70-76% of copy, but only 77% on gate/up and down where
// probe_words reaches 87-90%; ring_r1 92.0 / 84.9 us, ring_r2 84.5 / 73.0 us (gate/up 49%, down 56%).
// Likely causes, not isolated: the absmax of the next chunk is loaded one stage (~0.7 us of work)
// ahead from HBM, so each stage waits on its latency; one block per SM over a fixed row range
// leaves the tail to the slowest SM; 1 KB copies at a 2 KB stride.
#pragma once
#include "../src/nf4_gemv_kernels.cuh"

namespace tsl {
namespace {

// ---- the sm_90 ring kernel ------------------------------------------------------------------------
constexpr int kRingWarps = 16;  // consumer warps; one more warp produces
constexpr int kRingThreads = (kRingWarps + 1) * 32;

template <int kRows>
struct RingShape {
  static constexpr int kChunkBytes = 1024;  // one row's share of a stage (kWords = 8; 4 uses half)
  static constexpr int kStageBytes = kRingWarps * kRows * kChunkBytes;
  static constexpr int kStages = 131072 / kStageBytes;  // 128 KB in flight per SM
  static constexpr int kSmem = kTableBytes + kStages * kStageBytes + kMaxGroup * 1024 + 2 * kStages * 8;
};

// Hopper's mbarrier and bulk-copy instructions; empty where the device code is older than sm_90
// (only the sm_90 kernel calls them).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#define TSL_SM90_ASM(...)
#else
#define TSL_SM90_ASM(...) asm volatile(__VA_ARGS__)
#endif
__device__ __forceinline__ uint32_t smem_addr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void mbar_init(uint64_t* b, uint32_t count) {
  TSL_SM90_ASM("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(b)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint64_t* b, uint32_t bytes) {
  TSL_SM90_ASM("{ .reg .b64 st; mbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1; }" ::"r"(smem_addr(b)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* b) {
  TSL_SM90_ASM("{ .reg .b64 st; mbarrier.arrive.shared::cta.b64 st, [%0]; }" ::"r"(smem_addr(b)) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* b, uint32_t parity) {
  uint32_t done = 1;
  do {
    TSL_SM90_ASM("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                 : "=r"(done) : "r"(smem_addr(b)), "r"(parity) : "memory");
  } while (!done);
}
// bytes (a multiple of 16, both addresses 16-byte aligned) from global to shared memory, counted on
// the mbarrier; streamed once, so evicted from L2 first.
__device__ __forceinline__ void bulk_copy(void* dst, const void* src, uint32_t bytes, uint64_t* bar, uint64_t policy) {
  TSL_SM90_ASM(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;" ::"r"(
          smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar)), "l"(policy)
      : "memory");
}
#undef TSL_SM90_ASM

// What a lane needs for one row's chunk: its absmax block's raw value (loaded a stage ahead) and
// where the chunk starts inside its first block.
struct ChunkScale {
  uint32_t q;  // 8-bit absmax code (double quantization)
  float v;     // nested absmax, or the f32 absmax
  int t;       // weight offset of the lane's first word from the chunk's first block start
  int m;       // matrix
};

template <int kWords, bool kDoubleQuant>
__device__ __forceinline__ ChunkScale load_chunk_scale(const Nf4GemvGroup& g, int64_t row, int c, int words) {
  const int lane = threadIdx.x & 31;
  const int m = matrix_of(g, row);
  const Nf4GemvMatrix& M = g.m[m];
  const int64_t start = (row - M.first_row) * g.in_f + (int64_t)c * 256 * kWords;
  const int end = min((c + 1) * 32 * kWords, words);  // words
  const int64_t b = (start >> g.log2_blocksize) + lane;
  ChunkScale s{0u, 0.f, (int)(start & ((1 << g.log2_blocksize) - 1)) + lane * 8, m};
  if (b <= (start + (int64_t)(end - c * 32 * kWords) * 8 - 1) >> g.log2_blocksize) {
    if (kDoubleQuant) {
      s.q = __ldg(M.scales.q + b);
      s.v = __ldg(M.scales.nested_absmax + (b >> M.log2_nested_blocksize));
    } else {
      s.v = __ldg(M.scales.f32 + b);
    }
  }
  return s;
}

// One row's chunk: its code words from the stage, x's words from L1/L2 (shared by the warp's rows).
template <int kWords, bool kDoubleQuant, bool kFull>
__device__ __forceinline__ float chunk_dot(const Nf4GemvGroup& g, const uint32_t* codes, const uint4* xv, const ChunkScale& s,
                                           int cwords, const float* ncode, const char* table) {
  const int lane = threadIdx.x & 31;
  const float mine = kDoubleQuant ? fmaf(ncode[s.m * 256 + s.q], s.v, g.m[s.m].scales.nested_offset) : s.v;
  float acc = 0.f;
#pragma unroll
  for (int u = 0; u < kWords; u++) {
    const bool ok = kFull || lane + 32 * u < cwords;
    const uint32_t w = ok ? codes[lane + 32 * u] : 0u;
    const float scale = __shfl_sync(0xffffffffu, mine, (s.t + 256 * u) >> g.log2_blocksize);
    acc = fmaf(ok ? scale : 0.f, dot8_pairs(w, xv[u], table, (uint32_t)lane * 4), acc);
  }
  return acc;
}

template <int kRows, int kWords, bool kDoubleQuant>
__global__ void __launch_bounds__(kRingThreads, 1) nf4_gemv_ring_kernel(const __grid_constant__ Nf4GemvGroup g) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  using S = RingShape<kRows>;
  constexpr int kChunkWords = 32 * kWords, kGroupRows = kRingWarps * kRows;
  extern __shared__ __align__(128) char smem[];
  char* table = smem;
  char* ring = smem + kTableBytes;
  float* ncode = reinterpret_cast<float*>(ring + S::kStages * S::kStageBytes);
  uint64_t* full = reinterpret_cast<uint64_t*>(ncode + kMaxGroup * 256);
  uint64_t* empty = full + S::kStages;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (threadIdx.x == 0) {
    for (int s = 0; s < S::kStages; s++) {
      mbar_init(full + s, 1);
      mbar_init(empty + s, kRingWarps);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  // Programmatic dependent launch: the next grid may start (its blocks take an SM as this grid's
  // leave it). Weights, absmax and codes are read before griddepcontrol.wait: the only kernel that
  // lets its dependents start early is this one, and it never writes them, so whatever wrote them
  // has finished; x, bias, the LoRA term and y are touched only after the wait.
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  const int64_t lo = g.rows * blockIdx.x / gridDim.x, hi = g.rows * (blockIdx.x + 1) / gridDim.x;
  const int words = (int)(g.in_f >> 3);
  const int chunks = (words + kChunkWords - 1) / kChunkWords;
  const int64_t stages = (hi - lo + kGroupRows - 1) / kGroupRows * chunks;

  if (warp == kRingWarps) {  // producer: one bulk copy per row and chunk
    uint64_t policy;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
    for (int64_t k = 0; k < stages; k++) {
      const int slot = (int)(k % S::kStages);
      const int64_t g0 = lo + k / chunks * kGroupRows;
      const int c = (int)(k % chunks);
      const int n = (int)min((int64_t)kGroupRows, hi - g0);
      const int cwords = min(kChunkWords, words - c * kChunkWords);
      if (lane == 0) {
        if (k >= S::kStages) mbar_wait(empty + slot, (uint32_t)((k / S::kStages) & 1) ^ 1u);
        mbar_expect_tx(full + slot, (uint32_t)(n * cwords * 4));
      }
      __syncwarp();
      for (int i = lane; i < n; i += 32) {
        const int64_t row = g0 + i;
        const Nf4GemvMatrix& M = g.m[matrix_of(g, row)];
        bulk_copy(ring + slot * S::kStageBytes + i * S::kChunkBytes, M.packed + (row - M.first_row) * words + c * kChunkWords,
                  (uint32_t)cwords * 4, full + slot, policy);
      }
    }
    return;
  }

  fill_pair_table(table, kRingWarps * 32);
  if (kDoubleQuant)
    for (int i = threadIdx.x; i < g.count * 256; i += kRingWarps * 32) ncode[i] = g.m[i >> 8].scales.nested_code[i & 255];
  asm volatile("bar.sync 1, %0;" ::"n"(kRingWarps * 32) : "memory");  // consumers only
  const uint4* x8 = reinterpret_cast<const uint4*>(g.x);
  ChunkScale next[kRows] = {};
  const auto scales_of = [&](int64_t k, ChunkScale* out) {
    const int64_t g0 = lo + k / chunks * kGroupRows;
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const int64_t row = g0 + warp * kRows + r;
      if (row < hi) out[r] = load_chunk_scale<kWords, kDoubleQuant>(g, row, (int)(k % chunks), words);
    }
  };
  if (stages > 0) scales_of(0, next);
  asm volatile("griddepcontrol.wait;" ::: "memory");
  float acc[kRows];
#pragma unroll
  for (int r = 0; r < kRows; r++) acc[r] = 0.f;
  for (int64_t k = 0; k < stages; k++) {
    const int slot = (int)(k % S::kStages);
    const int64_t g0 = lo + k / chunks * kGroupRows;
    const int c = (int)(k % chunks);
    const int cwords = min(kChunkWords, words - c * kChunkWords);
    uint4 xv[kWords];
#pragma unroll
    for (int u = 0; u < kWords; u++) {
      const int w = c * kChunkWords + lane + 32 * u;
      xv[u] = __ldg(x8 + (w < words ? w : 0));
    }
    ChunkScale cur[kRows];
#pragma unroll
    for (int r = 0; r < kRows; r++) cur[r] = next[r];
    if (k + 1 < stages) scales_of(k + 1, next);
    mbar_wait(full + slot, (uint32_t)((k / S::kStages) & 1));
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      if (g0 + warp * kRows + r >= hi) continue;  // warp-uniform
      const uint32_t* codes = reinterpret_cast<const uint32_t*>(ring + slot * S::kStageBytes + (warp * kRows + r) * S::kChunkBytes);
      acc[r] += cwords == kChunkWords ? chunk_dot<kWords, kDoubleQuant, true>(g, codes, xv, cur[r], cwords, ncode, table)
                                      : chunk_dot<kWords, kDoubleQuant, false>(g, codes, xv, cur[r], cwords, ncode, table);
    }
    __syncwarp();
    if (lane == 0) mbar_arrive(empty + slot);
    if (c != chunks - 1) continue;
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const int64_t row = g0 + warp * kRows + r;
      if (row >= hi) continue;
      float v = warp_sum(acc[r]);
      acc[r] = 0.f;
      const int m = matrix_of(g, row);
      if (lane == 0) finish_row(g, m, row - g.m[m].first_row, v);
    }
  }
#else
  __trap();  // the bench builds and runs it for sm_90 only
#endif
}

}  // namespace
}  // namespace tsl
