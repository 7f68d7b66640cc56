// NF4 matrix-vector bench, part 5 (round five): the shipped group kernel (nf4_gemv_kernels.cuh)
// with x staged in shared memory and the code words double-buffered in registers. Included by
// nf4_gemv_bench.cu only.
//
// Why: the shipped kernel holds an iteration's 8 x vectors (32 registers) through the wait for its
// code words, and issues the next iteration's loads only after this one's math, so each warp has
// 2 KB in flight part of the time; at 16 warps per SM that is below what the H100's latency needs
// (~23 KB per SM at the copy rate) and far below the H200's. With x in shared memory (read per word
// right before its math: 8 KB for K = 4096, 28 KB for K = 14336, beside the 64 KB table) those
// registers hold the next iteration's words and absmax codes instead, so the loads of iteration
// i + 1 are in flight during iteration i's math (ping-pong buffers, unrolled by two so no copies).
// PREDICTION (H100, layer of 4 launches, src_shipped 60.4 us = 62.5%): gate/up 67 -> ~76%, down
// 77 -> ~82%, q/o and k/v +5-10 points; layer ~54 us = ~70%. H200 47 -> ~55%.
// MEASURED (H100, one run, copy 3.01 TB/s; src_shipped in the same run): % of copy for q/o, k/v,
// gate/up, down, layer of 4 launches: src_shipped 52.9 / 17.8 / 67.3 / 76.4 / 64.3 (58.2 us); pipe
// (R 2: 128 registers) 46.3 / 17.9 / 60.0 / 64.6 / 62.7 (59.6 us); pipe_w4 43.7 / 16.0 / 52.6 / 58.6 /
// 55.9; the loads alone (probe_words) 64.0 / 28.7 / 89.9 / 87.9 / 77.9 (7 launches). Slower on every
// big shape, like v11's register double buffering: more bytes in flight per warp did not buy
// bandwidth, so latency per warp is not what holds the shipped kernel near two thirds of its loads'
// rate. Not shipped.
#pragma once
#include "nf4_gemv_variants_ring.cuh"

// nf4_gemv_kernels.cuh's field pick by constant indices (it undefines its own copy).

namespace pipe {

using tsl::dot8_pairs;
using tsl::Nf4GemvGroup;

// One iteration's code words and absmax codes for kRows rows (kFull: every word in range).
template <int kRows, int kWords>
struct Stage {
  uint32_t cw[kRows][kWords];
  uint32_t q[kRows];   // the lane's absmax code byte (double quantization)
  float nested[kRows]; // its nested absmax
};

template <int kRows, int kWords>
__device__ __forceinline__ void load_stage(const Nf4GemvGroup& g, const uint32_t* const* rowp, const int64_t* e0, const int* m,
                                           int base, int end, Stage<kRows, kWords>& st) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int u = 0; u < kWords; u++)
#pragma unroll
    for (int r = 0; r < kRows; r++) st.cw[r][u] = __ldcs(rowp[r] + base + lane + 32 * u);
#pragma unroll
  for (int r = 0; r < kRows; r++) {
    const int mr = m[r];
    const int64_t b = ((e0[r] + (int64_t)base * 8) >> g.log2_blocksize) + lane;
    const bool ok = b <= (e0[r] + (int64_t)end * 8 - 1) >> g.log2_blocksize;
    st.q[r] = ok ? __ldg(TSL_PICK(g, mr, scales.q) + b) : 0u;
    st.nested[r] = ok ? __ldg(TSL_PICK(g, mr, scales.nested_absmax) + (b >> TSL_PICK(g, mr, log2_nested_blocksize))) : 0.f;
  }
}

