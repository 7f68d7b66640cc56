// NF4 matrix-vector bench, part 3: fewer instructions per weight (v10). Every code byte (two
// weights) is looked up once in a 256-entry table of bf16 pairs in shared memory, replicated so
// that lane l always reads bank l (one wavefront per warp lookup whatever the codes), the pair is
// multiplied with the matching bf16 pair of x in one HFMA2, and a warp may compute R rows over the
// same x words (x loaded once for R rows). Included by nf4_gemv_bench.cu only.
//
// Count per code word (8 weights) of one row, from the source (confirm with cuobjdump -sass):
//   today's v9m_u8: table words ~36 (8 PRMT, 8 LDS, 8 x-convert, 8 FFMA, 4 masks), prmt words ~28
//   (21 integer), + LDG code, LDG.128 x, SHFL, FFMA, select: ~8 per weight in ncu.
//   v10 wide table: 4 PRMT (the byte's table offset, lane bits merged in the same PRMT) + 4 LDS +
//   4 HFMA2 + 2 bf16->f32 + FADD + FFMA + SHFL + LDG code + LDG.128 x (shared by R rows) = 19,
//   i.e. ~2.4 per weight (R = 1), ~2.3 (R = 2); integer-pipe ops fall from ~3 to ~0.8 per weight.
// What then bounds it is the shared-memory / L1 pipe (128 B per clock per SM): per 256 weights of
// one row 4 table wavefronts + 1 code + 1 shuffle + 4 x wavefronts / R, i.e. ~26 weights per clock
// per SM at R = 1 (about H100 copy rate) and ~32 at R = 2, before the table fill (32 KB of stores
// per block: 256 wavefronts, ~20% of a q/o block's work at R = 1, ~10% at R = 2).
//
// Round v10/v11 (nf4_gemv_variants_next.cuh), measured on an H200 (copy 4.19-4.23 TB/s), two runs,
// us and % of copy for q/o, k/v, gate/up, down, layer (v9m_u8 and the probe rerun in the same runs):
//   v9m_u8          7.4 28% | 3.7 14% | 19.8 36% | 19.6 37% | 82.0-82.9 us 32.4%
//   probe_words     3.8 54% | 2.3 22% |  8.5 85% |  8.7 83% | 38.0-38.4 us 69-71%
//   v10w (R=1)      7.9 26% | 3.9 13% | 21.9 33% | 16.1 45% | 83.6 us 31.8%
//   v10w_r2         6.4 32% | 4.5 11% | 17.5 41% | 13.8 52% | 71.2 us 37.3%   (v10n_r2 73.7, v10w_r4 79.5)
//   v10w_auto       6.4 32% | 3.9 13% | 17.4 41% | 13.8 52% | 69.7-70.3 us 38%
//   v10w_auto_pdl   4.8 43% | 3.2 16% | 16.5 44% | 12.1 60% | 61.0-61.1 us 44%  (src's previous form)
//   v10w_autoc_pdl  4.8 43% | 3.2 16% | 14.2 51% | 12.1 60% | 56.1 us 47.8% (second run only)
//                                                          <- kernels-cuda/src/nf4_gemv.cu since the H100 run below
//   lost: v10m_r2 (odd words via prmt, 153 registers, 1 block/SM) 105.6; min-blocks 3 (v10n_r1_b3,
//   v10n_r2u4_b3) 79-83; v11 (next iteration's codes double-buffered in registers) 82-95 on every
//   form: its SASS loop is 519 instructions for 64 weights/lane (the three-way load branch is
//   duplicated into the body) against 205 for v10w. Relative errors 3.9e-3 (v9m_u8), 4.1e-3 (v10/v11).
// SASS (cuobjdump on the bench binary), main loop per weight of one lane: v9m_u8 403/64 = 6.3;
// v10w 205/64 = 3.2 (32 PRMT, 33 LDS, 32 HFMA2/HMUL2, 18 LDG, 18 IMAD, 14 SHF, 9 LOP3, 9 FFMA,
// 8 FADD, 8 SHFL, ~24 per-iteration index/absmax ops); v10w_r2 419/128 = 3.3; v10n_r2 (shift+LOP3
// offsets) 491/128 = 3.8. Predicted 2.3-2.4: the shuffle-lane shifts and per-iteration index math
// cost ~0.8 per weight more than counted.
// Registers: v10w 83, v10w_r2 128, v10w_r4 128 (2 blocks of 256 threads per SM: 16 warps), v10n_r1_b3
// 75 and v10n_r2u4_b3 72 (3 blocks), v11w 88, v11n_u4_b3 64 (4 blocks); v9m_u8 80.
// Reading: halving the instructions per weight bought 14% (v10w_auto vs v9m_u8), so issue no longer
// bounds it; the programmatic dependent launch bought another 12% (q/o 6.4 -> 4.8 us), i.e. much of
// the rest is per-kernel ramp-up/tail (fill, first loads) rather than steady-state throughput: the
// table fill and the first loads of one kernel overlap the last blocks of the previous one. Capping
// the grid at the resident blocks (fill once per block, grid-stride over row groups) took gate/up
// from 44% to 51%. Still far from the probe's 85% on the big shapes; with 16 warps/SM (64 KB table
// + 115-128 registers) too few bytes are in flight. Next: v10w_autoc_pdl into src (grid-stride), a
// 2-row kernel under 96 registers (3 blocks/SM) that keeps its loads ahead of the math, codes staged
// with cp.async into shared memory (bytes in flight without registers), and Nsight stall reasons.
// The H100 numbers above were not rerun this round (both device runs landed on an H200).
// H100 80GB HBM3 rerun (copy 2.98 TB/s, one run, N = 200), us and % of copy, same columns:
//   v9m_u8          7.6 38% | 3.8 19% | 20.3 50% | 19.8 51% | 83.6 us 45.2%
//   probe_words     4.5 65% | 2.5 29% | 11.3 90% | 11.7 87% | 48.4 us 78.0%
//   v10w_auto_pdl   5.3 55% | 3.2 23% | 17.8 57% | 13.3 77% | 65.4 us 57.7%
//   v10w_autoc_pdl  5.3 55% | 3.2 23% | 15.2 67% | 13.2 77% | 60.4 us 62.5%  (only gate/up's grid is capped)
// Ported to src with the bias/LoRA epilogue inside the grid-stride loop: there ptxas took the 2-row
// kernel to 142-147 registers (1 block per SM); __launch_bounds__(256, 2) for 2 rows and one address
// per row and x per iteration keep it at 123-126 without spills (main loop 427 SASS instructions
// against 401 before). Through the C ABI (bench/infer/nf4_gemv_bench.py, same card): gate/up
// 17.7-17.9 -> 15.5-15.6 us, q/o 5.8 -> 5.9 us, down 13.6-13.7 -> 13.9 us.
#pragma once
#include "nf4_gemv_variants_fast.cuh"

