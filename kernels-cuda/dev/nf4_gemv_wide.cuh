// NF4 matrix-vector bench: the shipped loop (nf4_gemv_kernel's iteration: code words into registers,
// lane l decodes words l, l+32, ..., one absmax block per lane shuffled to the words) with fewer
// instructions per weight, for one matrix and for a group of matrices sharing x:
// - one block of 16 warps per SM (one table instead of two), the table at a 64 KB boundary of the
//   shared window so that one PRMT makes a lookup's whole address (dot8_at of nf4_gemv_stream.cuh;
//   the shipped loop adds the table base to each PRMT-made offset: ~3.7 IMAD per code word and row,
//   12% of its instructions on gate/up);
// - blocksize 64 only: rows start on a block (in_f % 64 == 0), so word l + 32u of an iteration takes
//   the scale of lane l/8 + 4u, and each row's absmax codes, nested absmax and matrix fields are
//   picked once per row group instead of per iteration (32-bit block indices).
// Why: on an H200 the shipped kernel is bound by the SM (same time as on an H100; issue slots 42%
// busy, ~31 instructions per code word and row on gate/up). Included by nf4_gemv_variants_stream.cuh.
// Below: the same loop with L2 prefetch (kPrefetch), x from shared memory (kXs), and with 1-3 tasks'
// loads in flight in registers (nf4_gemv_wide_ring_kernel).
//
// Measured (H200, copy 4.18-4.23 TB/s; us for q/o, k/v, gate/up, down, layer of 4 launches; the
// shipped kernels in the same runs 4.5 / 2.9 / 14.0 / 11.8 / 50.3-50.9):
//   wide_r2 4.8 / 4.3 / 13.7 / 11.8 / 50.3 (ncu on gate/up: 6.00M instructions against 7.10M, issue
//     37% busy, long-scoreboard stall 1.37 -> 1.85 per instruction); wide_r1 5.3 / 3.3 / 14.5 / 13.5 /
//     58.1; wide_auto (the shipped rows-per-warp rule) 4.8 / 4.3 / 13.7-13.8 / 11.8 / 50.3-50.5;
//   kPrefetch (L2 bulk prefetch one row group ahead): wide_r2_pf 5.2 / 4.0 / 14.8 / 13.7 / 58.2
//     (long-scoreboard 2.21); wide_r1_pf 5.9 / 3.0 / 15.4 / 15.9 / 65.5;
//   kXs: wide_auto_xs 5.2 / 4.5 / 14.0 / 12.5 / 52.9;
//   wide_db (the ring at depth 2) 5.6 / 3.1-3.2 / 14.7-14.9 / 13.9-14.3 / 59.8-60.5
//     (long-scoreboard 2.30, on the first use of the buffered absmax code); with kXs 60.8;
//   wide_ring3 5.6 / 2.8 / 14.5 / 13.9 / 60.8 (7.04M instructions, long-scoreboard 1.84); wide_ring4
//     5.8 / 2.8 / 15.0 / 14.2 / 72.4 (the group form spills).
//   kWarps (1 row per warp): 20 warps (95 registers) 5.9 / 3.6 / 14.5 / 15.4 / 58.1; 24 (79) 6.5 / 4.0 /
//     14.2 / 17.7 / 61.7; 32 (64) 5.2 / 4.6 / 15.1 / 12.7 / 55.2 (ncu: 2.0 eligible warps per
//     scheduler, issue still 41% busy, MIO throttle 2.63 and not-selected 2.61 cycles per instruction).
// So 15% fewer instructions gave 2% on gate/up; neither loads kept 1-3 tasks ahead in registers nor
// L2 prefetch shortened the wait on them; twice the warps left issue at ~40% and moved the stall to
// the MIO queue. With the weights L2-resident (probe_src_l2 in nf4_gemv_variants_stream.cuh) the
// shipped loop is only 5% faster (gate/up 13.2 us, down 11.1): the memory is not what bounds it. The
// SM's load/store path is: ~6.5 LSU instructions per code word and row (4 table lookups, the word, x,
// the scale shuffle), LSU 50-57% of peak in every form, MIO throttle wherever warps were added.
#pragma once
#include "nf4_gemv_stream.cuh"

