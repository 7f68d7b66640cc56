// NF4 matrix-vector bench, the streaming kernel (lost; sm_80+ cp.async, dependent launch on sm_90):
// the code words and absmax of the tasks ahead come into shared memory by cp.async while the warp
// decodes the current one, so a warp's next loads no longer wait for its math (in the shipped
// nf4_gemv_kernel an iteration's code words are loaded into registers and the next load issues
// only after that iteration's math: each iteration pays the memory latency and the math in turn).
// Included by nf4_gemv_variants_stream.cuh only.
//
// Why it was tried: the shipped kernel runs at the same speed on an H100 and an H200 (gate/up
// 14.0-14.8 us on both), so the SM's time per iteration, not the card's bandwidth, bounds it; on the
// H200 its loads alone reach 84% of copy on gate/up, its loads with the math 51.5%. Nsight Compute
// (H200, gate/up): issue slots 42% busy, 2.09 IPC, per issued instruction 1.37 cycles of long-
// scoreboard (memory) stall, 1.01 fixed-latency wait, 0.89 short scoreboard (the table lookups).
//
// Work split: one block of kStreamWarps warps per SM (one 64 KB pair table for all) takes groups
// of kStreamWarps·kRows rows grid-strided; warp w takes rows w·kRows.. of each group. A warp's work
// is a flat run of tasks (group, 256 code words of each row): kStages-1 tasks ahead of the one it
// decodes are in flight, across row-group boundaries. The math is nf4_gemv_kernel's (lane l decodes
// words l, l+32, ...; the task's 32 absmax blocks decoded once, one per lane, and shuffled); a
// stage holds, per row, the code words (16 bytes per lane per copy), 32 absmax codes and the two
// nested absmax values the task may span (or 32 f32 absmax). The table sits at a 64 KB boundary of
// the shared window so that one PRMT makes a lookup's whole address (dot8_at: no add per lookup).
//
// Measured (H200, copy 4.19-4.22 TB/s, kernels-cuda/dev/nf4_gemv_bench.cu, src_shipped in the same
// runs: q/o 4.5 us, k/v 2.9, gate/up 14.0, down 11.8, layer of 4 launches 50.5-50.8 us = 52.6-53.2%):
// - first form (addresses and absmax spans recomputed per task): gate/up 18.4-20.6 us for every
//   depth (kStages 3-8 alike); ncu: 11.8M instructions against the shipped 7.1M, long-scoreboard
//   stalls 1.37 -> 0.16 per instruction (the copies do run ahead), ALU pipe 57% and "not selected"
//   the top stall: issue-bound on its own overhead.
// - row-group state kept across tasks, predicated copies, blocksize 64 and nested 256 fixed, the
//   aligned table: 8.17M instructions; gate/up 15.8 us (2 rows, 3 stages), down 13.6, layer of 4
//   launches 61.3 us = 43.5%; stalls now MIO throttle 1.06 and short scoreboard 1.14 per instruction
//   (LSU pipe 49% of peak): the shared-memory word reads added to the table lookups.
// - the lanes form (kLanes: each lane one absmax block, no shuffles, x from shared memory):
//   gate/up 14.8, down 13.3, layer 58.2 us = 46.2%.
// Every form was slower than the shipped loop on every shape; q/o and k/v (2-4 tasks per warp) lose
// most, where nothing is left to overlap. The bound that remains is the SM's load/store pipe (4 table
// lookups per code word and row, plus the word, x and scale traffic), not the memory latency.
#pragma once
#include "../src/nf4_gemv_kernels.cuh"