// bf16 pair for code byte v: low half code[v >> 4] (the even weight sits in the high nibble, and x's
// even element in the low half of its pair), high half code[v & 15]. bf16 codes: one extra rounding
// of 2^-9 relative against the reference bf16(code * absmax), as in dot8_prmt.
__device__ __forceinline__ uint32_t nf4_pair_bits(int v) {
  const uint32_t lo = __bfloat16_as_ushort(__float2bfloat16(kNf4Code[v >> 4]));
  const uint32_t hi = __bfloat16_as_ushort(__float2bfloat16(kNf4Code[v & 15]));
  return lo | (hi << 16);
}

// The replicated pair table. Entry v of lane l sits at byte v * kRowBytes + 4 l (bank l).
// Wide (64 KB, half of each 256-byte row unused): the offset is one PRMT that puts the code byte in
// byte 1 and 4 l in byte 0. Narrow (32 KB): a shift and a LOP3 that masks and merges the lane bits;
// one more integer op per byte, but 7 blocks of 256 threads fit an SM instead of 3.
template <bool kWide>
struct PairTable {
  static constexpr int kRowBytes = kWide ? 256 : 128;
  static constexpr int kBytes = 256 * kRowBytes;
  __device__ __forceinline__ static void fill(char* smem) {
    for (int i = threadIdx.x; i < 256 * 8; i += blockDim.x) {  // (entry, 16-byte quarter of the lanes)
      const uint32_t p = nf4_pair_bits(i >> 3);
      *reinterpret_cast<uint4*>(smem + (i >> 3) * kRowBytes + (i & 7) * 16) = make_uint4(p, p, p, p);
    }
  }
  template <int j>
  __device__ __forceinline__ static uint32_t offset(uint32_t w, uint32_t lane4) {
    if (kWide) return prmt(w, lane4, 0x5504u + 0x10u * j);  // bytes: 4l, w.byte j, 0, 0
    const uint32_t s = j == 0 ? (w << 7) : (w >> (8 * j - 7));
    return (s & 0x7f80u) | lane4;
  }
};