namespace tsl {
namespace {

constexpr int kWideWarps = 16;
constexpr int kWideSmem = 2 * kTableBytes;  // the table at the first 64 KB boundary past the dynamic start

// One row's sources, picked once per row group: this lane's code words, absmax codes (or f32 absmax),
// the matrix's nested absmax and the row's first absmax block.
struct WideRow {
  const uint32_t* words;
  const uint8_t* q;
  const float* f32;
  const float* nested;
  float nested_offset;
  int first_block, log2_nested, code_base, m;
};

template <bool kDoubleQuant, bool kGroup>
__device__ __forceinline__ WideRow wide_row(const Nf4GemvGroup& g, int64_t row, int words) {
  const int lane = threadIdx.x & 31;
  WideRow w;
  row = min(row, g.rows - 1);
  w.m = kGroup ? matrix_of(g, row) : 0;
  const int64_t i = row - (kGroup ? TSL_PICK(g, w.m, first_row) : 0);
  w.words = TSL_PICK(g, w.m, packed) + i * words + lane;
  w.first_block = (int)(i * (words >> 3));
  if (kDoubleQuant) {
    w.q = TSL_PICK(g, w.m, scales.q) + w.first_block;
    w.nested = TSL_PICK(g, w.m, scales.nested_absmax);
    w.nested_offset = TSL_PICK(g, w.m, scales.nested_offset);
    w.log2_nested = TSL_PICK(g, w.m, log2_nested_blocksize);
    w.code_base = w.m * 256;
  } else {
    w.f32 = TSL_PICK(g, w.m, scales.f32) + w.first_block;
  }
  return w;
}

// One iteration's x (8 bf16 per code word): from the block's copy in shared memory (xs) where there
// is one, else from global memory as load_x.
template <bool kFull>
__device__ __forceinline__ void wide_x(const Nf4GemvGroup& g, const uint4* xs, int base, int words, uint4 (&xv)[8]) {
  const int lane = threadIdx.x & 31;
  if (xs) {
#pragma unroll
    for (int u = 0; u < 8; u++) xv[u] = xs[kFull || base + lane + 32 * u < words ? base + lane + 32 * u : 0];
  } else {
    load_x<8, kFull>(g.x, base, words, xv);
  }
}

// x into the shared memory below the table where it fits (after griddepcontrol.wait: x comes from
// the previous kernel); null where it does not.
__device__ __forceinline__ const uint4* wide_stage_x(const Nf4GemvGroup& g, char* smem, uint32_t room) {
  if ((uint32_t)g.in_f * 2 > room) return nullptr;
  uint4* xs = reinterpret_cast<uint4*>(smem);
  for (int k = threadIdx.x; k < (int)(g.in_f >> 3); k += blockDim.x) xs[k] = __ldg(reinterpret_cast<const uint4*>(g.x) + k);
  return xs;
}

// One iteration (256 words of each row from base) into acc; cw: its code words, already loaded.
template <int kRows, bool kDoubleQuant, bool kFull>
__device__ __forceinline__ void wide_iteration(const Nf4GemvGroup& g, const uint4* xs, const WideRow* rows, int base,
                                               int words, const float* nested_code, uint32_t lane_table, float* acc,
                                               const uint32_t (&cw)[kRows][8]) {
  const int lane = threadIdx.x & 31;
  uint4 xv[8];
  wide_x<kFull>(g, xs, base, words, xv);
  // The lane's block of the iteration (lanes past the row's last block take it again).
  const int jb = kFull ? (base >> 3) + lane : min((base >> 3) + lane, (words >> 3) - 1);
  float mine[kRows];
#pragma unroll
  for (int r = 0; r < kRows; r++)
    mine[r] = kDoubleQuant ? fmaf(nested_code[rows[r].code_base + __ldg(rows[r].q + jb)],
                                  __ldg(rows[r].nested + ((rows[r].first_block + jb) >> rows[r].log2_nested)), rows[r].nested_offset)
                           : __ldg(rows[r].f32 + jb);
#pragma unroll
  for (int u = 0; u < 8; u++) {
    const bool ok = kFull || base + lane + 32 * u < words;
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const float scale = __shfl_sync(0xffffffffu, mine[r], (lane >> 3) + 4 * u);
      acc[r] = fmaf(ok ? scale : 0.f, dot8_at(cw[r][u], xv[u], lane_table), acc[r]);
    }
  }
}

template <int kRows, bool kFull>
__device__ __forceinline__ void wide_words(const WideRow* rows, int base, int words, uint32_t (&cw)[kRows][8]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int u = 0; u < 8; u++) {
    const bool ok = kFull || base + lane + 32 * u < words;
#pragma unroll
    for (int r = 0; r < kRows; r++) cw[r][u] = ok ? __ldcs(rows[r].words + base + 32 * u) : 0u;
  }
}

