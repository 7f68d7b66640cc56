// NF4 matrix-vector bench, part 4: the sm_90 ring kernel of kernels-cuda/src/nf4_gemv_ring.cuh
// (weights streamed into a shared-memory ring by bulk copies, one producer warp and 16 consumer
// warps per SM), timed here as shipped, its loads-only probe, and the grouped launch (matrices that
// share x in one grid: q/k/v, gate/up) timed as a layer of 4 launches instead of 7. Included by
// nf4_gemv_bench.cu only.
#pragma once
#include "nf4_gemv_variants_next.cuh"
#include "nf4_gemv_ring.cuh"

#include <utility>
#include <vector>

static int ilog2_of(int v) {
  int l = 0;
  while ((1 << l) < v) l++;
  return l;
}

static tsl::Nf4GemvGroup ring_group_of(const Args* list, int n) {
  tsl::Nf4GemvGroup g{};
  g.count = n;
  g.in_f = list[0].in_f;
  g.log2_blocksize = list[0].log2_bs;
  g.x = list[0].x;
  for (int i = 0; i < n; i++) {
    const Args& a = list[i];
    tsl::Nf4GemvMatrix& m = g.m[i];
    m.packed = reinterpret_cast<const uint32_t*>(a.packed);
    m.scales = tsl::Nf4Absmax{nullptr, a.am.q, a.am.nested_absmax, a.am.nested_code, a.am.nested_blocksize, a.am.nested_offset};
    m.log2_nested_blocksize = ilog2_of(a.am.nested_blocksize);
    m.first_row = g.rows;
    m.out_f = a.out_f;
    m.y = a.y;
    g.rows += a.out_f;
  }
  return g;
}