// Σ over the 8 weights of one word: 4 table lookups and 4 HFMA2 (products accumulated 4 deep in
// bf16x2, as dot8_prmt does), then the two halves in f32.
template <bool kWide>
__device__ __forceinline__ float dot8_pairs(uint32_t w, const uint4 xv, const char* table, uint32_t lane4) {
  using T = PairTable<kWide>;
  const uint32_t p0 = *reinterpret_cast<const uint32_t*>(table + T::template offset<0>(w, lane4));
  const uint32_t p1 = *reinterpret_cast<const uint32_t*>(table + T::template offset<1>(w, lane4));
  const uint32_t p2 = *reinterpret_cast<const uint32_t*>(table + T::template offset<2>(w, lane4));
  const uint32_t p3 = *reinterpret_cast<const uint32_t*>(table + T::template offset<3>(w, lane4));
  const uint32_t xw[4] = {xv.x, xv.y, xv.z, xv.w};
  const uint32_t p[4] = {p0, p1, p2, p3};
  __nv_bfloat162 acc = __hmul2(*reinterpret_cast<const __nv_bfloat162*>(&p[0]), *reinterpret_cast<const __nv_bfloat162*>(&xw[0]));
#pragma unroll
  for (int k = 1; k < 4; k++)
    acc = __hfma2(*reinterpret_cast<const __nv_bfloat162*>(&p[k]), *reinterpret_cast<const __nv_bfloat162*>(&xw[k]), acc);
  const uint32_t bits = *reinterpret_cast<const uint32_t*>(&acc);
  return __uint_as_float(bits << 16) + __uint_as_float(bits & 0xffff0000u);
}

// One iteration of 32·U words for R rows. kFull: every word in range (no per-word checks).
template <int R, int U, bool kWide, bool kMix, bool kFull>
__device__ __forceinline__ void paired_iteration(const Args& a, const uint32_t* const* rowp, const int64_t* e0, int base,
                                                 int words, const float* ncode, const char* table, float* acc) {
  const int lane = threadIdx.x & 31;
  const uint32_t lane4 = (uint32_t)lane * 4;
  const uint4* x8 = reinterpret_cast<const uint4*>(a.x);
  uint32_t cw[R][U];
  uint4 xv[U];
#pragma unroll
  for (int u = 0; u < U; u++) {
    const int w = base + lane + 32 * u;
    const bool ok = kFull || w < words;
#pragma unroll
    for (int r = 0; r < R; r++) cw[r][u] = ok ? __ldcs(rowp[r] + w) : 0u;
    xv[u] = __ldg(x8 + (ok ? w : 0));
  }
  const int end = kFull ? base + 32 * U : min(base + 32 * U, words);
  float mine[R];
  int t[R];
#pragma unroll
  for (int r = 0; r < R; r++) {
    const int64_t start = e0[r] + (int64_t)base * 8;
    const int64_t b = (start >> a.log2_bs) + lane;
    const int64_t last = (e0[r] + (int64_t)end * 8 - 1) >> a.log2_bs;
    const uint32_t qb = b <= last ? __ldg(a.am.q + b) : 0u;
    const float na = b <= last ? __ldg(a.am.nested_absmax + (b >> a.log2_nbs)) : 0.f;
    mine[r] = fmaf(ncode[qb], na, a.am.nested_offset);
    t[r] = (int)(start & ((1 << a.log2_bs) - 1)) + lane * 8;
  }
#pragma unroll
  for (int u = 0; u < U; u++) {
    const bool ok = kFull || base + lane + 32 * u < words;
#pragma unroll
    for (int r = 0; r < R; r++) {
      const float scale = __shfl_sync(0xffffffffu, mine[r], (t[r] + 256 * u) >> a.log2_bs);
      const float s = kMix && (u & 1) ? dot8_prmt(cw[r][u], xv[u], a.planes) : dot8_pairs<kWide>(cw[r][u], xv[u], table, lane4);
      acc[r] = fmaf(ok ? scale : 0.f, s, acc[r]);
    }
  }
}

