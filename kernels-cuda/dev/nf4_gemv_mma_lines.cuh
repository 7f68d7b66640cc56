// NF4 matrix-vector bench: the tensor-core product of nf4_gemv_mma.cuh with its code words loaded as
// whole 128-byte lines. Why: there each lane loads 8 bytes of each of its two rows per absmax block
// (an mma's k must lie in one block), so one warp load touches 16 lines: 8 L1 wavefronts per 32
// code words, against 1 for the shipped loop; the loop lost (gate/up 15.8 us, down 17.2, against
// 13.8 and 11.8 shipped, H200) though it issues a third of the instructions.
// Here a warp load reads 4 rows x 128 contiguous bytes (lane L: row L/8, bytes 16(L%8)..): lane (g, t)
// holds 16 bytes of physical row g/2 (half g%2 of the unit's 128 bytes) and of row 4 + g/2, so the 16
// fragment rows are 8 physical rows x 2 halves, and lanes t, t' of a fragment row hold two absmax
// blocks (t/2). B's 8 columns keep those apart: column n (and n + 4) carries x of half n%2 where the
// owning lane's block parity is (n/2)%2, zero elsewhere. Lane (g, t) then finds in its own
// accumulators the one sum it scales: fragment row g (t < 2) or g + 8, half g%2, block parity t%2 —
// one absmax per lane and unit, no shuffles. A unit is 8 rows x 256 weights (1 KB), a tile kM x 8 rows;
// warp w takes unit columns w, w + kW, ...; the rest as nf4_gemv_mma.cuh.
// Blocksize 64, nested blocksize a multiple of 4 blocks, in_f a multiple of 256 (the bench's shapes).
// Prediction (H200): gate/up ~11 us (the loads now as cheap as the shipped loop's, a third fewer
// instructions than it), down near gate/up's rate per byte with x staged conflict-free.
// Measured (H200, copy 4.19-4.22 TB/s, three runs; us for q/o, k/v, gate/up, down, layer of 7 / of 4
// launches; src_shipped 4.39-4.40 / 2.93 / 13.8 / 11.8-11.9 / 54.0-54.3 / 49.0-49.2 in the same runs;
// all within 3.4e-3 of the f64 reference):
//   lines (tile 16 rows, x in registers for in_f 4096) 5.84-5.95 / 3.2-3.3 / 14.3-14.4 / 16.3 (20.6 with x read
//     unstaged: 16-byte reads 64 bytes apart conflict in the banks) / 63.8-64.1 / 61.9-62.6;
//   lines_m1 (tile 8 rows) 6.1 / 3.4 / 15.1 / 20.6 (unstaged) / 70.3 / 74.4; lines_m4 (tile 32 rows)
//     5.5 / 4.3 / 15.8 / 20.1 (unstaged) / 71.4 / 69.0;
//   lines_xs (x staged in shared memory for in_f 4096 too) 6.0 / 3.1 / 15.2 / 16.4 / 65.2 / 66.8
//     (unstaged: gate/up 19.6);
//   lines_dense (32 KB table, 64-92 KB of shared memory per block instead of 160, so the next launch's
//     block fits beside it) 6.2 / 3.4 / 15.3 / 17.2 / 67.5 / 65.6; lines_dense_m1 69.2 / 74.4;
//     lines_dense_d2 (down tile 16 rows) 16.4 down, 66.2 / 64.6.
// Nsight Compute, gate/up alone (clocks locked, so cycles compare): lines 5.53M warp instructions
// (shipped 7.09M), 28.9k cycles (shipped 33.1k: 12% fewer in isolation), issue slots 37% busy (41%),
// LSU 38% of peak (48%), 0.81 eligible warps per scheduler (1.01), 8.9 cycles between a warp's
// instructions (6.1): long scoreboard 2.39 (1.34), wait 1.40, short scoreboard 0.93, barrier 0.86.
// So fewer cycles alone but slower back to back at full clocks: one tile of loads in flight per warp
// (registers: 111 of 128) does not cover the memory latency, which the per-tile barrier then spreads
// over all 16 warps; the small shapes (2-3 tiles per block) also pay the prologue of one 512-thread
// block per SM. The L1 load cost is fixed (wavefronts 44% of peak) and the tensor pipe 9% busy.
#pragma once
#include "nf4_gemv_mma.cuh"