// kPrefetch: lanes 0..kRows-1 ask L2 for their row of the warp's next row group (code words, and
// the absmax codes where a row's are whole 16-byte units) one group ahead, with one bulk prefetch
// each, so that group's loads find L2 instead of waiting on memory (the loop stalls on its loads:
// with fewer instructions per weight its long-scoreboard stall grew, 1.37 -> 1.85 per instruction).
template <bool kGroup>
__device__ __forceinline__ void wide_prefetch(const Nf4GemvGroup& g, int64_t row, int words) {
  if (row >= g.rows) return;
  const int m = kGroup ? matrix_of(g, row) : 0;
  const int64_t i = row - (kGroup ? TSL_PICK(g, m, first_row) : 0);
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(TSL_PICK(g, m, packed) + i * words), "r"(words * 4) : "memory");
  const uint8_t* q = TSL_PICK(g, m, scales.q);
  if (q && (words >> 3) % 16 == 0 && ((uintptr_t)q & 15) == 0)
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(q + i * (words >> 3)), "r"(words >> 3) : "memory");
}

// The start of every wide kernel: the pair table filled at the first 64 KB boundary of the shared
// window past the dynamic start (returned: its address) and the nested codes (frozen weights).
template <bool kDoubleQuant, bool kGroup>
__device__ __forceinline__ uint32_t wide_prologue(const Nf4GemvGroup& g, char* smem, float* nested_code) {
  const uint32_t dyn = shared_u32(smem), table_at = (dyn + 0xffffu) & ~0xffffu;
  fill_pair_table(smem + (table_at - dyn), blockDim.x);
  if (kDoubleQuant) fill_nested_codes<kGroup>(g, nested_code);
  return table_at;
}

// The rows' sums finished: every row's warp sum, then lane 0 writes y (+ bias, + LoRA).
template <int kRows, bool kGroup>
__device__ __forceinline__ void wide_finish(const Nf4GemvGroup& g, const WideRow* rows, int64_t row0, const float* acc) {
  float v[kRows];
#pragma unroll
  for (int r = 0; r < kRows; r++) v[r] = warp_sum(acc[r]);
#pragma unroll
  for (int r = 0; r < kRows; r++) {
    const int64_t row = row0 + r;
    if ((threadIdx.x & 31) == 0 && row < g.rows)
      finish_row(g, rows[r].m, row - (kGroup ? TSL_PICK(g, rows[r].m, first_row) : 0), v[r]);
  }
}

