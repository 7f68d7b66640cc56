// NF4 matrix-vector bench, part 6: each lane takes 8 consecutive code words of a row (64 weights,
// one absmax block at bitsandbytes' blocksize 64), so its scale is its own block's and needs no
// shuffle, and is applied once per 8 words instead of once per word. The warp's code words are still
// one contiguous 1 KB per row (two 16-byte loads per lane); x, which each lane now needs at a
// 128-byte stride, is staged in shared memory with its 16-byte chunks XOR-swizzled by the lane's low
// bits so a quarter-warp's reads hit 8 different bank groups. Included by nf4_gemv_bench.cu only.
// Why (the probes in nf4_gemv_variants_pipe.cuh, H100, layer of 4 launches): the shipped loop's copy
// 55.5 us = 68.1%; without the scale shuffles (wrong results) 52.8 us = 71.6%; x loaded once per
// group changed little (54.3 us): the shuffles and per-word scale math, not x, cost the most.
// PREDICTION (H100): layer of 4 launches ~52 us = ~72% (src_shipped 58.5 us = 64.7%); H200 ~55%.
// MEASURED (H100, one run, copy 2.99 TB/s): lanes q/o 48.1%, k/v 18.8%, gate/up 64.3%, down 70.5%,
// layer of 4 launches 55.8 us = 67.4% (errors 3-4e-3, correct); src_shipped 58.6 us = 64.2% and the
// shipped loop's plain copy (mio_same) 55.0 us = 68.3% in the same run. Short of the prediction: the
// shuffle-free form did not keep the probe's gain once its scales were real.
// Blocksize 64 and in_f / 8 a multiple of 256 only (the bench's shapes).
#pragma once
#include "nf4_gemv_variants_pipe.cuh"


namespace lanes {

using tsl::Nf4GemvGroup;

template <int kRows>
__global__ void __launch_bounds__(256, 2) lanes_kernel(const Nf4GemvGroup g) {
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
  for (int i = threadIdx.x; i < words; i += blockDim.x) xs[i ^ ((i >> 3) & 7)] = __ldg(x8 + i);
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const uint32_t lane4 = (uint32_t)lane * 4;
  const int64_t groups = (g.rows + 8 * kRows - 1) / (8 * kRows);
  for (int64_t gi = blockIdx.x; gi < groups; gi += gridDim.x) {
    const int64_t row0 = (gi * 8 + (threadIdx.x >> 5)) * kRows;
    if (row0 >= g.rows) break;
    const uint4* rowp[kRows];
    const uint8_t* qrow[kRows];
    const float* nrow[kRows];
    int lnb[kRows];
    float acc[kRows];
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const int64_t row = min(row0 + r, g.rows - 1);
      const int m = tsl::matrix_of(g, row);
      const int64_t i = row - TSL_PICK(g, m, first_row);
      rowp[r] = reinterpret_cast<const uint4*>(TSL_PICK(g, m, packed) + i * words) + 2 * lane;
      // Block of this lane's first weight in iteration 0: (row·in_f + 64·lane) / 64.
      qrow[r] = TSL_PICK(g, m, scales.q) + ((i * g.in_f) >> 6) + lane;
      nrow[r] = TSL_PICK(g, m, scales.nested_absmax);
      lnb[r] = TSL_PICK(g, m, log2_nested_blocksize);
      acc[r] = 0.f;
    }
    int m_of[kRows];
#pragma unroll
    for (int r = 0; r < kRows; r++) m_of[r] = tsl::matrix_of(g, min(row0 + r, g.rows - 1));
    for (int base = 0; base < words; base += 256) {
      uint4 cw[kRows][2];
      float scale[kRows];
#pragma unroll
      for (int r = 0; r < kRows; r++) {
        cw[r][0] = __ldcs(rowp[r] + base / 4);
        cw[r][1] = __ldcs(rowp[r] + base / 4 + 1);
        const int64_t b = (qrow[r] - TSL_PICK(g, m_of[r], scales.q)) + base / 8;  // block index
        scale[r] = fmaf(nested_code[m_of[r] * 256 + __ldg(qrow[r] + base / 8)], __ldg(nrow[r] + (b >> lnb[r])),
                        TSL_PICK(g, m_of[r], scales.nested_offset));
      }
      float part[kRows];
#pragma unroll
      for (int r = 0; r < kRows; r++) part[r] = 0.f;
#pragma unroll
      for (int u = 0; u < 8; u++) {
        const uint4 xv = xs[base + 8 * lane + (u ^ (lane & 7))];
#pragma unroll
        for (int r = 0; r < kRows; r++) {
          const uint32_t w = u == 0 ? cw[r][0].x : u == 1 ? cw[r][0].y : u == 2 ? cw[r][0].z : u == 3 ? cw[r][0].w
                           : u == 4 ? cw[r][1].x : u == 5 ? cw[r][1].y : u == 6 ? cw[r][1].z : cw[r][1].w;
          part[r] += tsl::dot8_pairs(w, xv, table, lane4);
        }
      }
#pragma unroll
      for (int r = 0; r < kRows; r++) acc[r] = fmaf(scale[r], part[r], acc[r]);
    }
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const float v = tsl::warp_sum(acc[r]);
      const int64_t row = row0 + r;
      if (lane == 0 && row < g.rows) tsl::finish_row(g, m_of[r], row - TSL_PICK(g, m_of[r], first_row), v);
    }
  }
}

template <int R>
static void launch_lanes_r(const Args* list, int n, cudaStream_t s) {
  // Shared memory: the table and x (bf16, in_f values).
  const Nf4GemvGroup g = ring_group_of(list, n);
  launch_capped(lanes_kernel<R>, g, g.rows, R, "lanes", s, tsl::kTableBytes + (int)g.in_f * 2);
}

static void launch_lanes_group(const Args* list, int n, cudaStream_t s) {
  if (two_rows_per_warp_fit(list, n)) launch_lanes_r<2>(list, n, s);
  else launch_lanes_r<1>(list, n, s);
}
static void launch_lanes(const Args& a, cudaStream_t s) { launch_lanes_group(&a, 1, s); }

}  // namespace lanes



static const Variant kLanesVariants[] = {
    {"lanes", lanes::launch_lanes, false, lanes::launch_lanes_group},
};