namespace tsl {
namespace {

struct LineUnit {
  uint4 a[2];  // this lane's 16 bytes of rows g/2 and 4 + g/2
  uint32_t q;
  float nested;
};

// This lane's sources for one sub-tile of 8 rows at unit column 0.
struct LineRows {
  const uint4* w[2];
  MmaScaleRow s;  // the scale row's, its absmax codes from block 2(g%2) + t%2
};

template <bool kGroup>
__device__ __forceinline__ LineRows line_rows(const Nf4GemvGroup& g, int64_t row8, int words, int lane) {
  const int t = lane & 3, gq = lane >> 2;
  LineRows R;
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int64_t row = min(row8 + 4 * r + (gq >> 1), g.rows - 1);
    const int m = kGroup ? matrix_of(g, row) : 0;
    R.w[r] = reinterpret_cast<const uint4*>(TSL_PICK(g, m, packed) + (row - (kGroup ? TSL_PICK(g, m, first_row) : 0)) * words) + (lane & 7);
  }
  R.s = mma_scale_row<kGroup>(g, min(row8 + (t < 2 ? 0 : 4) + (gq >> 1), g.rows - 1), words);
  R.s.q += 2 * (gq & 1) + (t & 1);
  return R;
}

__device__ __forceinline__ void line_load(const LineRows& R, int u, int units, LineUnit& c) {
  if (u >= units) return;  // warp-uniform
  c.a[0] = __ldcs(R.w[0] + 8 * u);
  c.a[1] = __ldcs(R.w[1] + 8 * u);
  c.q = __ldg(R.s.q + 4 * u);
  c.nested = __ldg(R.s.nested + ((R.s.blk + 4 * u) >> R.s.log2n));
}

// Chunk i (8 bf16) of a lane's x fragment, or zeros where the column's block is not the lane's.
__device__ __forceinline__ void line_x_chunk(const uint4 v, bool on, int i, uint32_t (&xb)[16]) {
  xb[4 * i] = on ? v.x : 0u, xb[4 * i + 1] = on ? v.y : 0u, xb[4 * i + 2] = on ? v.z : 0u, xb[4 * i + 3] = on ? v.w : 0u;
}

// x's fragment of unit column u for this lane: the 32 weights' x of half g%2 at 32t, where the
// column's block parity (g/2)%2 is the lane's own (t/2), else zeros.
__device__ __forceinline__ void line_x(const uint4* x8, int u, int lane, uint32_t (&xb)[16]) {
  const int t = lane & 3, gq = lane >> 2;
  const uint4* p = x8 + 32 * u + 16 * (gq & 1) + 4 * t;
  const bool on = ((gq >> 1) & 1) == (t >> 1);
#pragma unroll
  for (int i = 0; i < 4; i++) {
    line_x_chunk(p[i], on, i, xb);
  }
}

// kDense: the pair table at 128-byte entries (32 KB, at a 32 KB boundary): a lookup's address is
// (code byte << 7) | 4·lane | the table's boundary, a shift and a LOP3 instead of one PRMT, but a
// block needs ~60-90 KB of shared memory instead of ~125 KB, so the next launch's block fits beside
// it and programmatic dependent launch overlaps their ends.
constexpr int kDenseTableBytes = 256 * 128;
__device__ __forceinline__ void fill_dense_table(char* table, int threads) {
  for (int i = threadIdx.x; i < 256 * 8; i += threads) {
    const int v = i >> 3;
    const uint32_t p = (uint32_t)__bfloat16_as_ushort(__float2bfloat16(kNf4Code[v >> 4])) |
                       ((uint32_t)__bfloat16_as_ushort(__float2bfloat16(kNf4Code[v & 15])) << 16);
    *reinterpret_cast<uint4*>(table + v * 128 + (i & 7) * 16) = make_uint4(p, p, p, p);
  }
}
template <bool kDense>
__device__ __forceinline__ uint32_t line_lut(uint32_t w, uint32_t lt, int byte) {
  if (!kDense) return mma_lut(w, lt, 0x7604u + 0x10u * byte);
  const uint32_t off = byte == 0 ? (w << 7) : (w >> (8 * byte - 7));
  uint32_t p;
  asm volatile("ld.shared.u32 %0, [%1];" : "=r"(p) : "r"((off & 0x7f80u) | lt));
  return p;
}

// x staged for kXRegs = false, arranged so that a warp's fragment read is 128 contiguous bytes:
// 16-byte chunk (u, i, h, t) at ((4u + i)·2 + h)·4 + t holds x8[32u + 16h + 4t + i].
__device__ __forceinline__ void line_stage_x(const uint4* x8, uint4* xs, int chunks) {
  for (int k = threadIdx.x; k < chunks; k += blockDim.x) {
    const int t = k & 3, h = (k >> 2) & 1, i = (k >> 3) & 3, u = k >> 5;
    xs[k] = __ldg(x8 + 32 * u + 16 * h + 4 * t + i);
  }
}
__device__ __forceinline__ void line_x_staged(const uint4* xs, int u, int lane, uint32_t (&xb)[16]) {
  const int t = lane & 3, gq = lane >> 2;
  const bool on = ((gq >> 1) & 1) == (t >> 1);
#pragma unroll
  for (int i = 0; i < 4; i++) {
    line_x_chunk(xs[((4 * u + i) * 2 + (gq & 1)) * 4 + t], on, i, xb);
  }
}

// The unit's contribution to this lane's (row, block): 8 mma in 2 chains, the lane's sum picked, scaled.
template <bool kDense>
__device__ __forceinline__ float line_unit(const LineUnit& c, const uint32_t (&xb)[16], uint32_t lt, int lane,
                                           const float* nested_code, int code_base, float off) {
  float d[2][4] = {};
#pragma unroll
  for (int i = 0; i < 8; i++) {
    const uint32_t* wa = reinterpret_cast<const uint32_t*>(&c.a[0]);
    const uint32_t* wb = reinterpret_cast<const uint32_t*>(&c.a[1]);
    const int b0 = 2 * (i & 1), b1 = b0 + 1;
    mma_bf16(d[i & 1], line_lut<kDense>(wa[i >> 1], lt, b0), line_lut<kDense>(wb[i >> 1], lt, b0),
             line_lut<kDense>(wa[i >> 1], lt, b1), line_lut<kDense>(wb[i >> 1], lt, b1), xb[2 * i], xb[2 * i + 1]);
  }
  const int k = ((lane & 3) < 2 ? 0 : 2) + ((lane >> 2) & 1);
  const float v = (k == 0 ? d[0][0] : k == 1 ? d[0][1] : k == 2 ? d[0][2] : d[0][3]) +
                  (k == 0 ? d[1][0] : k == 1 ? d[1][1] : k == 2 ? d[1][2] : d[1][3]);
  return fmaf(nested_code[code_base + c.q], c.nested, off) * v;
}

template <int kW, int kUPW, int kM, bool kXRegs, bool kGroup, bool kDense>
__global__ void __launch_bounds__(kW * 32, 1) nf4_gemv_lines_kernel(const Nf4GemvGroup g) {
  extern __shared__ __align__(16) char mma_smem[];
  __shared__ float nested_code[kGroup ? kMaxGroup * 256 : 256];
  __shared__ float red[2][kW][8 * kM];
  const uint32_t dyn = shared_u32(mma_smem), align = kDense ? 0x7fffu : 0xffffu, table_at = (dyn + align) & ~align;
  char* table = mma_smem + (table_at - dyn);
  uint4* xs = reinterpret_cast<uint4*>(table + (kDense ? kDenseTableBytes : kTableBytes));
  if (kDense) fill_dense_table(table, blockDim.x);
  else fill_pair_table(table, blockDim.x);
  fill_nested_codes<kGroup>(g, nested_code);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int words = (int)(g.in_f >> 3), units = (int)(g.in_f >> 8);
  const int64_t tiles = (g.rows + 8 * kM - 1) / (8 * kM);
  int64_t tile = blockIdx.x;
  // One tile's units in flight per warp: the first tile's loaded before waiting (frozen weights).
  LineUnit ring[kM][kUPW];
#pragma unroll
  for (int s = 0; s < kM; s++) {
    const LineRows R = line_rows<kGroup>(g, (tile * kM + s) * 8, words, lane);
#pragma unroll
    for (int i = 0; i < kUPW; i++) line_load(R, warp + kW * i, units, ring[s][i]);
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  const uint4* x8 = reinterpret_cast<const uint4*>(g.x);
  uint32_t xr[kXRegs ? kUPW : 1][16];
  if (kXRegs) {
#pragma unroll
    for (int i = 0; i < kUPW; i++)
      if (warp + kW * i < units) line_x(x8, warp + kW * i, lane, xr[kXRegs ? i : 0]);
  } else {
    line_stage_x(x8, xs, words);
  }
  __syncthreads();
  const uint32_t lt = table_at | (uint32_t)(lane * 4);
  const int t = lane & 3, gq = lane >> 2;
  int buf = 0;
  for (; tile < tiles; tile += gridDim.x) {
    const bool has_next = tile + gridDim.x < tiles;
#pragma unroll
    for (int s = 0; s < kM; s++) {
      const LineRows cur = line_rows<kGroup>(g, (tile * kM + s) * 8, words, lane);
      const LineRows nxt = line_rows<kGroup>(g, ((has_next ? tile + gridDim.x : tile) * kM + s) * 8, words, lane);
      float acc = 0.f;
#pragma unroll
      for (int i = 0; i < kUPW; i++) {
        const int u = warp + kW * i;
        if (u < units) {
          if (kXRegs) {
            acc += line_unit<kDense>(ring[s][i], xr[kXRegs ? i : 0], lt, lane, nested_code, cur.s.code_base, cur.s.off);
          } else {
            uint32_t xb[16];
            line_x_staged(xs, u, lane, xb);
            acc += line_unit<kDense>(ring[s][i], xb, lt, lane, nested_code, cur.s.code_base, cur.s.off);
          }
        }
        if (has_next) line_load(nxt, u, units, ring[s][i]);
      }
      // Row (t < 2 ? 0 : 4) + g/2 over half g%2 and block parity t%2: lanes L, L^1, L^4, L^5 share it.
      acc += __shfl_xor_sync(0xffffffffu, acc, 1);
      acc += __shfl_xor_sync(0xffffffffu, acc, 4);
      if ((lane & 5) == 0) red[buf][warp][8 * s + (t < 2 ? 0 : 4) + (gq >> 1)] = acc;
    }
    __syncthreads();
    if (warp == 0 && lane < 8 * kM) mma_finish<8 * kM>(g, tile * 8 * kM + lane, red[buf], kW, lane);
    buf ^= 1;
  }
}

}  // namespace
}  // namespace tsl