// ---- v10: pair table, R rows per warp over shared x, U words per lane in flight ------------------
// Blocks loop over groups of 8·R rows (grid-stride) so a capped grid fills the table once per block.
// kPdl: the kernel waits for the previous grid (griddepcontrol.wait) only after the table fill, and
// lets the next grid launch at once, so with programmatic dependent launch the fill and the ramp-up
// overlap the previous kernel's tail (the 7 projections of a layer run back to back).
// kMinBlocks: __launch_bounds__ minimum (1 lets ptxas keep every load ahead of the math, as in v9).
template <int R, int U, bool kWide, bool kMix, bool kPdl, int kMinBlocks>
__global__ void __launch_bounds__(256, kMinBlocks) paired_kernel(Args a) {
  extern __shared__ __align__(16) char table[];
  __shared__ float ncode[256];
  ncode[threadIdx.x] = a.am.nested_code[threadIdx.x];
  PairTable<kWide>::fill(table);
  __syncthreads();
  if (kPdl) {
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    asm volatile("griddepcontrol.wait;" ::: "memory");
  }
  const int lane = threadIdx.x & 31;
  const int words = (int)(a.in_f >> 3);
  const int64_t groups = (a.out_f + 8 * R - 1) / (8 * R);
  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {
    const int64_t row0 = (g * 8 + (threadIdx.x >> 5)) * R;
    if (row0 >= a.out_f) break;  // warp-uniform; later groups only start further on
    const uint32_t* rowp[R];
    int64_t e0[R];
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
      const int64_t row = min(row0 + r, a.out_f - 1);  // a missing last row recomputes the one before
      rowp[r] = reinterpret_cast<const uint32_t*>(a.packed) + row * words;
      e0[r] = row * a.in_f;
      acc[r] = 0.f;
    }
    int base = 0;
    for (; base + 32 * U <= words; base += 32 * U)
      paired_iteration<R, U, kWide, kMix, true>(a, rowp, e0, base, words, ncode, table, acc);
    if (base < words) paired_iteration<R, U, kWide, kMix, false>(a, rowp, e0, base, words, ncode, table, acc);
#pragma unroll
    for (int r = 0; r < R; r++) {
      const float v = warp_sum(acc[r]);
      if (lane == 0 && row0 + r < a.out_f) a.y[row0 + r] = __float2bfloat16(v);
    }
  }
}