template <int kRows, int kWords>
__device__ __forceinline__ void compute_stage(const Nf4GemvGroup& g, const int64_t* e0, const int* m, int base,
                                              const Stage<kRows, kWords>& st, const uint4* xs, const float* nested_code,
                                              const char* table, float* acc) {
  const int lane = threadIdx.x & 31;
  float mine[kRows];
  int t[kRows];
#pragma unroll
  for (int r = 0; r < kRows; r++) {
    mine[r] = fmaf(nested_code[m[r] * 256 + st.q[r]], st.nested[r], TSL_PICK(g, m[r], scales.nested_offset));
    t[r] = (int)((e0[r] + (int64_t)base * 8) & ((1 << g.log2_blocksize) - 1)) + lane * 8;
  }
#pragma unroll
  for (int u = 0; u < kWords; u++) {
    const uint4 xv = xs[base + lane + 32 * u];
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const float scale = __shfl_sync(0xffffffffu, mine[r], (t[r] + 256 * u) >> g.log2_blocksize);
      acc[r] = fmaf(scale, dot8_pairs(st.cw[r][u], xv, table, (uint32_t)lane * 4), acc[r]);
    }
  }
}

// Double-quantized absmax only (the bench's weights); x and in_f as the group kernel requires, plus
// in_f / 8 a multiple of 32 · kWords for the pipelined part (the rest takes the shipped iteration).
template <int kRows, int kWords>
__global__ void __launch_bounds__(256, 2) pipe_kernel(const Nf4GemvGroup g) {
  extern __shared__ __align__(16) char smem[];
  char* table = smem;
  uint4* xs = reinterpret_cast<uint4*>(smem + tsl::kTableBytes);
  __shared__ float nested_code[tsl::kMaxGroup * 256];
  tsl::fill_pair_table(table, blockDim.x);
  for (int i = threadIdx.x; i < g.count * 256; i += blockDim.x) nested_code[i] = TSL_PICK(g, i >> 8, scales.nested_code)[i & 255];
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  const int words = (int)(g.in_f >> 3);
  const uint4* x8 = reinterpret_cast<const uint4*>(g.x);
  for (int i = threadIdx.x; i < words; i += blockDim.x) xs[i] = __ldg(x8 + i);
  __syncthreads();
  const int lane = threadIdx.x & 31;
  constexpr int kStep = 32 * kWords;
  const int full = words / kStep;  // iterations with every word in range
  const int64_t groups = (g.rows + 8 * kRows - 1) / (8 * kRows);
  for (int64_t gi = blockIdx.x; gi < groups; gi += gridDim.x) {
    const int64_t row0 = (gi * 8 + (threadIdx.x >> 5)) * kRows;
    if (row0 >= g.rows) break;
    const uint32_t* rowp[kRows];
    int64_t e0[kRows];
    int m[kRows];
    float acc[kRows];
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const int64_t row = min(row0 + r, g.rows - 1);
      m[r] = tsl::matrix_of(g, row);
      const int64_t i = row - TSL_PICK(g, m[r], first_row);
      rowp[r] = TSL_PICK(g, m[r], packed) + i * words;
      e0[r] = i * g.in_f;
      acc[r] = 0.f;
    }
    Stage<kRows, kWords> a, b;
    int it = 0;
    if (full > 0) load_stage(g, rowp, e0, m, 0, kStep, a);
    for (; it + 2 <= full; it += 2) {
      load_stage(g, rowp, e0, m, (it + 1) * kStep, (it + 2) * kStep, b);
      compute_stage(g, e0, m, it * kStep, a, xs, nested_code, table, acc);
      if (it + 2 < full) load_stage(g, rowp, e0, m, (it + 2) * kStep, (it + 3) * kStep, a);
      compute_stage(g, e0, m, (it + 1) * kStep, b, xs, nested_code, table, acc);
    }
    if (it < full) compute_stage(g, e0, m, it * kStep, a, xs, nested_code, table, acc);
    if (full * kStep < words) {
      uint32_t cw[kRows][kWords];
      tsl::load_words<kRows, kWords, false>(rowp, full * kStep, words, cw);
      tsl::group_iteration<kRows, kWords, true, true, false>(g, rowp, e0, m, full * kStep, words, nested_code, table, acc, cw);
    }
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const float v = tsl::warp_sum(acc[r]);
      const int64_t row = row0 + r;
      if (lane == 0 && row < g.rows) tsl::finish_row(g, m[r], row - TSL_PICK(g, m[r], first_row), v);
    }
  }
}

