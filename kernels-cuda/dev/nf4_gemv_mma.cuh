// NF4 matrix-vector bench: the products on the tensor cores (mma.sync m16n8k16, bf16 in, f32 out).
// Why: every CUDA-core form so far spends ~27 issued instructions per code word and row (4 table
// lookups, 4 HFMA2, the bf16x2 halves, a scale shuffle, ...) and none has gone past ~54% of an
// H200's copy rate, bound by the SM and not by the memory (the L2 probe: 5% faster). Here a lane's
// 4 lookups per word are A-fragment registers as they come from the pair table, one HMMA takes
// them, and the scale is applied once per absmax block: ~11 instructions per word and row.
//
// Work split: a block of kW warps per SM (one 64 KB pair table at a 64 KB boundary of the shared
// window, so one PRMT makes a lookup's whole address) takes tiles of 16 rows, grid-strided; the
// tile's K splits into units of 128 weights (2 absmax blocks of 64), unit u to warp u % kW, and the
// warps' partial sums meet in shared memory (one barrier per tile, double-buffered sums; warp 0
// finishes the 16 rows). A warp keeps kD units' code words in flight in registers (kUPW units per
// warp and tile, kD dividing it: unit i + kD is loaded after unit i's math, from the next tile
// past the end).
// Fragments (g = lane / 4, t = lane % 4): lane (g, t) holds words 2t and 2t+1 of each absmax block
// of rows g and g + 8, loaded as one 8-byte load per row and block. The dot product does not care
// in which order k is summed, so mma m of a block (m = 0..3) takes byte 2(m%2) and 2(m%2)+1 of word
// m/2 as its two k-pairs, and x's fragment is x[block·64 + 16t .. +16) in order (pairs 2m, 2m+1):
// every mma's k lie in one block. B's 8 columns all hold x, so every lane's accumulator holds its
// rows' sums: lane (g, t) scales the block t/2 of the unit for row g + 8(t%2) (its own absmax:
// no shuffles), and a shuffle over t^2 finishes the warp's part of each row.
// Blocksize 64 and in_f a multiple of 128 only (the bench's shapes).
// Prediction (H200, src_shipped gate/up 13.8 us, layer of 4 launches 49 us): a third of the
// instructions, so where the shipped loop is bound by its own issue and dependency chains, gate/up
// ~10 us and the layer near the 70% mark (~38 us).
// Measured (H200, copy 4.21 TB/s, one run; us for q/o, k/v, gate/up, down, layer of 7 / of 4 launches;
// src_shipped 4.40 / 2.93 / 13.8 / 11.8 / 54.2 / 49.0 in the same run; every form within 3.4e-3 of
// the f64 reference, against 4.1e-3 for the shipped bf16x2 sums):
//   mma (x in registers for in_f 4096, down W=16, 7 units per warp, depth 7) 5.52 / 2.41 / 15.8 / 17.2 /
//     65.8 / 66.8, a later run of the final source 5.85 / 2.86 / 16.1 / 17.7 / 68.2 / 68.3;
//   mma_xs (x from shared memory) 6.2 / 3.0 / 17.3 / 17.3 / 71.2 / 71.0; mma_d1 (down depth 1) 5.52 /
//     2.42 / 15.8 / 17.1 / 65.3 / 66.8; mma_w14 (down W=14, 8 units, depth 4) 17.0 down, 65.3 / 66.2;
//     mma_w14d2 18.0 down, 66.3 / 67.6.
// Why it lost: a lane's 8 bytes per row and block make each warp load touch 16 lines (8 L1
// wavefronts per 32 code words, the shipped loop 1); nf4_gemv_mma_lines.cuh loads whole lines.
#pragma once
#include "nf4_gemv_variants_stream.cuh"