// ---- v11: v10 with the next iteration's code words and absmax codes loaded before this one's math -
// Little's law: ~3 TB/s x ~0.8 us of DRAM latency is ~2.4 MB in flight, ~18 KB per SM. v9/v10 issue
// an iteration's loads, then do its math with nothing in flight: at 16-24 warps/SM x 1 KB that is
// ~8-12 KB on average, about the ~50% they reach. Double-buffering the codes in registers (U·R more)
// keeps a full iteration in flight through the math; x stays an L1 load at the iteration's start.
template <int R, int U, bool kFull>
__device__ __forceinline__ void load_stage(const Args& a, const uint32_t* const* rowp, const int64_t* e0, int base,
                                           int words, uint32_t (&cw)[R][U], uint32_t (&qb)[R], float (&na)[R]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int u = 0; u < U; u++) {
    const int w = base + lane + 32 * u;
    const bool ok = kFull || w < words;
#pragma unroll
    for (int r = 0; r < R; r++) cw[r][u] = ok ? __ldcs(rowp[r] + w) : 0u;
  }
  const int end = kFull ? base + 32 * U : min(base + 32 * U, words);
#pragma unroll
  for (int r = 0; r < R; r++) {
    const int64_t b = ((e0[r] + (int64_t)base * 8) >> a.log2_bs) + lane;
    const bool ok = b <= ((e0[r] + (int64_t)end * 8 - 1) >> a.log2_bs);
    qb[r] = ok ? __ldg(a.am.q + b) : 0u;
    na[r] = ok ? __ldg(a.am.nested_absmax + (b >> a.log2_nbs)) : 0.f;
  }
}

template <int R, int U, bool kWide, bool kFull>
__device__ __forceinline__ void compute_stage(const Args& a, const int64_t* e0, int base, int words,
                                              const uint32_t (&cw)[R][U], const uint32_t (&qb)[R], const float (&na)[R],
                                              const float* ncode, const char* table, float* acc) {
  const int lane = threadIdx.x & 31;
  const uint4* x8 = reinterpret_cast<const uint4*>(a.x);
  uint4 xv[U];
#pragma unroll
  for (int u = 0; u < U; u++) {
    const int w = base + lane + 32 * u;
    xv[u] = __ldg(x8 + (kFull || w < words ? w : 0));
  }
#pragma unroll
  for (int r = 0; r < R; r++) {
    const float mine = fmaf(ncode[qb[r]], na[r], a.am.nested_offset);
    const int t = (int)((e0[r] + (int64_t)base * 8) & ((1 << a.log2_bs) - 1)) + lane * 8;
#pragma unroll
    for (int u = 0; u < U; u++) {
      const bool ok = kFull || base + lane + 32 * u < words;
      const float scale = __shfl_sync(0xffffffffu, mine, (t + 256 * u) >> a.log2_bs);
      acc[r] = fmaf(ok ? scale : 0.f, dot8_pairs<kWide>(cw[r][u], xv[u], table, (uint32_t)lane * 4), acc[r]);
    }
  }
}

template <int R, int U, bool kWide, bool kPdl, int kMinBlocks>
__global__ void __launch_bounds__(256, kMinBlocks) pipelined_kernel(Args a) {
  extern __shared__ __align__(16) char table[];
  __shared__ float ncode[256];
  ncode[threadIdx.x] = a.am.nested_code[threadIdx.x];
  PairTable<kWide>::fill(table);
  __syncthreads();
  if (kPdl) {
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    asm volatile("griddepcontrol.wait;" ::: "memory");
  }
  const int lane = threadIdx.x & 31;
  const int words = (int)(a.in_f >> 3), step = 32 * U;
  const int64_t groups = (a.out_f + 8 * R - 1) / (8 * R);
  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {
    const int64_t row0 = (g * 8 + (threadIdx.x >> 5)) * R;
    if (row0 >= a.out_f) break;
    const uint32_t* rowp[R];
    int64_t e0[R];
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
      const int64_t row = min(row0 + r, a.out_f - 1);
      rowp[r] = reinterpret_cast<const uint32_t*>(a.packed) + row * words;
      e0[r] = row * a.in_f;
      acc[r] = 0.f;
    }
    uint32_t cw[R][U], qb[R];
    float na[R];
    if (step <= words) load_stage<R, U, true>(a, rowp, e0, 0, words, cw, qb, na);
    else load_stage<R, U, false>(a, rowp, e0, 0, words, cw, qb, na);
    for (int base = 0; base < words; base += step) {
      uint32_t cn[R][U] = {}, qn[R] = {};
      float nn[R] = {};
      if (base + 2 * step <= words) load_stage<R, U, true>(a, rowp, e0, base + step, words, cn, qn, nn);
      else if (base + step < words) load_stage<R, U, false>(a, rowp, e0, base + step, words, cn, qn, nn);
      if (base + step <= words) compute_stage<R, U, kWide, true>(a, e0, base, words, cw, qb, na, ncode, table, acc);
      else compute_stage<R, U, kWide, false>(a, e0, base, words, cw, qb, na, ncode, table, acc);
#pragma unroll
      for (int r = 0; r < R; r++) {
        qb[r] = qn[r];
        na[r] = nn[r];
#pragma unroll
        for (int u = 0; u < U; u++) cw[r][u] = cn[r][u];
      }
    }
    (void)lane;
#pragma unroll
    for (int r = 0; r < R; r++) {
      const float v = warp_sum(acc[r]);
      if ((threadIdx.x & 31) == 0 && row0 + r < a.out_f) a.y[row0 + r] = __float2bfloat16(v);
    }
  }
}