// ---- launchers ----------------------------------------------------------------------------------
template <int kW, int kUPW, int kM, bool kXRegs, bool kDense>
static void launch_lines_form(const Args* list, int n, cudaStream_t s) {
  const tsl::Nf4GemvGroup g = ring_group_of(list, n);
  auto kern = n > 1 ? tsl::nf4_gemv_lines_kernel<kW, kUPW, kM, kXRegs, true, kDense>
                    : tsl::nf4_gemv_lines_kernel<kW, kUPW, kM, kXRegs, false, kDense>;
  // Dense: the table at the first 32 KB boundary, x (staged) past it; else as nf4_gemv_mma.cuh.
  const int smem = kDense ? 2 * tsl::kDenseTableBytes + (kXRegs ? 0 : 28 * 1024) : tsl::kMmaSmem;
  static bool done[2] = {false, false};
  if (!done[n > 1]) {
    done[n > 1] = true;
    CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    cudaFuncAttributes fa;
    CK(cudaFuncGetAttributes(&fa, kern));
    fprintf(stderr, "lines W=%d units/warp=%d tile=%d rows x in %s%s%s: %d registers, %d local bytes\n", kW, kUPW, 8 * kM,
            kXRegs ? "registers" : "shared", kDense ? ", dense table" : "", n > 1 ? ", grouped" : "", fa.numRegs,
            (int)fa.localSizeBytes);
  }
  if (g.in_f % 256 || g.log2_blocksize != 6 || (g.in_f >> 8) > kW * kUPW || g.in_f * 2 > 28 * 1024) {
    fprintf(stderr, "lines: in_f %lld / blocksize not supported by this form\n", (long long)g.in_f);
    exit(1);
  }
  int dev, sms;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const int64_t tiles = (g.rows + 8 * kM - 1) / (8 * kM), per = (tiles + sms - 1) / sms;
  launch_pdl(kern, (unsigned)((tiles + per - 1) / per), kW * 32, smem, g, s);
}