namespace tsl {
namespace {

constexpr int kMmaSmem = 2 * kTableBytes + 32 * 1024;  // the table at a 64 KB boundary, x (in_f <= 16384) past it

__device__ __forceinline__ uint32_t mma_lut(uint32_t w, uint32_t lane_table, uint32_t sel) {
  uint32_t p;
  // volatile: the table is filled before the block's barrier, which a pure asm could be hoisted over
  asm volatile("ld.shared.u32 %0, [%1];" : "=r"(p) : "r"(prmt(w, lane_table, sel)));
  return p;
}

__device__ __forceinline__ void mma_bf16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                         uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// One unit's operands for this lane: code words [row g / g+8][block], its absmax code and nested absmax.
struct MmaUnit {
  uint2 w[2][2];
  uint32_t q;
  float nested;
};

// The absmax sources of one row: its first block's index and absmax codes, its matrix's nested
// absmax, nested blocksize, nested codes (offset in shared memory) and offset.
struct MmaScaleRow {
  const uint8_t* q;
  const float* nested;
  int blk, log2n, code_base;
  float off;
};

template <bool kGroup>
__device__ __forceinline__ MmaScaleRow mma_scale_row(const Nf4GemvGroup& g, int64_t row, int words) {
  const int m = kGroup ? matrix_of(g, row) : 0;
  MmaScaleRow S;
  S.blk = (int)((row - (kGroup ? TSL_PICK(g, m, first_row) : 0)) * (words >> 3));
  S.q = TSL_PICK(g, m, scales.q) + S.blk;
  S.nested = TSL_PICK(g, m, scales.nested_absmax);
  S.log2n = TSL_PICK(g, m, log2_nested_blocksize);
  S.code_base = m * 256;
  S.off = TSL_PICK(g, m, scales.nested_offset);
  return S;
}

// This lane's sources in one tile: rows g and g + 8 (code words from word 2t), and the row whose
// absmax it applies (g + 8(t%2), block t/2 of each unit).
struct MmaTile {
  const uint32_t* w[2];
  MmaScaleRow s;
};

template <bool kGroup>
__device__ __forceinline__ MmaTile mma_tile(const Nf4GemvGroup& g, int64_t tile, int words, int gq, int t) {
  MmaTile T;
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int64_t row = min(tile * 16 + gq + 8 * r, g.rows - 1);
    const int m = kGroup ? matrix_of(g, row) : 0;
    T.w[r] = TSL_PICK(g, m, packed) + (row - (kGroup ? TSL_PICK(g, m, first_row) : 0)) * words + 2 * t;
  }
  T.s = mma_scale_row<kGroup>(g, min(tile * 16 + gq + 8 * (t & 1), g.rows - 1), words);
  T.s.blk += t >> 1;
  T.s.q += t >> 1;
  return T;
}

__device__ __forceinline__ void mma_load(const MmaTile& T, int u, int units, MmaUnit& c) {
  if (u >= units) return;  // warp-uniform
#pragma unroll
  for (int r = 0; r < 2; r++)
#pragma unroll
    for (int j = 0; j < 2; j++) c.w[r][j] = __ldcs(reinterpret_cast<const uint2*>(T.w[r] + (2 * u + j) * 8));
  c.q = __ldg(T.s.q + 2 * u);
  c.nested = __ldg(T.s.nested + ((T.s.blk + 2 * u) >> T.s.log2n));
}

// The unit's contribution to this lane's row: 2 chains of 4 mma (one per absmax block), scaled.
__device__ __forceinline__ float mma_unit(const MmaUnit& c, const uint32_t (&xb)[2][8], uint32_t lt, int t,
                                          const float* nested_code, int code_base, float off) {
  float part[2];
#pragma unroll
  for (int j = 0; j < 2; j++) {
    float d[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int m = 0; m < 4; m++) {
      const uint32_t wg = (m >> 1) ? c.w[0][j].y : c.w[0][j].x, wh = (m >> 1) ? c.w[1][j].y : c.w[1][j].x;
      const uint32_t s0 = 0x7604u + 0x20u * (m & 1), s1 = s0 + 0x10u;
      mma_bf16(d, mma_lut(wg, lt, s0), mma_lut(wh, lt, s0), mma_lut(wg, lt, s1), mma_lut(wh, lt, s1), xb[j][2 * m],
               xb[j][2 * m + 1]);
    }
    part[j] = (t & 1) ? d[2] : d[0];
  }
  const float s = fmaf(nested_code[code_base + c.q], c.nested, off);
  return s * ((t >> 1) ? part[1] : part[0]);
}

// x's fragments of unit u for this lane: x[64(2u + j) + 16t .. +16) as 8 bf16 pairs per block j.
__device__ __forceinline__ void mma_x(const uint4* x8, int u, int t, uint32_t (&xb)[2][8]) {
#pragma unroll
  for (int j = 0; j < 2; j++) {
    const uint4 a = x8[16 * u + 8 * j + 2 * t], b = x8[16 * u + 8 * j + 2 * t + 1];
    xb[j][0] = a.x, xb[j][1] = a.y, xb[j][2] = a.z, xb[j][3] = a.w;
    xb[j][4] = b.x, xb[j][5] = b.y, xb[j][6] = b.z, xb[j][7] = b.w;
  }
}

// Row `row`'s sum over the block's kW warps (sums[w][row % 16 or % 8]) finished into y.
template <int kN>
__device__ __forceinline__ void mma_finish(const Nf4GemvGroup& g, int64_t row, const float (*sums)[kN], int w_count, int slot) {
  if (row >= g.rows) return;
  float v = 0.f;
  for (int w = 0; w < w_count; w++) v += sums[w][slot];
  const int m = matrix_of(g, row);
  finish_row(g, m, row - TSL_PICK(g, m, first_row), v);
}

// kXRegs: each warp's x fragments stay in registers for the whole launch (kUPW <= 2), else they are
// read from x's copy in shared memory per unit.
template <int kW, int kUPW, int kD, bool kXRegs, bool kGroup>
__global__ void __launch_bounds__(kW * 32, 1) nf4_gemv_mma_kernel(const Nf4GemvGroup g) {
  static_assert(kUPW % kD == 0, "the ring depth divides the units per warp");
  extern __shared__ __align__(16) char mma_smem[];
  __shared__ float nested_code[kGroup ? kMaxGroup * 256 : 256];
  __shared__ float red[2][kW][16];
  const uint32_t dyn = shared_u32(mma_smem), table_at = (dyn + 0xffffu) & ~0xffffu;
  char* table = mma_smem + (table_at - dyn);
  uint4* xs = reinterpret_cast<uint4*>(table + kTableBytes);
  fill_pair_table(table, blockDim.x);
  fill_nested_codes<kGroup>(g, nested_code);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, t = lane & 3, gq = lane >> 2;
  const int words = (int)(g.in_f >> 3), units = (int)(g.in_f >> 7);
  const int64_t tiles = (g.rows + 15) >> 4;
  int64_t tile = blockIdx.x;
  // The first kD units' code words and absmax before waiting (frozen weights).
  MmaTile cur = mma_tile<kGroup>(g, tile, words, gq, t);
  MmaUnit ring[kD];
#pragma unroll
  for (int d = 0; d < kD; d++) mma_load(cur, warp + kW * d, units, ring[d]);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  const uint4* x8 = reinterpret_cast<const uint4*>(g.x);
  uint32_t xr[kXRegs ? kUPW : 1][2][8];
  if (kXRegs) {
#pragma unroll
    for (int i = 0; i < kUPW; i++)
      if (warp + kW * i < units) mma_x(x8, warp + kW * i, t, xr[kXRegs ? i : 0]);
  } else {
    for (int k = threadIdx.x; k < words; k += blockDim.x) xs[k] = __ldg(x8 + k);
  }
  __syncthreads();
  const uint32_t lt = table_at | (uint32_t)(lane * 4);
  int buf = 0;
  for (; tile < tiles; tile += gridDim.x) {
    const bool has_next = tile + gridDim.x < tiles;
    const MmaTile nxt = mma_tile<kGroup>(g, has_next ? tile + gridDim.x : tile, words, gq, t);
    float acc = 0.f;
#pragma unroll
    for (int i = 0; i < kUPW; i++) {
      const int u = warp + kW * i;
      MmaUnit& c = ring[i % kD];
      if (u < units) {
        if (kXRegs) {
          acc += mma_unit(c, xr[kXRegs ? i : 0], lt, t, nested_code, cur.s.code_base, cur.s.off);
        } else {
          uint32_t xb[2][8];
          mma_x(xs, u, t, xb);
          acc += mma_unit(c, xb, lt, t, nested_code, cur.s.code_base, cur.s.off);
        }
      }
      if (i + kD < kUPW) mma_load(cur, warp + kW * (i + kD), units, c);
      else if (has_next) mma_load(nxt, warp + kW * (i + kD - kUPW), units, c);
    }
    acc += __shfl_xor_sync(0xffffffffu, acc, 2);
    if (t < 2) red[buf][warp][gq + 8 * t] = acc;
    __syncthreads();
    if (warp == 0 && lane < 16) mma_finish<16>(g, tile * 16 + lane, red[buf], kW, lane);
    buf ^= 1;
    cur = nxt;
  }
}

}  // namespace
}  // namespace tsl