// kCap: grid capped at the resident blocks (occupancy x SMs), evened so every block takes the same
// number of row groups; else one group per block. R = 0: 2 rows per warp when that still gives at
// least 8 warps per SM, else 1 (k/v has 1024 rows: 128 blocks of 8 at R = 1 already under-fill 132 SMs).
template <int R, int U, bool kWide, bool kMix, bool kPdl, int kMinBlocks, bool kPipe>
static auto pick_kernel() {
  if constexpr (kPipe) return pipelined_kernel<R, U, kWide, kPdl, kMinBlocks>;
  else return paired_kernel<R, U, kWide, kMix, kPdl, kMinBlocks>;
}
template <int R, int U, bool kWide, bool kMix, bool kPdl, bool kCap, int kMinBlocks = 1, bool kPipe = false>
static void launch_paired(const Args& a, cudaStream_t s) {
  auto kern = pick_kernel<R, U, kWide, kMix, kPdl, kMinBlocks, kPipe>();
  static int per_sm = 0, sms = 0;
  if (!per_sm) {  // first call is the (uncaptured) correctness check
    CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, PairTable<kWide>::kBytes));
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, 256, PairTable<kWide>::kBytes));
    int dev;
    CK(cudaGetDevice(&dev));
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    cudaFuncAttributes fa;
    CK(cudaFuncGetAttributes(&fa, kern));
    fprintf(stderr, "%s R=%d U=%d wide=%d mix=%d pdl=%d min_blocks=%d: %d registers, %d blocks/SM\n",
            kPipe ? "pipelined" : "paired", R, U, kWide, kMix, kPdl, kMinBlocks, fa.numRegs, per_sm);
  }
  const int64_t groups = (a.out_f + 8 * R - 1) / (8 * R);
  int64_t grid = groups;
  if (kCap) {
    const int64_t slots = (int64_t)per_sm * sms, per = (groups + slots - 1) / slots;
    grid = (groups + per - 1) / per;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3((unsigned)grid);
  cfg.blockDim = dim3(256);
  cfg.dynamicSmemBytes = PairTable<kWide>::kBytes;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = kPdl ? 1 : 0;
  CK(cudaLaunchKernelEx(&cfg, kern, a));
}
template <int U, bool kWide, bool kMix, bool kPdl, int kMinBlocks = 1, bool kPipe = false, bool kCap = false>
static void launch_paired_auto(const Args& a, cudaStream_t s) {
  int dev, sms;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  if (a.out_f / 2 >= 8LL * sms) launch_paired<2, U, kWide, kMix, kPdl, kCap, kMinBlocks, kPipe>(a, s);
  else launch_paired<1, U, kWide, kMix, kPdl, kCap, kMinBlocks, kPipe>(a, s);
}