namespace tsl {
namespace {

constexpr int kStreamWarps = 16;

__device__ __forceinline__ uint32_t shared_u32(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void stream_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void stream_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

constexpr int kStreamWords = 256;  // code words per row per task: 2048 weights, 32 absmax blocks of 64
constexpr int kStreamNested = 256;  // nested absmax blocksize (bitsandbytes')

template <int kRows, int kStages>
struct StreamShape {
  static constexpr int kRowBytes = 4 * kStreamWords;  // one row's code words of a task
  static constexpr int kScaleBytes = 128;  // absmax codes at 0, nested absmax at 32 and 36; or 32 f32 absmax
  static constexpr int kStageBytes = kRows * (kRowBytes + kScaleBytes);
  static constexpr int kArea = kStages * kStageBytes;  // one warp's stages
  // The table sits at a 64 KB boundary of the shared window (stream_table_at), the warps' stages
  // below and above it: with the slack of one area, any start of dynamic shared memory fits.
  static constexpr int kSmem = kTableBytes + (kStreamWarps + 1) * kArea > 2 * kTableBytes
                                   ? kTableBytes + (kStreamWarps + 1) * kArea
                                   : 2 * kTableBytes;
};

// Predicated cp.async (nothing is read or written where !p).
__device__ __forceinline__ void stream_copy16_if(bool p, uint32_t dst, const void* src) {
  asm volatile("{ .reg .pred q; setp.ne.b32 q, %2, 0; @q cp.async.cg.shared.global [%0], [%1], 16; }" ::"r"(dst), "l"(src),
               "r"((int)p)
               : "memory");
}
__device__ __forceinline__ void stream_copy4_if(bool p, uint32_t dst, const void* src) {
  asm volatile("{ .reg .pred q; setp.ne.b32 q, %2, 0; @q cp.async.ca.shared.global [%0], [%1], 4; }" ::"r"(dst), "l"(src),
               "r"((int)p)
               : "memory");
}

// Σ of 8 weights against 8 bf16 of x as dot8_pairs, with the table at a 64 KB boundary of the
// shared window: one PRMT makes the whole address (lane_table: the table's address | 4·lane; bytes
// 4·lane, code byte j, then the table's two high bytes), so no add per lookup.
__device__ __forceinline__ float dot8_at(uint32_t w, const uint4 xv, uint32_t lane_table) {
  const uint32_t xw[4] = {xv.x, xv.y, xv.z, xv.w};
  __nv_bfloat162 acc;
#pragma unroll
  for (int j = 0; j < 4; j++) {
    uint32_t p;
    asm("ld.shared.u32 %0, [%1];" : "=r"(p) : "r"(prmt(w, lane_table, 0x7604u + 0x10u * j)));
    const __nv_bfloat162 pb = *reinterpret_cast<const __nv_bfloat162*>(&p);
    const __nv_bfloat162 xb = *reinterpret_cast<const __nv_bfloat162*>(&xw[j]);
    acc = j == 0 ? __hmul2(pb, xb) : __hfma2(pb, xb, acc);
  }
  const uint32_t bits = *reinterpret_cast<const uint32_t*>(&acc);
  return __uint_as_float(bits << 16) + __uint_as_float(bits & 0xffff0000u);
}

// Where the copies of a warp's row group come from: per row, this lane's first code word (4 per
// 16-byte copy) and its absmax source: lanes 0-7 4 absmax codes each, lanes 8-9 the nested absmax
// of the row's block 256-block (the task adds its own), or, without double quantization, lane l's f32 absmax.
template <int kRows>
struct StreamSource {
  const uint32_t* words[kRows];
  const char* scale[kRows];
  int first_low[kRows];  // the row's first absmax block mod kStreamNested
};

// The decoding side's view of the same rows: matrix and first absmax block mod kStreamNested.
template <int kRows>
struct StreamRows {
  int m[kRows];
  int first_low[kRows];
};

template <int kRows, bool kDoubleQuant, bool kGroup>
__device__ __forceinline__ void stream_source_of(const Nf4GemvGroup& g, int64_t row0, int words, StreamSource<kRows>& s) {
  const int lane = threadIdx.x & 31;
  const uint32_t* rowp[kRows];
  int64_t e0[kRows];
  int m[kRows];
  group_rows_from<kRows, kGroup>(g, row0, words, rowp, e0, m);
#pragma unroll
  for (int r = 0; r < kRows; r++) {
    s.words[r] = rowp[r] + 4 * lane;
    const int64_t block0 = e0[r] >> 6;
    s.first_low[r] = (int)(block0 & (kStreamNested - 1));
    if (kDoubleQuant)
      s.scale[r] = lane < 8 ? reinterpret_cast<const char*>(TSL_PICK(g, m[r], scales.q) + block0 + 4 * lane)
                            : reinterpret_cast<const char*>(TSL_PICK(g, m[r], scales.nested_absmax) + (block0 >> 8));
    else
      s.scale[r] = reinterpret_cast<const char*>(TSL_PICK(g, m[r], scales.f32) + block0 + lane);
  }
}

template <int kRows, bool kGroup>
__device__ __forceinline__ void stream_rows_of(const Nf4GemvGroup& g, int64_t row0, StreamRows<kRows>& s) {
#pragma unroll
  for (int r = 0; r < kRows; r++) {
    const int64_t row = min(row0 + r, g.rows - 1);
    const int m = kGroup ? matrix_of(g, row) : 0;
    s.m[r] = m;
    s.first_low[r] = (int)((((row - (kGroup ? TSL_PICK(g, m, first_row) : 0)) * g.in_f) >> 6) & (kStreamNested - 1));
  }
}

// The lanes form's shared-memory layouts: a row's 16-byte word chunk c at chunk_at(c), so that the
// 8 lanes of a wavefront (chunks 2l or 2l+1) cover all banks; x's chunk k (8 bf16) at x_chunk_at(k).
__device__ __forceinline__ int chunk_at(int c) { return c ^ ((c >> 3) & 1); }
__device__ __forceinline__ int x_chunk_at(int k) { return k ^ ((k >> 3) & 7); }

// Starts the copies of task `it` of the row group s: words [256·it, 256·it + 256) of each row and
// their absmax. stage: the stage's shared address.
template <int kRows, int kStages, bool kDoubleQuant, bool kLanes>
__device__ __forceinline__ void stream_issue(const StreamSource<kRows>& s, int it, int words, uint32_t stage) {
  using S = StreamShape<kRows, kStages>;
  const int lane = threadIdx.x & 31;
  const int base = it * kStreamWords, blocks = words >> 3, bbase = it * 32;
#pragma unroll
  for (int r = 0; r < kRows; r++) {
    const uint32_t dst = stage + r * (S::kRowBytes + S::kScaleBytes);
#pragma unroll
    for (int v = 0; v < 2; v++)  // words % 8 == 0: 4 words are all in the row or all past it
      stream_copy16_if(base + 4 * lane + 128 * v < words, dst + (kLanes ? chunk_at(lane + 32 * v) : lane + 32 * v) * 16,
                       s.words[r] + base + 128 * v);
    const uint32_t sc = dst + S::kRowBytes;
    if (kDoubleQuant) {
      // lanes 0-7: 4 codes (blocks % 4 == 0: all in the row or all past it); 8-9: the nested absmax
      // of the task's first and last block (blocks of 32 per task and 256 per nested block: at most 2).
      const int last = min(bbase + 31, blocks - 1);
      const int nested = ((s.first_low[r] + (lane == 8 ? bbase : last)) >> 8);
      stream_copy4_if(lane < 8 ? bbase + 4 * lane < blocks : lane < 10, sc + (lane < 8 ? 4 * lane : 32 + 4 * (lane - 8)),
                      lane < 8 ? s.scale[r] + bbase : s.scale[r] + 4 * nested);
    } else {
      stream_copy4_if(bbase + lane < blocks, sc + 4 * lane, s.scale[r] + 4 * bbase);
    }
  }
}

// Decodes task `it` of the row group from its stage into acc (the math of group_iteration, with the
// code words and absmax read from shared memory). Blocks of 64 from each row's start: word l + 32j
// (lane l's j-th) lies in the task's block l/8 + 4j.
template <int kRows, int kStages, bool kDoubleQuant, bool kGroup, bool kFull>
__device__ __forceinline__ void stream_math(const Nf4GemvGroup& g, const StreamRows<kRows>& s, int it, int words,
                                            const char* stage, const float* nested_code, uint32_t lane_table, float* acc) {
  using S = StreamShape<kRows, kStages>;
  const int lane = threadIdx.x & 31;
  const int base = it * kStreamWords;
  uint4 xv[8];
  load_x<8, kFull>(g.x, base, words, xv);
  const int j = kFull ? lane : min(lane, (words >> 3) - it * 32 - 1);  // lanes past the last block take it again
  float mine[kRows];
#pragma unroll
  for (int r = 0; r < kRows; r++) {
    const char* sc = stage + r * (S::kRowBytes + S::kScaleBytes) + S::kRowBytes;
    if (kDoubleQuant) {
      const int mr = kGroup ? s.m[r] : 0;
      const uint8_t code = *reinterpret_cast<const uint8_t*>(sc + j);
      const bool second = ((s.first_low[r] + it * 32) & (kStreamNested - 1)) + j >= kStreamNested;
      const float nested = *reinterpret_cast<const float*>(sc + (second ? 36 : 32));
      mine[r] = fmaf(nested_code[mr * 256 + code], nested, TSL_PICK(g, mr, scales.nested_offset));
    } else {
      mine[r] = reinterpret_cast<const float*>(sc)[j];
    }
  }
#pragma unroll
  for (int u = 0; u < 8; u++) {
    const bool ok = kFull || base + lane + 32 * u < words;
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const uint32_t w = reinterpret_cast<const uint32_t*>(stage + r * (S::kRowBytes + S::kScaleBytes))[lane + 32 * u];
      const float scale = __shfl_sync(0xffffffffu, mine[r], (lane >> 3) + 4 * u);
      acc[r] = fmaf(ok ? scale : 0.f, dot8_at(w, xv[u], lane_table), acc[r]);
    }
  }
}

// The lanes form of stream_math: lane l decodes words 8l..8l+7 of the task, one absmax block, so its
// 8 products take one scale (no shuffles, one FFMA); its words come as 2 LDS.128 and its x from the
// block's copy of x in shared memory. Why: ~4.9 load/store-pipe instructions per warp word and row
// instead of ~7 (4 table lookups, the word, half an x load, the scale shuffle).
template <int kRows, int kStages, bool kDoubleQuant, bool kGroup>
__device__ __forceinline__ void lanes_math(const Nf4GemvGroup& g, const StreamRows<kRows>& s, int it, int words,
                                           const char* stage, const uint4* xs, const float* nested_code, uint32_t lane_table,
                                           float* acc) {
  using S = StreamShape<kRows, kStages>;
  const int lane = threadIdx.x & 31;
  const int base = it * kStreamWords;
  const bool ok = base + 8 * lane < words;  // the lane's 8 words are all in the row or all past it
  float scale[kRows];
  uint4 w[kRows][2];
#pragma unroll
  for (int r = 0; r < kRows; r++) {
    const char* row = stage + r * (S::kRowBytes + S::kScaleBytes);
    w[r][0] = reinterpret_cast<const uint4*>(row)[chunk_at(2 * lane)];
    w[r][1] = reinterpret_cast<const uint4*>(row)[chunk_at(2 * lane + 1)];
    const char* sc = row + S::kRowBytes;
    if (kDoubleQuant) {
      const int mr = kGroup ? s.m[r] : 0;
      const uint8_t code = *reinterpret_cast<const uint8_t*>(sc + lane);
      const bool second = ((s.first_low[r] + it * 32) & (kStreamNested - 1)) + lane >= kStreamNested;
      const float nested = *reinterpret_cast<const float*>(sc + (second ? 36 : 32));
      scale[r] = fmaf(nested_code[mr * 256 + code], nested, TSL_PICK(g, mr, scales.nested_offset));
    } else {
      scale[r] = reinterpret_cast<const float*>(sc)[lane];
    }
  }
  float sum[kRows] = {};
  const int k0 = base + 8 * lane;
#pragma unroll
  for (int u = 0; u < 8; u++) {
    const uint4 xv = xs[ok ? x_chunk_at(k0 + u) : 0];
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const uint4& q = w[r][u >> 2];
      const uint32_t word = (u & 3) == 0 ? q.x : (u & 3) == 1 ? q.y : (u & 3) == 2 ? q.z : q.w;
      sum[r] += dot8_at(word, xv, lane_table);
    }
  }
#pragma unroll
  for (int r = 0; r < kRows; r++) acc[r] = fmaf(ok ? scale[r] : 0.f, sum[r], acc[r]);
}

// Launched with kStreamWarps warps, one block per SM at most. Needs blocksize 64, in_f a multiple
// of 256, absmax codes 4-byte aligned and nested blocksize 256 (the bench's shapes and pools all
// are; nothing checks it here).
// kLanes: the lanes form (dynamic shared memory StreamShape::kSmem + in_f·2 for the copy of x).
template <int kRows, int kStages, bool kDoubleQuant, bool kGroup, bool kLanes>
__global__ void __launch_bounds__(kStreamWarps * 32, 1) nf4_gemv_stream_kernel(const Nf4GemvGroup g) {
  using S = StreamShape<kRows, kStages>;
  extern __shared__ __align__(16) char stream_smem[];
  __shared__ float nested_code[kGroup ? kMaxGroup * 256 : 256];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  // The table at the first 64 KB boundary of the shared window in dynamic shared memory; the warps'
  // stage areas fill the space below it, then follow it.
  const uint32_t dyn = shared_u32(stream_smem), table_at = (dyn + 0xffffu) & ~0xffffu;
  char* table = stream_smem + (table_at - dyn);
  const int below = min((int)(table_at - dyn) / S::kArea, kStreamWarps);
  char* area = warp < below ? stream_smem + warp * S::kArea : table + kTableBytes + (warp - below) * S::kArea;
  uint4* xs = reinterpret_cast<uint4*>(stream_smem + S::kSmem);
  const uint32_t area_at = shared_u32(area);
  const int words = (int)(g.in_f >> 3), iters = (words + kStreamWords - 1) / kStreamWords;
  // The warp's row groups: blockIdx.x + k·gridDim.x while they reach its rows (later ones lie further on).
  const int64_t warp_rows = (g.rows + kRows - 1) / kRows;  // row sets of kRows rows
  const int64_t reach = warp_rows > warp ? (warp_rows - warp + kStreamWarps - 1) / kStreamWarps : 0;
  const int64_t my_groups = reach > blockIdx.x ? (reach - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
  const int64_t tasks = my_groups * iters;
  const auto row0_of = [&](int64_t group) { return (group * kStreamWarps + warp) * kRows; };
  // The weights, absmax and nested codes are frozen (no kernel writes them after loading), so the
  // first kStages-1 tasks' copies start before waiting for the previous kernel.
  int64_t ahead_group = blockIdx.x;
  int ahead_it = 0, ahead_slot = 0;
  StreamSource<kRows> src;
  if (tasks > 0) stream_source_of<kRows, kDoubleQuant, kGroup>(g, row0_of(ahead_group), words, src);
  const auto issue_next = [&](int64_t t) {  // task t's copies (nothing past the last task), one commit group
    if (t < tasks) {
      stream_issue<kRows, kStages, kDoubleQuant, kLanes>(src, ahead_it, words, area_at + ahead_slot * S::kStageBytes);
      if (++ahead_it == iters) {
        ahead_it = 0;
        ahead_group += gridDim.x;
        if (t + 1 < tasks) stream_source_of<kRows, kDoubleQuant, kGroup>(g, row0_of(ahead_group), words, src);
      }
      ahead_slot = ahead_slot + 1 == kStages ? 0 : ahead_slot + 1;
    }
    stream_commit();
  };
  for (int s = 0; s < kStages - 1; s++) issue_next(s);
  fill_pair_table(table, blockDim.x);
  if (kDoubleQuant) fill_nested_codes<kGroup>(g, nested_code);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");  // x and the LoRA term come from earlier kernels
#endif
  if (kLanes)
    for (int k = threadIdx.x; k < words; k += blockDim.x) xs[x_chunk_at(k)] = __ldg(reinterpret_cast<const uint4*>(g.x) + k);
  __syncthreads();
  const uint32_t lane_table = table_at | (uint32_t)(lane * 4);
  int64_t group = blockIdx.x;
  int it = 0, slot = 0;
  StreamRows<kRows> rows;
  if (tasks > 0) stream_rows_of<kRows, kGroup>(g, row0_of(group), rows);
  float acc[kRows] = {};
  const bool whole = words % kStreamWords == 0;
  for (int64_t t = 0; t < tasks; t++) {
    __syncwarp();  // every lane is done with the stage about to be refilled (the previous task's)
    issue_next(t + kStages - 1);
    stream_wait<kStages - 1>();  // this task's copies have landed
    __syncwarp();                // and the other lanes' copies are visible to this lane
    const char* stage = area + slot * S::kStageBytes;
    if (kLanes)
      lanes_math<kRows, kStages, kDoubleQuant, kGroup>(g, rows, it, words, stage, xs, nested_code, lane_table, acc);
    else if (whole || it + 1 < iters)
      stream_math<kRows, kStages, kDoubleQuant, kGroup, true>(g, rows, it, words, stage, nested_code, lane_table, acc);
    else
      stream_math<kRows, kStages, kDoubleQuant, kGroup, false>(g, rows, it, words, stage, nested_code, lane_table, acc);
    slot = slot + 1 == kStages ? 0 : slot + 1;
    if (++it == iters) {
      float v[kRows];
#pragma unroll
      for (int r = 0; r < kRows; r++) v[r] = warp_sum(acc[r]);
      const int64_t row0 = row0_of(group);
#pragma unroll
      for (int r = 0; r < kRows; r++) {
        const int64_t row = row0 + r;
        if (lane == 0 && row < g.rows) finish_row(g, rows.m[r], row - (kGroup ? TSL_PICK(g, rows.m[r], first_row) : 0), v[r]);
        acc[r] = 0.f;
      }
      it = 0;
      group += gridDim.x;
      if (t + 1 < tasks) stream_rows_of<kRows, kGroup>(g, row0_of(group), rows);
    }
  }
  stream_wait<0>();  // nothing may be in flight into shared memory when the block exits
}

}  // namespace
}  // namespace tsl