// ---- launchers ----------------------------------------------------------------------------------
// Grid: one block per SM at most, evened so every block takes the same number of tiles.
template <int kW, int kUPW, int kD, bool kXRegs>
static void launch_mma_form(const Args* list, int n, cudaStream_t s) {
  const tsl::Nf4GemvGroup g = ring_group_of(list, n);
  auto kern = n > 1 ? tsl::nf4_gemv_mma_kernel<kW, kUPW, kD, kXRegs, true> : tsl::nf4_gemv_mma_kernel<kW, kUPW, kD, kXRegs, false>;
  static bool done[2] = {false, false};
  if (!done[n > 1]) {
    done[n > 1] = true;
    CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, tsl::kMmaSmem));
    cudaFuncAttributes fa;
    CK(cudaFuncGetAttributes(&fa, kern));
    fprintf(stderr, "mma W=%d units/warp=%d depth=%d x in %s%s: %d registers, %d local bytes\n", kW, kUPW, kD,
            kXRegs ? "registers" : "shared", n > 1 ? ", grouped" : "", fa.numRegs, (int)fa.localSizeBytes);
  }
  if (g.in_f % 128 || g.log2_blocksize != 6 || (g.in_f >> 7) > kW * kUPW || g.in_f * 2 > 32 * 1024) {
    fprintf(stderr, "mma: in_f %lld / blocksize not supported by this form\n", (long long)g.in_f);
    exit(1);
  }
  int dev, sms;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const int64_t tiles = (g.rows + 15) / 16, per = (tiles + sms - 1) / sms;
  launch_pdl(kern, (unsigned)((tiles + per - 1) / per), kW * 32, tsl::kMmaSmem, g, s);
}