// Blocksize 64 only. Dynamic shared memory kWideSmem; grid at most one block per SM.
// kXs: x read from a copy in shared memory (below the table), not through L1. kWarps: warps per
// block (more warps, fewer registers each: 20 warps allow 102, 24 allow 85).
template <int kRows, bool kDoubleQuant, bool kGroup, bool kPrefetch = false, bool kXs = false, int kWarps = kWarps>
__global__ void __launch_bounds__(kWarps * 32, 1) nf4_gemv_wide_kernel(const Nf4GemvGroup g) {
  extern __shared__ __align__(16) char wide_smem[];
  __shared__ float nested_code[kGroup ? kMaxGroup * 256 : 256];
  const uint32_t table_at = wide_prologue<kDoubleQuant, kGroup>(g, wide_smem, nested_code);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int words = (int)(g.in_f >> 3);
  const int64_t groups = (g.rows + kWarps * kRows - 1) / (kWarps * kRows);
  // The block's first iteration of code words before waiting (frozen weights), as nf4_gemv_kernel.
  WideRow rows[kRows];
  int64_t row0 = ((int64_t)blockIdx.x * kWarps + warp) * kRows;
#pragma unroll
  for (int r = 0; r < kRows; r++) rows[r] = wide_row<kDoubleQuant, kGroup>(g, row0 + r, words);
  if (kPrefetch && lane < kRows) {
    wide_prefetch<kGroup>(g, row0 + lane, words);
    wide_prefetch<kGroup>(g, row0 + lane + (int64_t)gridDim.x * kWarps * kRows, words);
  }
  uint32_t cw[kRows][8];
  const bool whole_first = words >= 256;
  if (whole_first) wide_words<kRows, true>(rows, 0, words, cw);
  else wide_words<kRows, false>(rows, 0, words, cw);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  const uint4* xs = kXs ? wide_stage_x(g, wide_smem, table_at - shared_u32(wide_smem)) : nullptr;
  __syncthreads();
  const uint32_t lane_table = table_at | (uint32_t)(lane * 4);
  for (int64_t gi = blockIdx.x; gi < groups; gi += gridDim.x) {
    row0 = (gi * kWarps + warp) * kRows;
    if (row0 >= g.rows) break;
    if (gi != blockIdx.x) {
#pragma unroll
      for (int r = 0; r < kRows; r++) rows[r] = wide_row<kDoubleQuant, kGroup>(g, row0 + r, words);
      if (kPrefetch && lane < kRows) wide_prefetch<kGroup>(g, row0 + lane + (int64_t)gridDim.x * kWarps * kRows, words);
    }
    float acc[kRows] = {};
    int base = 0;
    if (gi == blockIdx.x) {
      if (whole_first) wide_iteration<kRows, kDoubleQuant, true>(g, xs, rows, 0, words, nested_code, lane_table, acc, cw);
      else wide_iteration<kRows, kDoubleQuant, false>(g, xs, rows, 0, words, nested_code, lane_table, acc, cw);
      base = 256;
    }
    for (; base + 256 <= words; base += 256) {
      uint32_t c[kRows][8];
      wide_words<kRows, true>(rows, base, words, c);
      wide_iteration<kRows, kDoubleQuant, true>(g, xs, rows, base, words, nested_code, lane_table, acc, c);
    }
    if (base < words) {
      uint32_t c[kRows][8];
      wide_words<kRows, false>(rows, base, words, c);
      wide_iteration<kRows, kDoubleQuant, false>(g, xs, rows, base, words, nested_code, lane_table, acc, c);
    }
    wide_finish<kRows, kGroup>(g, rows, row0, acc);
  }
}

}  // namespace
}  // namespace tsl