// Predictions: H100 % of copy on the 8B layer (v9m_u8 measured 44 there). Measured ("=>"): H200 layer
// us in the same run as v9m_u8 at 82.0 us (32.4% of its copy rate); the header of nf4_gemv_bench.cu has the shapes.
static const Variant kNextVariants[] = {
    // table only, 1 row: issue ~2.4/weight, MIO-bound near copy rate less the fill -> ~60 => 83.6
    {"v10w", launch_paired<1, 8, true, false, false, false>},
    // 2 rows share x: fewer x wavefronts, half the fill per row -> ~65; k/v worse => 71.2
    {"v10w_r2", launch_paired<2, 8, true, false, false, false>},
    // narrow table: +4 integer ops per word but 7 blocks/SM instead of 3 -> ~65 => 73.7 (registers
    // allow only 2 blocks/SM either way)
    {"v10n_r2", launch_paired<2, 8, false, false, false, false>},
    // 4 rows x 4 words: x once per 4 rows; same bytes in flight per lane -> ~65 => 79.5 (k/v 6.6 us)
    {"v10w_r4", launch_paired<4, 4, true, false, false, false>},
    // odd words through prmt: moves 1/2 the table wavefronts to the integer pipe -> ~same as v10w_r2 => 105.6
    {"v10m_r2", launch_paired<2, 8, true, true, false, false>},
    // grid capped at the resident blocks: the table filled once per block -> +3-5% over v10n_r2 => 69.7
    {"v10n_r2c", launch_paired<2, 8, false, false, false, true>},
    // R by shape (k/v keeps 1 row per warp) -> best of v10w and v10w_r2 per shape => 70.3, 72.4
    {"v10w_auto", launch_paired_auto<8, true, false, false>},
    {"v10n_auto", launch_paired_auto<8, false, false, false>},
    // + programmatic dependent launch: fill and ramp-up hidden under the previous kernel -> +5-10% => 63.0, 61.1
    {"v10n_auto_pdl", launch_paired_auto<8, false, false, true>},
    {"v10w_auto_pdl", launch_paired_auto<8, true, false, true>},  // H100: 65.4
    // + grid capped at the resident blocks (table filled once per block) -> a few % over v10w_auto_pdl => 56.1;
    // H100 60.4 (v10w_auto_pdl 65.4, same run): the kernel in kernels-cuda/src/nf4_gemv.cu
    {"v10w_autoc_pdl", launch_paired_auto<8, true, false, true, 1, false, true>},
    // registers capped for 3 blocks/SM (24 warps, as v9m_u8 has): more warps to hide latency; ptxas may
    // sink loads below math again -> within +-5% of v10n_r2 => 82.8, 79.0, 78.4
    {"v10n_r1_b3", launch_paired<1, 8, false, false, false, false, 3>},
    {"v10n_r2u4_b3", launch_paired<2, 4, false, false, false, false, 3>},
    {"v10n_r2u4_b3_pdl", launch_paired<2, 4, false, false, true, false, 3>},
    // v11: the next iteration's codes in flight during this one's math -> ~70 on the big shapes => 82-95
    // (every form lost; see the bench header)
    {"v11w", launch_paired<1, 8, true, false, false, false, 1, true>},
    {"v11n", launch_paired<1, 8, false, false, false, false, 1, true>},
    {"v11n_u4_b3", launch_paired<1, 4, false, false, false, false, 3, true>},
    {"v11n_r2u4", launch_paired<2, 4, false, false, false, false, 1, true>},
    {"v11n_r2u4_b2", launch_paired<2, 4, false, false, false, false, 2, true>},
    {"v11w_r2u4", launch_paired<2, 4, true, false, false, false, 1, true>},
    {"v11n_auto", launch_paired_auto<4, false, false, false, 1, true>},
    {"v11n_auto_pdl", launch_paired_auto<4, false, false, true, 1, true>},
    {"v11w_auto_pdl", launch_paired_auto<4, true, false, true, 1, true>},
};