// Loads only: the producer as shipped, consumers wait for each stage and release it (no x, no math).
template <int kRows>
__global__ void __launch_bounds__(tsl::kRingThreads, 1) ring_probe_kernel(const __grid_constant__ tsl::Nf4GemvGroup g) {
  using S = tsl::RingShape<kRows>;
  constexpr int kChunkWords = 256, kGroupRows = tsl::kRingWarps * kRows;
  extern __shared__ __align__(128) char smem[];
  char* ring = smem + tsl::kTableBytes;
  uint64_t* full = reinterpret_cast<uint64_t*>(ring + S::kStages * S::kStageBytes + tsl::kMaxGroup * 1024);
  uint64_t* empty = full + S::kStages;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (threadIdx.x == 0) {
    for (int s = 0; s < S::kStages; s++) {
      tsl::mbar_init(full + s, 1);
      tsl::mbar_init(empty + s, tsl::kRingWarps);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  const int64_t lo = g.rows * blockIdx.x / gridDim.x, hi = g.rows * (blockIdx.x + 1) / gridDim.x;
  const int words = (int)(g.in_f >> 3), chunks = (words + kChunkWords - 1) / kChunkWords;
  const int64_t stages = (hi - lo + kGroupRows - 1) / kGroupRows * chunks;
  if (warp == tsl::kRingWarps) {
    uint64_t policy;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
    for (int64_t k = 0; k < stages; k++) {
      const int slot = (int)(k % S::kStages);
      const int64_t g0 = lo + k / chunks * kGroupRows;
      const int c = (int)(k % chunks);
      const int n = (int)min((int64_t)kGroupRows, hi - g0);
      const int cwords = min(kChunkWords, words - c * kChunkWords);
      if (lane == 0) {
        if (k >= S::kStages) tsl::mbar_wait(empty + slot, (uint32_t)((k / S::kStages) & 1) ^ 1u);
        tsl::mbar_expect_tx(full + slot, (uint32_t)(n * cwords * 4));
      }
      __syncwarp();
      for (int i = lane; i < n; i += 32) {
        const int64_t row = g0 + i;
        const tsl::Nf4GemvMatrix& M = g.m[tsl::matrix_of(g, row)];
        tsl::bulk_copy(ring + slot * S::kStageBytes + i * S::kChunkBytes, M.packed + (row - M.first_row) * words + c * kChunkWords,
                       (uint32_t)cwords * 4, full + slot, policy);
      }
    }
    return;
  }
  asm volatile("griddepcontrol.wait;" ::: "memory");
  uint32_t sum = 0;
  for (int64_t k = 0; k < stages; k++) {
    const int slot = (int)(k % S::kStages);
    tsl::mbar_wait(full + slot, (uint32_t)((k / S::kStages) & 1));
    sum += reinterpret_cast<const uint32_t*>(ring + slot * S::kStageBytes)[warp * 32 * kRows + lane];
    __syncwarp();
    if (lane == 0) tsl::mbar_arrive(empty + slot);
  }
  if (lane == 0 && lo + warp < hi) g.m[0].y[0] = __float2bfloat16((float)(sum & 0xff));
}

// Launches kern<<<grid, threads, smem, s>>>(params) with programmatic dependent launch allowed.
template <typename K, typename P>
static void launch_pdl(K kern, unsigned grid, int threads, int smem, const P& params, cudaStream_t s) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(grid);
  cfg.blockDim = dim3(threads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  CK(cudaLaunchKernelEx(&cfg, kern, params));
}

template <typename K>
static void launch_ring_kernel(K kern, int smem, const tsl::Nf4GemvGroup& g, cudaStream_t s, const char* what) {
  static int sms = 0;  // per instantiation of the caller's kernel type is enough: each caller passes one kernel
  if (!sms) {
    int dev;
    CK(cudaGetDevice(&dev));
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  }
  launch_pdl(kern, (unsigned)std::min<int64_t>(sms, g.rows), tsl::kRingThreads, smem, g, s);
  (void)what;
}

template <typename K>
static void ring_setup_once(K kern, int smem, const char* what, bool* done) {
  if (*done) return;
  *done = true;
  CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  cudaFuncAttributes fa;
  CK(cudaFuncGetAttributes(&fa, kern));
  fprintf(stderr, "%s: %d registers, %d bytes dynamic shared memory\n", what, fa.numRegs, smem);
}

// kRows 0: 2 rows per warp where each block gets at least two groups of 32 rows, else 1.
template <int kRows>
static void launch_ring_group(const Args* list, int n, cudaStream_t s) {
  const tsl::Nf4GemvGroup g = ring_group_of(list, n);
  if (kRows == 0) {
    int dev, sms;
    CK(cudaGetDevice(&dev));
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    if (g.rows >= 64LL * sms) launch_ring_group<2>(list, n, s);
    else launch_ring_group<1>(list, n, s);
    return;
  }
  constexpr int R = kRows == 0 ? 1 : kRows;
  static bool done = false;
  auto kern = tsl::nf4_gemv_ring_kernel<R, 8, true>;
  ring_setup_once(kern, tsl::RingShape<R>::kSmem, R == 1 ? "ring R=1" : "ring R=2", &done);
  launch_ring_kernel(kern, tsl::RingShape<R>::kSmem, g, s, "ring");
}
template <int kRows>
static void launch_ring(const Args& a, cudaStream_t s) { launch_ring_group<kRows>(&a, 1, s); }

template <int kRows>
static void launch_ring_probe_group(const Args* list, int n, cudaStream_t s) {
  static bool done = false;
  auto kern = ring_probe_kernel<kRows>;
  ring_setup_once(kern, tsl::RingShape<kRows>::kSmem, "ring probe", &done);
  launch_ring_kernel(kern, tsl::RingShape<kRows>::kSmem, ring_group_of(list, n), s, "probe");
}
template <int kRows>
static void launch_ring_probe(const Args& a, cudaStream_t s) { launch_ring_probe_group<kRows>(&a, 1, s); }

// The kernels of kernels-cuda/src/nf4_gemv_kernels.cuh as nf4_gemv.cu launches them: grid capped
// at the resident blocks, 2 rows per warp where that leaves at least 8 warps per SM. kShipped: one
// matrix through nf4_gemv_kernel (GemvArgs), several through nf4_gemv_group_kernel; else every
// launch through nf4_gemv_group_kernel (kGroup false for one matrix).
// smem: the dynamic shared memory per block (the table, plus x where a variant stages it).
template <typename K, typename P>
static void launch_capped(K kern, const P& params, int64_t rows, int R, const char* what, cudaStream_t s,
                          int smem = tsl::kTableBytes) {
  static std::vector<std::pair<std::pair<const void*, int>, int>> seen;  // blocks per SM of each kernel and smem
  int per_sm = 0;
  for (auto& e : seen)
    if (e.first == std::make_pair((const void*)kern, smem)) per_sm = e.second;
  int dev, sms;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  if (!per_sm) {
    CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, 256, smem));
    cudaFuncAttributes fa;
    CK(cudaFuncGetAttributes(&fa, kern));
    fprintf(stderr, "%s R=%d: %d registers, %d blocks/SM\n", what, R, fa.numRegs, per_sm);
    seen.push_back({{(const void*)kern, smem}, std::max(per_sm, 1)});
    per_sm = std::max(per_sm, 1);
  }
  const int64_t groups = (rows + 8 * R - 1) / (8 * R), slots = (int64_t)per_sm * sms, per = (groups + slots - 1) / slots;
  launch_pdl(kern, (unsigned)((groups + per - 1) / per), 256, smem, params, s);
}
template <int R, bool kShipped>
static void launch_src_r(const Args* list, int n, cudaStream_t s) {
  const tsl::Nf4GemvGroup g = ring_group_of(list, n);
  if (n == 1 && kShipped) {
    const Args& a = list[0];
    const tsl::GemvArgs ga{g.m[0].packed, a.out_f, a.in_f, a.log2_bs, a.log2_nbs, g.m[0].scales, a.x, nullptr, 0, nullptr,
                           nullptr, 0.f, 0, a.y};
    launch_capped(tsl::nf4_gemv_kernel<R, 8, true>, ga, a.out_f, R, "src nf4_gemv_kernel", s);
  } else if (n == 1) {
    launch_capped(tsl::nf4_gemv_group_kernel<R, 8, true, false>, g, g.rows, R, "src group kernel, one matrix", s);
  } else {
    launch_capped(tsl::nf4_gemv_group_kernel<R, 8, true, true>, g, g.rows, R, "src group kernel", s);
  }
}
// The matrices' rows together, and whether 2 rows per warp still leave at least 8 warps per SM.
static bool two_rows_per_warp_fit(const Args* list, int n) {
  int64_t rows = 0;
  for (int i = 0; i < n; i++) rows += list[i].out_f;
  int dev, sms;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  return rows / 2 >= 8LL * sms;
}
template <typename K>
static int blocks_per_sm_of(K kern) {
  int per_sm = 0;
  CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, tsl::kTableBytes));
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, 256, tsl::kTableBytes));
  return std::max(per_sm, 1);
}
static double fill_of(int64_t rows, int R, int per_sm, int sms) {
  const int64_t groups = (rows + 8 * R - 1) / (8 * R), slots = (int64_t)per_sm * sms;
  return (double)groups / (double)(((groups + slots - 1) / slots) * slots);
}
// Rows per warp as nf4_gemv.cu picks them: 2 unless that leaves fewer than 8 warps per SM, or its
// row groups fill the resident blocks' last round poorly (< 80%) where 1 row's fill it well (> 90%).
// Round five (H100, one run): the second rule alone (variant src_balanced then) took the layer of 4
// launches from 54.6 to 54.0 us (68.7 -> 69.5% of copy; predicted ~53.3): q/k/v's 6144 rows make
// 384 groups of 16 on 264 slots (2 rounds, 73% full) at 2 rows, 768 groups of 8 on 396 slots (97%) at 1.
template <bool kShipped>
static void launch_src_group(const Args* list, int n, cudaStream_t s) {
  int64_t rows = 0;
  for (int i = 0; i < n; i++) rows += list[i].out_f;
  int dev, sms;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const bool group = n > 1 || !kShipped;
  const int per2 = group ? blocks_per_sm_of(tsl::nf4_gemv_group_kernel<2, 8, true, true>) : blocks_per_sm_of(tsl::nf4_gemv_kernel<2, 8, true>);
  const int per1 = group ? blocks_per_sm_of(tsl::nf4_gemv_group_kernel<1, 8, true, true>) : blocks_per_sm_of(tsl::nf4_gemv_kernel<1, 8, true>);
  const bool balanced = !(fill_of(rows, 2, per2, sms) < 0.8 && fill_of(rows, 1, per1, sms) > 0.9);
  if (rows / 2 >= 8LL * sms && balanced) launch_src_r<2, kShipped>(list, n, s);
  else launch_src_r<1, kShipped>(list, n, s);
}
template <bool kShipped>
static void launch_src(const Args& a, cudaStream_t s) { launch_src_group<kShipped>(&a, 1, s); }