// in_f 4096: 16 unit columns, one per warp; 14336 (down): 56, 4 per warp of 14.
template <int kM4096, int kMDown, bool kXRegs4096, bool kDense = false>
static void launch_lines_group(const Args* list, int n, cudaStream_t s) {
  if (list[0].in_f == 4096) launch_lines_form<16, 1, kM4096, kXRegs4096, kDense>(list, n, s);
  else launch_lines_form<14, 4, kMDown, false, kDense>(list, n, s);
}
template <int kM4096, int kMDown, bool kXRegs4096, bool kDense = false>
static void launch_lines(const Args& a, cudaStream_t s) { launch_lines_group<kM4096, kMDown, kXRegs4096, kDense>(&a, 1, s); }

static const Variant kLinesVariants[] = {
    {"lines", launch_lines<2, 1, true>, false, launch_lines_group<2, 1, true>},
    {"lines_m1", launch_lines<1, 1, true>, false, launch_lines_group<1, 1, true>},
    {"lines_m4", launch_lines<4, 2, true>, false, launch_lines_group<4, 2, true>},
    {"lines_xs", launch_lines<2, 1, false>, false, launch_lines_group<2, 1, false>},
    {"lines_dense", launch_lines<2, 1, true, true>, false, launch_lines_group<2, 1, true, true>},
    {"lines_dense_m1", launch_lines<1, 1, true, true>, false, launch_lines_group<1, 1, true, true>},
    {"lines_dense_d2", launch_lines<2, 2, true, true>, false, launch_lines_group<2, 2, true, true>},
};