// The form per in_f: 4096 (q/k/v, o, gate/up) and 14336 (down).
template <int kDownW, int kDownUPW, int kDownD, bool kXRegs4096>
static void launch_mma_group(const Args* list, int n, cudaStream_t s) {
  if (list[0].in_f == 4096) launch_mma_form<16, 2, 2, kXRegs4096>(list, n, s);
  else launch_mma_form<kDownW, kDownUPW, kDownD, false>(list, n, s);
}
template <int kDownW, int kDownUPW, int kDownD, bool kXRegs4096>
static void launch_mma(const Args& a, cudaStream_t s) { launch_mma_group<kDownW, kDownUPW, kDownD, kXRegs4096>(&a, 1, s); }

static const Variant kMmaVariants[] = {
    {"mma", launch_mma<16, 7, 7, true>, false, launch_mma_group<16, 7, 7, true>},
    {"mma_xs", launch_mma<16, 7, 7, false>, false, launch_mma_group<16, 7, 7, false>},
    {"mma_d1", launch_mma<16, 7, 1, true>, false, launch_mma_group<16, 7, 1, true>},
    {"mma_w14", launch_mma<14, 8, 4, true>, false, launch_mma_group<14, 8, 4, true>},
    {"mma_w14d2", launch_mma<14, 8, 2, true>, false, launch_mma_group<14, 8, 2, true>},
};