// Grid capped at the resident blocks, as the shipped launch; shared memory = table + x.
template <int R, int W>
static void launch_pipe_r(const Args* list, int n, cudaStream_t s) {
  // Shared memory: the table and x (bf16, in_f values).
  const Nf4GemvGroup g = ring_group_of(list, n);
  launch_capped(pipe_kernel<R, W>, g, g.rows, R, "pipe", s, tsl::kTableBytes + (int)g.in_f * 2);
}

template <int W>
static void launch_pipe_group(const Args* list, int n, cudaStream_t s) {
  if (two_rows_per_warp_fit(list, n)) launch_pipe_r<2, W>(list, n, s);
  else launch_pipe_r<1, W>(list, n, s);
}
template <int W>
static void launch_pipe(const Args& a, cudaStream_t s) { launch_pipe_group<W>(&a, 1, s); }


// ---- probes: which pipe bounds the shipped kernel? ----------------------------------------------
// Per 2 KB of code words (2 rows x 8 words per lane) the shipped iteration sends ~128 operations
// through the MIO/LSU pipe: 64 table lookups (LDS), 32 wavefronts of x (8 LDG.128), 16 code-word
// loads and 16 scale shuffles. If that pipe sustains ~0.5 of them per clock per SM, it caps the
// kernel at ~8 bytes of codes per clock per SM: 62% of an H100's copy rate and 50% of an H200's,
// close to what the kernel reaches on both (64-67%, 47-57%), while the issue-rate ceiling (~3.3
// instructions per weight) would allow ~150% / ~120%. Two probes (wrong results, timed only) take
// parts of that traffic away: x loaded once per row group and reused (-32 wavefronts), and the
// scale taken without its shuffle (-16). PREDICTION if MIO-bound (H100 gate/up 67%): x-once ~84%
// (near the loads' 90%), no-shuffle ~77%. If issue-bound instead: +2% and +4-7%.
// MEASURED (H100, one run; % of copy for gate/up, down, layer of 4 launches): the loop's plain copy
// (mio_same) 62.9 / 74.7 / 68.1% (55.5 us; the shipped kernel 67.3 / 75.9 / 64.7%, 58.5 us: the copy
// lacks the tail iteration, the absmax bound check and the epilogue's bias/LoRA, and is faster as a
// group), x once 63.3 / 75.9 / 69.6%, no shuffle 67.0 / 77.8 / 71.6%, both 68.7 / 79.7 / 73.5%. Not
// MIO-bound as modelled (x traffic barely matters); the shuffles and per-word scale math cost ~5%.
template <int kRows, int kWords, bool kXOnce, bool kNoShfl>
__global__ void __launch_bounds__(256, kRows == 2 ? 2 : 1) mio_probe_kernel(const Nf4GemvGroup g) {
  extern __shared__ __align__(16) char table[];
  __shared__ float nested_code[tsl::kMaxGroup * 256];
  tsl::fill_pair_table(table, blockDim.x);
  for (int i = threadIdx.x; i < g.count * 256; i += blockDim.x) nested_code[i] = TSL_PICK(g, i >> 8, scales.nested_code)[i & 255];
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int words = (int)(g.in_f >> 3);
  const uint4* x8 = reinterpret_cast<const uint4*>(g.x);
  const int64_t groups = (g.rows + 8 * kRows - 1) / (8 * kRows);
  for (int64_t gi = blockIdx.x; gi < groups; gi += gridDim.x) {
    const int64_t row0 = (gi * 8 + (threadIdx.x >> 5)) * kRows;
    if (row0 >= g.rows) break;
    const uint32_t* rowp[kRows];
    int64_t e0[kRows];
    int m[kRows];
    float acc[kRows];
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const int64_t row = min(row0 + r, g.rows - 1);
      m[r] = tsl::matrix_of(g, row);
      const int64_t i = row - TSL_PICK(g, m[r], first_row);
      rowp[r] = TSL_PICK(g, m[r], packed) + i * words;
      e0[r] = i * g.in_f;
      acc[r] = 0.f;
    }
    uint4 xonce[kWords];
    if (kXOnce)
#pragma unroll
      for (int u = 0; u < kWords; u++) xonce[u] = __ldg(x8 + lane + 32 * u);
    for (int base = 0; base + 32 * kWords <= words; base += 32 * kWords) {
      uint32_t cw[kRows][kWords];
      uint4 xv[kWords];
#pragma unroll
      for (int u = 0; u < kWords; u++) {
#pragma unroll
        for (int r = 0; r < kRows; r++) cw[r][u] = __ldcs(rowp[r] + base + lane + 32 * u);
        xv[u] = kXOnce ? xonce[u] : __ldg(x8 + base + lane + 32 * u);
      }
      float mine[kRows];
      int t[kRows];
#pragma unroll
      for (int r = 0; r < kRows; r++) {
        const int mr = m[r];
        const int64_t start = e0[r] + (int64_t)base * 8;
        const int64_t b = (start >> g.log2_blocksize) + lane;
        mine[r] = fmaf(nested_code[mr * 256 + __ldg(TSL_PICK(g, mr, scales.q) + b)],
                       __ldg(TSL_PICK(g, mr, scales.nested_absmax) + (b >> TSL_PICK(g, mr, log2_nested_blocksize))),
                       TSL_PICK(g, mr, scales.nested_offset));
        t[r] = (int)(start & ((1 << g.log2_blocksize) - 1)) + lane * 8;
      }
#pragma unroll
      for (int u = 0; u < kWords; u++)
#pragma unroll
        for (int r = 0; r < kRows; r++) {
          const float scale = kNoShfl ? mine[r] : __shfl_sync(0xffffffffu, mine[r], (t[r] + 256 * u) >> g.log2_blocksize);
          acc[r] = fmaf(scale, dot8_pairs(cw[r][u], xv[u], table, (uint32_t)lane * 4), acc[r]);
        }
    }
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const float v = tsl::warp_sum(acc[r]);
      const int64_t row = row0 + r;
      if (lane == 0 && row < g.rows) tsl::finish_row(g, m[r], row - TSL_PICK(g, m[r], first_row), v);
    }
  }
}