// Predictions (layer % of copy; v10w_autoc_pdl measured 62.5 on an H100, 47.8 on an H200): see the
// bench header for the measurements.
static const Variant kRingVariants[] = {
    // loads only through the ring: 128 KB in flight per SM -> >= 88% on gate/up/down on both cards,
    // q/o ~75, k/v ~40; layer ~80 (7 launches), ~85 grouped => H100: q/o 61%, k/v 27%, gate/up 77%,
    // down 76%; layer 54.0 us = 69.9% (7), 49.4 us = 76.3% (4) (probe_words 48.5 us = 77.9%)
    {"probe_ring", launch_ring_probe<1>, true, launch_ring_probe_group<1>},
    // Round 12 (H100, one run each; predictions first, "=>" measured, us per layer of 7 / 4 launches):
    // the portable kernel rewritten over Nf4GemvGroup (a __grid_constant__ parameter indexed per row)
    // for one and several matrices: single == v10w_autoc_pdl, grouped layer -> ~55 => 67.4 / 60.4
    // (every shape 7-16% slower; see src_shipped below for the likely cause); with an L2 bulk
    // prefetch (cp.async.bulk.prefetch.L2) of the block's first two row groups before
    // griddepcontrol.wait and of the group two strides on at each group: small shapes gain most ->
    // ~52 / ~48 => 75.2 / 70.0; of all the block's groups up front -> within 3% of that => 73.4 /
    // 69.3. Dropped; why the prefetch slows the loads that follow it was not measured.
    // As shipped: nf4_gemv_kernel for one matrix, the group kernel (fields picked by constant indices,
    // 127 registers) for q/k/v and gate/up -> 7 launches == v10w_autoc_pdl, 4 launches ~-8% =>
    // H200 (v10w_autoc_pdl 56.1 us in the same run): 62.1 / 57.0 us (k/v 4.1 us against 3.2: this
    // kernel loads the nested absmax code after griddepcontrol.wait, the bench twin before it)
    {"src_shipped", launch_src<true>, false, launch_src_group<true>},
    // the group kernel for one matrix too: == src_shipped if the parameter layout costs nothing =>
    // H200 63.0 / 58.0 us (q/o 5.4, gate/up 15.7 against 5.1, 14.6)
    {"src_group1", launch_src<false>, false, launch_src_group<false>},
    // ring, 1 row per warp: consumers issue-bound near 2.6-3 instructions per weight -> H100 layer ~70,
    // H200 ~62; grouped (4 launches) +3-5 => H100 92.0 / 84.9 us (41.0 / 44.5%)
    {"ring_r1", launch_ring<1>, false, launch_ring_group<1>},
    // 2 rows per warp (x loaded once per 2 rows, 32-row groups, 4 stages of 32 KB): big shapes +3-5
    // over ring_r1, k/v and q/o worse (fewer busy warps) => H100 84.5 / 73.0 us (gate/up 49%, down
    // 56%, k/v 5.2 us)
    {"ring_r2", launch_ring<2>, false, launch_ring_group<2>},
    // rows per warp by row count: best of both per shape => H100 87.9 / 77.9 us
    {"ring_auto", launch_ring<0>, false, launch_ring_group<0>},
};
