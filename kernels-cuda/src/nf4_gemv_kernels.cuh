// The NF4 matrix-vector product's kernels (sm_80 and up): the kernel for one matrix (nf4_gemv.cu's
// header describes it) and the kernel for a group of matrices sharing x, over the warp-level pieces
// of nf4_gemv_warp.cuh. Included by nf4_gemv.cu, and by kernels-cuda/dev/nf4_gemv_bench.cu (through
// nf4_gemv_variants_ring.cuh and nf4_gemv_ring.cuh), which times these kernels as shipped.
#pragma once
#include "nf4_gemv_warp.cuh"

namespace tsl {
namespace {

constexpr int kMaxGroup = 3;  // q, k, v

struct Nf4GemvMatrix {
  const uint32_t* packed;  // [out_f, in_f / 8] code words
  Nf4Absmax scales;
  int log2_nested_blocksize;
  int64_t first_row;  // in the group's row space; rows of later matrices follow
  int64_t out_f;
  const void* bias;  // [out_f] in the group's bias dtype, or null
  const float* xa;   // x·aᵀ [r], or null
  const float* lora_b;
  float lora_scale;
  int r;
  __nv_bfloat16* y;
};

struct Nf4GemvGroup {  // matrices that share x (and so in_f) and the absmax blocksize
  Nf4GemvMatrix m[kMaxGroup];
  int count;
  int64_t rows, in_f;
  int log2_blocksize;
  int bias_dtype;
  const __nv_bfloat16* x;
};

// A field of matrix m of the group: picked by selects among constant
// indices, never through an address computed at run time, so the kernel parameters stay
// constant-bank operands. (A run-time index into a parameter, or a copy of a whole matrix, takes
// the parameter's address: ptxas then loads the fields through a register (113 instead of 126
// registers, 11% slower per layer in the bench, also with __grid_constant__).)
#define TSL_PICK(G, I, FIELD) ((I) == 2 ? (G).m[2].FIELD : (I) == 1 ? (G).m[1].FIELD : (G).m[0].FIELD)

__device__ __forceinline__ int matrix_of(const Nf4GemvGroup& g, int64_t row) {
  return (g.count > 2 && row >= g.m[2].first_row) ? 2 : (g.count > 1 && row >= g.m[1].first_row) ? 1 : 0;
}

// The nested absmax codes of the group's matrices (kGroup; else of m[0] only) into shared memory,
// 256 per matrix. They are frozen weights, so kernels read them before griddepcontrol.wait.
template <bool kGroup>
__device__ __forceinline__ void fill_nested_codes(const Nf4GemvGroup& g, float* nested_code) {
  for (int i = threadIdx.x; i < (kGroup ? g.count : 1) * 256; i += blockDim.x)
    nested_code[i] = TSL_PICK(g, kGroup ? i >> 8 : 0, scales.nested_code)[i & 255];
}

constexpr int kWarps = 8;  // per block of the portable kernel

// ---- one matrix (the kernel nf4_gemv.cu's header describes) ----------------------------------
struct GemvArgs {
  const uint32_t* packed;
  int64_t out_f, in_f;
  int log2_blocksize, log2_nested_blocksize;
  Nf4Absmax scales;
  const __nv_bfloat16* x;
  const void* bias;
  int bias_dtype;
  const float* xa;  // x·aᵀ, [r], or null
  const float* lora_b;
  float lora_scale;
  int r;
  __nv_bfloat16* y;
};

// One iteration of 32·kWords words for kRows rows; kFull: every word in range (no per-word checks).
// 32·kWords words = 256·kWords weights must span at most 32 absmax blocks (one per lane), so
// kWords = 8 needs blocksize >= 64 and kWords = 4 blocksize >= 32.
template <int kRows, int kWords, bool kFull>
__device__ __forceinline__ void load_words(const uint32_t* const* rowp, int base, int words, uint32_t (&cw)[kRows][kWords]) {
  const int lane = threadIdx.x & 31;
  const uint32_t* cp[kRows];  // one address per row, the words at immediate offsets
#pragma unroll
  for (int r = 0; r < kRows; r++) cp[r] = rowp[r] + base + lane;
#pragma unroll
  for (int u = 0; u < kWords; u++) {
    const bool ok = kFull || base + lane + 32 * u < words;
#pragma unroll
    for (int r = 0; r < kRows; r++) cw[r][u] = ok ? __ldcs(cp[r] + 32 * u) : 0u;  // streamed once: do not keep in L2
  }
}

// One iteration's x: 8 bf16 per code word (out-of-range words read x's first 8 and are never used).
template <int kWords, bool kFull>
__device__ __forceinline__ void load_x(const __nv_bfloat16* x, int base, int words, uint4 (&xv)[kWords]) {
  const int lane = threadIdx.x & 31;
  const uint4* x8 = reinterpret_cast<const uint4*>(x);
  const uint4* xp = x8 + base + lane;
#pragma unroll
  for (int u = 0; u < kWords; u++) xv[u] = __ldg(kFull || base + lane + 32 * u < words ? xp + 32 * u : x8);
}

// cw: the iteration's code words, loaded by load_words (in the same iteration, or for a block's
// first iteration before griddepcontrol.wait: the weights are frozen, only x comes from the previous kernel).
template <int kRows, int kWords, bool kDoubleQuant, bool kFull>
__device__ __forceinline__ void gemv_iteration(const GemvArgs& a, const uint32_t* const* rowp, const int64_t* e0, int base,
                                               int words, const float* nested_code, const char* table, float* acc,
                                               const uint32_t (&cw)[kRows][kWords]) {
  const int lane = threadIdx.x & 31;
  uint4 xv[kWords];
  load_x<kWords, kFull>(a.x, base, words, xv);
  const int end = kFull ? base + 32 * kWords : min(base + 32 * kWords, words);
  float mine[kRows];
  int t[kRows];
#pragma unroll
  for (int r = 0; r < kRows; r++) {
    const int64_t start = e0[r] + (int64_t)base * 8;
    const int64_t b = (start >> a.log2_blocksize) + lane;
    // Lanes past the iteration's last block read that block again (branch-free; no word picks them).
    const int64_t bc = min(b, (e0[r] + (int64_t)end * 8 - 1) >> a.log2_blocksize);
    mine[r] = kDoubleQuant ? fmaf(nested_code[__ldg(a.scales.q + bc)],
                                  __ldg(a.scales.nested_absmax + (bc >> a.log2_nested_blocksize)), a.scales.nested_offset)
                           : __ldg(a.scales.f32 + bc);
    t[r] = (int)(start & ((1 << a.log2_blocksize) - 1)) + lane * 8;  // weight offset from the first block's start
  }
#pragma unroll
  for (int u = 0; u < kWords; u++) {
    const bool ok = kFull || base + lane + 32 * u < words;
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const float scale = __shfl_sync(0xffffffffu, mine[r], (t[r] + 256 * u) >> a.log2_blocksize);
      acc[r] = fmaf(ok ? scale : 0.f, dot8_pairs(cw[r][u], xv[u], table, (uint32_t)lane * 4), acc[r]);
    }
  }
}

// Row pointers of the kRows rows from row0 (a missing last row recomputes the one before).
template <int kRows>
__device__ __forceinline__ void rows_from(const GemvArgs& a, int64_t row0, int words, const uint32_t** rowp, int64_t* e0) {
#pragma unroll
  for (int r = 0; r < kRows; r++) {
    const int64_t row = min(row0 + r, a.out_f - 1);
    rowp[r] = a.packed + row * words;
    e0[r] = row * a.in_f;
  }
}

// An explicit minimum in __launch_bounds__ makes ptxas keep all kWords loads ahead of the math
// (more registers, more bytes in flight); with the bare form it sinks them below earlier words'
// math (bench: 2-30% slower per layer depending on the variant). 1 block for 1 row per warp (sm_90:
// 85 registers with the early first loads, 2 blocks per SM; bounded to 3 blocks, 80 registers, k/v
// ran 3.0 -> 3.6 us on an H100); 2 for 2 rows, whose grid-stride loop otherwise takes 142-147
// registers (1 block of 8 warps per SM) where 2 blocks need at most 128 (sm_90: 118, no spills,
// the 28 loads of an iteration still issued before its first table lookup).
template <int kRows, int kWords, bool kDoubleQuant>
__global__ void __launch_bounds__(kWarps * 32, kRows == 2 ? 2 : 1) nf4_gemv_kernel(const GemvArgs a) {
  extern __shared__ __align__(16) char table[];
  __shared__ float nested_code[256];
  fill_pair_table(table, blockDim.x);
  // The nested absmax code is part of the frozen weights, which no kernel writes after loading (and
  // the kernels that load them are not launched early), so it is read before waiting.
  if (kDoubleQuant) nested_code[threadIdx.x] = a.scales.nested_code[threadIdx.x];
  const int lane = threadIdx.x & 31;
  const int words = (int)(a.in_f >> 3);
  // The block's first iteration of code words is loaded before waiting too (frozen weights), so the
  // weight stream starts while the previous kernel drains instead of after it.
  // (A separate call for that first iteration, not a predicate on the loop's loads: predicated,
  // the loop ran 1-25% slower per shape on an H100.)
  const bool whole_first = words >= 32 * kWords;
  uint32_t first[kRows][kWords];
  {
    const uint32_t* rowp[kRows];
    int64_t e0[kRows];
    rows_from<kRows>(a, ((int64_t)blockIdx.x * kWarps + (threadIdx.x >> 5)) * kRows, words, rowp, e0);
    if (whole_first) load_words<kRows, kWords, true>(rowp, 0, words, first);
    else load_words<kRows, kWords, false>(rowp, 0, words, first);
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // Programmatic dependent launch: let the next such grid start its table fill, then wait for the
  // previous grid (x and the LoRA term come from it) before reading anything a kernel writes.
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  __syncthreads();
  // The grid is capped at the blocks that fit at once (launch_gemv): each block filled its table
  // once above and now takes groups of kWarps·kRows rows, grid-strided.
  const int64_t groups = (a.out_f + kWarps * kRows - 1) / (kWarps * kRows);
  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {
    const int64_t row0 = (g * kWarps + (threadIdx.x >> 5)) * kRows;
    if (row0 >= a.out_f) break;  // warp-uniform, and later groups only lie further on
    const uint32_t* rowp[kRows];
    int64_t e0[kRows];  // element index of each row's first weight
    rows_from<kRows>(a, row0, words, rowp, e0);
    float acc[kRows] = {};
    int base = 0;
    if (g == blockIdx.x) {
      if (whole_first) gemv_iteration<kRows, kWords, kDoubleQuant, true>(a, rowp, e0, 0, words, nested_code, table, acc, first);
      else gemv_iteration<kRows, kWords, kDoubleQuant, false>(a, rowp, e0, 0, words, nested_code, table, acc, first);
      base = 32 * kWords;
    }
    for (; base + 32 * kWords <= words; base += 32 * kWords) {
      uint32_t cw[kRows][kWords];
      load_words<kRows, kWords, true>(rowp, base, words, cw);
      gemv_iteration<kRows, kWords, kDoubleQuant, true>(a, rowp, e0, base, words, nested_code, table, acc, cw);
    }
    if (base < words) {
      uint32_t cw[kRows][kWords];
      load_words<kRows, kWords, false>(rowp, base, words, cw);
      gemv_iteration<kRows, kWords, kDoubleQuant, false>(a, rowp, e0, base, words, nested_code, table, acc, cw);
    }
    // The rows' sums at their finishing lanes (rows_sum), then every row's epilogue at once.
    int r;
    float v = rows_sum<kRows>(acc, lane, &r);
    const int64_t row = row0 + r;
    if (finishes_row<kRows>(lane) && row < a.out_f) {
      if (a.bias) v += load_as_float(a.bias, a.bias_dtype, row);
      if (a.xa) {
        float l = 0.f;
        for (int j = 0; j < a.r; j++) l += a.xa[j] * a.lora_b[row * a.r + j];
        v += a.lora_scale * l;
      }
      a.y[row] = __float2bfloat16(v);
    }
  }
}

// ---- several matrices sharing x (tsl_nf4_gemv_group) ------------------------------------------
// The kernel above over the rows of up to kMaxGroup matrices laid end to end: each row takes its
// weights, absmax and epilogue from its own matrix (m[r]), picked by TSL_PICK. One iteration as
// gemv_iteration. The single-matrix kernel stays a separate copy on purpose: run through this one
// (kGroup = false) q/o, gate/up and down measured 4-7% slower on an H200 (k/v 9% faster), the
// per-row matrix picks costing registers and address arithmetic in the hot loop.
template <int kRows, int kWords, bool kDoubleQuant, bool kGroup, bool kFull>
__device__ __forceinline__ void group_iteration(const Nf4GemvGroup& g, const uint32_t* const* rowp, const int64_t* e0,
                                               const int* m, int base, int words, const float* nested_code,
                                               const char* table, float* acc, const uint32_t (&cw)[kRows][kWords]) {
  const int lane = threadIdx.x & 31;
  uint4 xv[kWords];
  load_x<kWords, kFull>(g.x, base, words, xv);
  const int end = kFull ? base + 32 * kWords : min(base + 32 * kWords, words);
  float mine[kRows];
  int t[kRows];
#pragma unroll
  for (int r = 0; r < kRows; r++) {
    const int mr = kGroup ? m[r] : 0;
    const int64_t start = e0[r] + (int64_t)base * 8;
    const int64_t b = (start >> g.log2_blocksize) + lane;
    // As gemv_iteration: lanes past the iteration's last block read it again.
    const int64_t bc = min(b, (e0[r] + (int64_t)end * 8 - 1) >> g.log2_blocksize);
    mine[r] = kDoubleQuant ? fmaf(nested_code[mr * 256 + __ldg(TSL_PICK(g, mr, scales.q) + bc)],
                                  __ldg(TSL_PICK(g, mr, scales.nested_absmax) + (bc >> TSL_PICK(g, mr, log2_nested_blocksize))),
                                  TSL_PICK(g, mr, scales.nested_offset))
                           : __ldg(TSL_PICK(g, mr, scales.f32) + bc);
    t[r] = (int)(start & ((1 << g.log2_blocksize) - 1)) + lane * 8;  // weight offset from the first block's start
  }
#pragma unroll
  for (int u = 0; u < kWords; u++) {
    const bool ok = kFull || base + lane + 32 * u < words;
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const float scale = __shfl_sync(0xffffffffu, mine[r], (t[r] + 256 * u) >> g.log2_blocksize);
      acc[r] = fmaf(ok ? scale : 0.f, dot8_pairs(cw[r][u], xv[u], table, (uint32_t)lane * 4), acc[r]);
    }
  }
}

// Row pointers, element offsets and matrices of the kRows rows from row0 in the group's row space
// (a missing last row recomputes the one before).
template <int kRows, bool kGroup>
__device__ __forceinline__ void group_rows_from(const Nf4GemvGroup& g, int64_t row0, int words, const uint32_t** rowp,
                                                int64_t* e0, int* m) {
#pragma unroll
  for (int r = 0; r < kRows; r++) {
    const int64_t row = min(row0 + r, g.rows - 1);
    m[r] = kGroup ? matrix_of(g, row) : 0;
    const int64_t i = row - (kGroup ? TSL_PICK(g, m[r], first_row) : 0);
    rowp[r] = TSL_PICK(g, m[r], packed) + i * words;
    e0[r] = i * g.in_f;
  }
}

// y = W x (+ bias) (+ LoRA) for row i of matrix m, finished: lane 0 writes it.
__device__ __forceinline__ void finish_row(const Nf4GemvGroup& g, int m, int64_t i, float v) {
  const void* bias = TSL_PICK(g, m, bias);
  const float* xa = TSL_PICK(g, m, xa);
  if (bias) v += load_as_float(bias, g.bias_dtype, i);
  if (xa) {
    const float* lb = TSL_PICK(g, m, lora_b);
    const int r = TSL_PICK(g, m, r);
    float l = 0.f;
    for (int j = 0; j < r; j++) l += xa[j] * lb[i * r + j];
    v += TSL_PICK(g, m, lora_scale) * l;
  }
  TSL_PICK(g, m, y)[i] = __float2bfloat16(v);
}

// Launch bounds as nf4_gemv_kernel's (sm_90: 128 registers for 2 rows, 88 for 1). kGroup: the
// rows run over g.count matrices (a warp's two rows may lie in two of them); the library launches
// only that form. Without it only g.m[0] is read: the single-matrix loop over this parameter
// layout, kept for kernels-cuda/dev/nf4_gemv_bench.cu (variant src_group1).
// Unlike nf4_gemv_kernel, no code words are loaded before griddepcontrol.wait: in this kernel's
// 2-row form that cost gate/up ~2% (H100), more than it saved.
template <int kRows, int kWords, bool kDoubleQuant, bool kGroup>
__global__ void __launch_bounds__(kWarps * 32, kRows == 2 ? 2 : 1) nf4_gemv_group_kernel(const Nf4GemvGroup g) {
  extern __shared__ __align__(16) char table[];
  __shared__ float nested_code[kGroup ? kMaxGroup * 256 : 256];
  fill_pair_table(table, blockDim.x);
  // As in nf4_gemv_kernel: the nested absmax codes are frozen weights, read before waiting.
  if (kDoubleQuant) fill_nested_codes<kGroup>(g, nested_code);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int words = (int)(g.in_f >> 3);
  // The grid is capped at the blocks that fit at once (launch_gemv): each block filled its table
  // once above and now takes groups of kWarps·kRows rows, grid-strided.
  const int64_t groups = (g.rows + kWarps * kRows - 1) / (kWarps * kRows);
  for (int64_t gi = blockIdx.x; gi < groups; gi += gridDim.x) {
    const int64_t row0 = (gi * kWarps + (threadIdx.x >> 5)) * kRows;
    if (row0 >= g.rows) break;  // warp-uniform, and later groups only lie further on
    const uint32_t* rowp[kRows];
    int64_t e0[kRows];  // element index of each row's first weight in its matrix
    int m[kRows];
    group_rows_from<kRows, kGroup>(g, row0, words, rowp, e0, m);
    float acc[kRows] = {};
    int base = 0;
    for (; base + 32 * kWords <= words; base += 32 * kWords) {
      uint32_t cw[kRows][kWords];
      load_words<kRows, kWords, true>(rowp, base, words, cw);
      group_iteration<kRows, kWords, kDoubleQuant, kGroup, true>(g, rowp, e0, m, base, words, nested_code, table, acc, cw);
    }
    if (base < words) {
      uint32_t cw[kRows][kWords];
      load_words<kRows, kWords, false>(rowp, base, words, cw);
      group_iteration<kRows, kWords, kDoubleQuant, kGroup, false>(g, rowp, e0, m, base, words, nested_code, table, acc, cw);
    }
    // As in nf4_gemv_kernel: the rows' sums at their finishing lanes, then their epilogues at once.
    int r;
    const float v = rows_sum<kRows>(acc, lane, &r);
    const int64_t row = row0 + r;
    const int mr = r == 0 ? m[0] : m[kRows - 1];
    if (finishes_row<kRows>(lane) && row < g.rows) finish_row(g, mr, row - (kGroup ? TSL_PICK(g, mr, first_row) : 0), v);
  }
}

}  // namespace
}  // namespace tsl