template <bool kXOnce, bool kNoShfl>
static void launch_mio_group(const Args* list, int n, cudaStream_t s) {
  const Nf4GemvGroup g = ring_group_of(list, n);
  if (two_rows_per_warp_fit(list, n)) launch_capped(mio_probe_kernel<2, 8, kXOnce, kNoShfl>, g, g.rows, 2, "mio probe", s);
  else launch_capped(mio_probe_kernel<1, 8, kXOnce, kNoShfl>, g, g.rows, 1, "mio probe", s);
}
template <bool kXOnce, bool kNoShfl>
static void launch_mio(const Args& a, cudaStream_t s) { launch_mio_group<kXOnce, kNoShfl>(&a, 1, s); }
}  // namespace pipe


static const Variant kPipeVariants[] = {
    // 8 words per lane per row and stage (2 KB in flight per warp per stage at 2 rows)
    {"pipe", pipe::launch_pipe<8>, false, pipe::launch_pipe_group<8>},
    // 4 words: half the registers per stage, twice the iterations
    {"pipe_w4", pipe::launch_pipe<4>, false, pipe::launch_pipe_group<4>},
    // the probes above (wrong results by design): the shipped loop as is, x once, no shuffle, both
    {"mio_same", pipe::launch_mio<false, false>, true, pipe::launch_mio_group<false, false>},
    {"mio_xonce", pipe::launch_mio<true, false>, true, pipe::launch_mio_group<true, false>},
    {"mio_noshfl", pipe::launch_mio<false, true>, true, pipe::launch_mio_group<false, true>},
    {"mio_both", pipe::launch_mio<true, true>, true, pipe::launch_mio_group<true, true>},
};