namespace tsl {
namespace {

// The wide loop with 1 row per warp and kDepth-1 tasks' loads in flight during a task's math: a ring
// of kDepth register buffers (8 code words, the absmax code and nested absmax of the lane's block),
// the task loop unrolled by kDepth so every buffer index is a constant, tasks running on across row
// groups. Why: with fewer instructions per weight the wide loop waits longer on its loads (long-
// scoreboard stall 1.85 cycles per instruction), and L2 prefetch one row group ahead made it slower.
// kDepth 2 (wide_db) still stalled on the first use of the buffered absmax code: the loads outlast a
// task's math (~0.5 us against ~1.2 us). kWhole: in_f % 2048 == 0 (no partial task).
template <int kDepth, bool kDoubleQuant, bool kGroup, bool kWhole>
__global__ void __launch_bounds__(kWideWarps * 32, 1) nf4_gemv_wide_ring_kernel(const Nf4GemvGroup g) {
  extern __shared__ __align__(16) char wide_smem[];
  __shared__ float nested_code[kGroup ? kMaxGroup * 256 : 256];
  const uint32_t table_at = wide_prologue<kDoubleQuant, kGroup>(g, wide_smem, nested_code);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int words = (int)(g.in_f >> 3), iters = (words + 255) >> 8, blocks = words >> 3;
  const int64_t reach = g.rows > warp ? (g.rows - warp + kWideWarps - 1) / kWideWarps : 0;
  const int64_t my_groups = reach > blockIdx.x ? (reach - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
  const int64_t tasks = my_groups * iters;
  uint32_t cw[kDepth][8], q[kDepth];
  float nested[kDepth];
  int64_t issue_group = blockIdx.x;
  int issue_it = 0;
  WideRow issue_row = wide_row<kDoubleQuant, kGroup>(g, issue_group * kWideWarps + warp, words);
  // Task t's loads into buffer slot (nothing past the last task).
  const auto issue = [&](int64_t t, uint32_t (&w)[8], uint32_t& qs, float& ns) {
    if (t >= tasks) return;
    const int base = issue_it * 256;
#pragma unroll
    for (int u = 0; u < 8; u++) w[u] = kWhole || base + lane + 32 * u < words ? __ldcs(issue_row.words + base + 32 * u) : 0u;
    const int jb = kWhole ? (base >> 3) + lane : min((base >> 3) + lane, blocks - 1);
    if (kDoubleQuant) {
      qs = __ldg(issue_row.q + jb);
      ns = __ldg(issue_row.nested + ((issue_row.first_block + jb) >> issue_row.log2_nested));
    } else {
      ns = __ldg(issue_row.f32 + jb);
    }
    if (++issue_it == iters) {
      issue_it = 0;
      issue_group += gridDim.x;
      if (t + 1 < tasks) issue_row = wide_row<kDoubleQuant, kGroup>(g, issue_group * kWideWarps + warp, words);
    }
  };
#pragma unroll
  for (int d = 0; d + 1 < kDepth; d++) issue(d, cw[d], q[d], nested[d]);  // frozen weights: before waiting
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  __syncthreads();
  const uint32_t lane_table = table_at | (uint32_t)(lane * 4);
  int64_t group = blockIdx.x;
  int it = 0;
  WideRow row = wide_row<kDoubleQuant, kGroup>(g, group * kWideWarps + warp, words);
  float acc = 0.f;
  for (int64_t t0 = 0; t0 < tasks; t0 += kDepth) {
#pragma unroll
    for (int d = 0; d < kDepth; d++) {
      const int64_t t = t0 + d;
      if (t >= tasks) break;
      constexpr int kAhead = kDepth - 1;
      issue(t + kAhead, cw[(d + kAhead) % kDepth], q[(d + kAhead) % kDepth], nested[(d + kAhead) % kDepth]);
      const int base = it * 256;
      uint4 xv[8];
      load_x<8, kWhole>(g.x, base, words, xv);
      const float mine = kDoubleQuant ? fmaf(nested_code[row.code_base + q[d]], nested[d], row.nested_offset) : nested[d];
#pragma unroll
      for (int u = 0; u < 8; u++) {
        const bool ok = kWhole || base + lane + 32 * u < words;
        const float scale = __shfl_sync(0xffffffffu, mine, (lane >> 3) + 4 * u);
        acc = fmaf(ok ? scale : 0.f, dot8_at(cw[d][u], xv[u], lane_table), acc);
      }
      if (++it == iters) {
        const float v = warp_sum(acc);
        const int64_t r = group * kWideWarps + warp;
        if (lane == 0) finish_row(g, row.m, r - (kGroup ? TSL_PICK(g, row.m, first_row) : 0), v);
        acc = 0.f;
        it = 0;
        group += gridDim.x;
        if (t + 1 < tasks) row = wide_row<kDoubleQuant, kGroup>(g, group * kWideWarps + warp, words);
      }
    }
  }
}

}  // namespace
}  // namespace tsl

namespace tsl {
namespace {

// The lanes layout (nf4_gemv_variants_lanes.cuh: lane l takes words 8l..8l+7 of each 256, one
// absmax block, so no scale shuffles and one FFMA per 8 words; its words as two 16-byte loads; x
// from shared memory, chunk k at k ^ ((k >> 3) & 7)) in the wide block: 16 warps, the table at a
// 64 KB boundary (dot8_at), x in the space below it. Why: ~4.75 load/store-pipe instructions per
// code word and row (4 lookups, a quarter word load, half an x read) against the shipped ~6.5,
// the pipe that bounds the H200 kernel. Double quantization, blocksize 64, in_f % 2048 == 0 only.
// Measured (H200, us for q/o, k/v, gate/up, down, layer of 4; shipped 4.5 / 2.9 / 14.0 / 11.8 /
// 50.5): 5.3 / 4.7 / 14.3 / 12.7 / 52.1-53.2; the older 2-block lanes variant 5.6 / 3.8 / 15.3 /
// 13.4 / 53.0. ncu on gate/up: LSU 41% of peak (shipped 50%), 6.15M instructions, issue 36% busy,
// long-scoreboard stall 1.98: fewer load/store instructions did not shorten the loop either.
template <int kRows, bool kGroup>
__global__ void __launch_bounds__(kWideWarps * 32, 1) nf4_gemv_wide_lanes_kernel(const Nf4GemvGroup g) {
  extern __shared__ __align__(16) char wide_smem[];
  __shared__ float nested_code[kGroup ? kMaxGroup * 256 : 256];
  const uint32_t table_at = wide_prologue<true, kGroup>(g, wide_smem, nested_code);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  const int words = (int)(g.in_f >> 3);
  uint4* xs = reinterpret_cast<uint4*>(wide_smem);  // below the table (in_f·2 bytes must fit: the launcher checks)
  for (int k = threadIdx.x; k < words; k += blockDim.x) xs[x_chunk_at(k)] = __ldg(reinterpret_cast<const uint4*>(g.x) + k);
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const uint32_t lane_table = table_at | (uint32_t)(lane * 4);
  const int64_t groups = (g.rows + kWideWarps * kRows - 1) / (kWideWarps * kRows);
  for (int64_t gi = blockIdx.x; gi < groups; gi += gridDim.x) {
    const int64_t row0 = (gi * kWideWarps + warp) * kRows;
    if (row0 >= g.rows) break;
    WideRow rows[kRows];
#pragma unroll
    for (int r = 0; r < kRows; r++) rows[r] = wide_row<true, kGroup>(g, row0 + r, words);
    float acc[kRows] = {};
    for (int base = 0; base < words; base += 256) {
      uint4 cw[kRows][2];
      float scale[kRows];
#pragma unroll
      for (int r = 0; r < kRows; r++) {
        const uint4* wp = reinterpret_cast<const uint4*>(rows[r].words - lane + base) + 2 * lane;
        cw[r][0] = __ldcs(wp);
        cw[r][1] = __ldcs(wp + 1);
        const int jb = (base >> 3) + lane;
        scale[r] = fmaf(nested_code[rows[r].code_base + __ldg(rows[r].q + jb)],
                        __ldg(rows[r].nested + ((rows[r].first_block + jb) >> rows[r].log2_nested)), rows[r].nested_offset);
      }
      float part[kRows] = {};
#pragma unroll
      for (int u = 0; u < 8; u++) {
        const uint4 xv = xs[x_chunk_at(base + 8 * lane + u)];
#pragma unroll
        for (int r = 0; r < kRows; r++) {
          const uint4& q = cw[r][u >> 2];
          const uint32_t w = (u & 3) == 0 ? q.x : (u & 3) == 1 ? q.y : (u & 3) == 2 ? q.z : q.w;
          part[r] += dot8_at(w, xv, lane_table);
        }
      }
#pragma unroll
      for (int r = 0; r < kRows; r++) acc[r] = fmaf(scale[r], part[r], acc[r]);
    }
    wide_finish<kRows, kGroup>(g, rows, row0, acc);
  }
}

}  // namespace
}  // namespace tsl
