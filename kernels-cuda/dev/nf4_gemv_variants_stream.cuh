// NF4 matrix-vector bench, part 6: round seven's kernels, all lost on an H200 (measurements in their
// headers): the streaming kernel of nf4_gemv_stream.cuh in both forms (code words and absmax copied
// into shared memory kStages-1 tasks ahead by cp.async), the wide kernels of nf4_gemv_wide.cuh (one
// block of 16 warps, the table at a 64 KB boundary; prefetching, x in shared memory, register rings),
// and the shipped kernels at 4 rows per warp; for one matrix and for the grouped launch. Included by
// nf4_gemv_bench.cu only.
#pragma once
#include "nf4_gemv_variants_lanes.cuh"
#include "nf4_gemv_stream.cuh"
#include "nf4_gemv_wide.cuh"

// Grid: one block per SM at most, evened so every block takes the same number of row groups.
template <int R, int S, bool kLanes>
static void launch_stream_form(const Args* list, int n, cudaStream_t s) {
  const tsl::Nf4GemvGroup g = ring_group_of(list, n);
  const int smem = tsl::StreamShape<R, S>::kSmem + (kLanes ? (int)g.in_f * 2 : 0);
  auto kern = n > 1 ? tsl::nf4_gemv_stream_kernel<R, S, true, true, kLanes> : tsl::nf4_gemv_stream_kernel<R, S, true, false, kLanes>;
  static int set[2] = {0, 0};  // the dynamic shared memory opted in so far, per form
  if (set[n > 1] < smem) {
    set[n > 1] = smem;
    CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    cudaFuncAttributes fa;
    CK(cudaFuncGetAttributes(&fa, kern));
    fprintf(stderr, "%s R=%d S=%d %s: %d registers, %d local bytes, %d bytes shared\n", kLanes ? "lanes" : "stream", R, S,
            n > 1 ? "group" : "single", fa.numRegs, (int)fa.localSizeBytes, smem);
  }
  int dev, sms;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const int64_t groups = (g.rows + tsl::kStreamWarps * R - 1) / (tsl::kStreamWarps * R), per = (groups + sms - 1) / sms;
  launch_pdl(kern, (unsigned)((groups + per - 1) / per), tsl::kStreamWarps * 32, smem, g, s);
}
template <int R, int S>
static void launch_stream_group(const Args* list, int n, cudaStream_t s) { launch_stream_form<R, S, false>(list, n, s); }
template <int R, int S>
static void launch_stream(const Args& a, cudaStream_t s) { launch_stream_form<R, S, false>(&a, 1, s); }
template <int R, int S>
static void launch_lanes_group(const Args* list, int n, cudaStream_t s) { launch_stream_form<R, S, true>(list, n, s); }
template <int R, int S>
static void launch_lanes(const Args& a, cudaStream_t s) { launch_stream_form<R, S, true>(&a, 1, s); }

// Rows per warp by the shipped rule over groups of `warps` warps: 2 unless 2 rows' groups fill the
// last round of one-block-per-SM slots under 80% where 1 row's fill it over 90%.
static int wide_rows_per_warp(int64_t rows, int warps, int sms) {
  const auto fill = [&](int r) {
    const int64_t groups = (rows + warps * r - 1) / (warps * r);
    return (double)groups / (double)(((groups + sms - 1) / sms) * sms);
  };
  return fill(2) < 0.8 && fill(1) > 0.9 ? 1 : 2;
}

// Opts a wide kernel into kWideSmem of dynamic shared memory once and says its registers.
template <typename K>
static void wide_setup_once(K kern, const char* what) {
  static std::vector<const void*> set;
  if (std::find(set.begin(), set.end(), (const void*)kern) != set.end()) return;
  set.push_back((const void*)kern);
  CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, tsl::kWideSmem));
  cudaFuncAttributes fa;
  CK(cudaFuncGetAttributes(&fa, kern));
  fprintf(stderr, "%s: %d registers, %d local bytes\n", what, fa.numRegs, (int)fa.localSizeBytes);
}

// The wide kernel: grid at most one block per SM, evened; R 0: 2 rows per warp unless 2 rows' groups
// fill the last round under 80% where 1 row's fill it over 90% (the shipped rule, 16-warp groups).
template <int R, bool kPrefetch = false, bool kXs = false, int kW = tsl::kWideWarps>
static void launch_wide_group(const Args* list, int n, cudaStream_t s) {
  const tsl::Nf4GemvGroup g = ring_group_of(list, n);
  int dev, sms;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  if (R == 0) {
    if (wide_rows_per_warp(g.rows, kW, sms) == 1) launch_wide_group<1, kPrefetch, kXs, kW>(list, n, s);
    else launch_wide_group<2, kPrefetch, kXs, kW>(list, n, s);
    return;
  }
  constexpr int Rr = R == 0 ? 1 : R;
  auto kern = n > 1 ? tsl::nf4_gemv_wide_kernel<Rr, true, true, kPrefetch, kXs, kW>
                     : tsl::nf4_gemv_wide_kernel<Rr, true, false, kPrefetch, kXs, kW>;
  wide_setup_once(kern, n > 1 ? "wide, grouped" : "wide");
  const int64_t groups = (g.rows + kW * Rr - 1) / (kW * Rr), per = (groups + sms - 1) / sms;
  launch_pdl(kern, (unsigned)((groups + per - 1) / per), kW * 32, tsl::kWideSmem, g, s);
}
template <int R, bool kPrefetch = false, bool kXs = false, int kW = tsl::kWideWarps>
static void launch_wide(const Args& a, cudaStream_t s) { launch_wide_group<R, kPrefetch, kXs, kW>(&a, 1, s); }

// Probe (timed only as a probe): the shipped kernels reading the first weights they were given for
// a shape on every call, so after the first call the weights come from L2 (gate/up and down are
// 29 MB each, under the 50 MB L2): the loop's time with its memory latency cut to L2's.
static void launch_src_l2_group(const Args* list, int n, cudaStream_t s) {
  static std::vector<std::pair<int, Args>> first;  // (position in the group, the first call's operands)
  std::vector<Args> use(list, list + n);
  for (int i = 0; i < n; i++) {
    bool found = false;
    for (const auto& f : first)
      if (f.first == i && f.second.out_f == list[i].out_f && f.second.in_f == list[i].in_f) {
        use[i].packed = f.second.packed;
        use[i].am = f.second.am;
        found = true;
      }
    if (!found) first.push_back({i, list[i]});
  }
  launch_src_group<true>(use.data(), n, s);
}
static void launch_src_l2(const Args& a, cudaStream_t s) { launch_src_l2_group(&a, 1, s); }

// The wide lanes kernel: rows per warp by the shipped rule over 16-warp groups.
template <int R>
static void launch_wide_lanes_group(const Args* list, int n, cudaStream_t s) {
  const tsl::Nf4GemvGroup g = ring_group_of(list, n);
  int dev, sms;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  if (R == 0) {
    if (wide_rows_per_warp(g.rows, tsl::kWideWarps, sms) == 1) launch_wide_lanes_group<1>(list, n, s);
    else launch_wide_lanes_group<2>(list, n, s);
    return;
  }
  constexpr int Rr = R == 0 ? 1 : R;
  auto kern = n > 1 ? tsl::nf4_gemv_wide_lanes_kernel<Rr, true> : tsl::nf4_gemv_wide_lanes_kernel<Rr, false>;
  wide_setup_once(kern, n > 1 ? "wide lanes, grouped" : "wide lanes");
  if (g.in_f * 2 > 56 * 1024 || g.in_f % 2048) {
    fprintf(stderr, "wide_lanes: in_f %lld not supported\n", (long long)g.in_f);
    exit(1);
  }
  const int64_t groups = (g.rows + tsl::kWideWarps * Rr - 1) / (tsl::kWideWarps * Rr), per = (groups + sms - 1) / sms;
  launch_pdl(kern, (unsigned)((groups + per - 1) / per), tsl::kWideWarps * 32, tsl::kWideSmem, g, s);
}
template <int R>
static void launch_wide_lanes(const Args& a, cudaStream_t s) { launch_wide_lanes_group<R>(&a, 1, s); }

// The register-ring wide kernel (1 row per warp, kDepth buffers).
template <int kDepth>
static void launch_wide_ring_group(const Args* list, int n, cudaStream_t s) {
  const tsl::Nf4GemvGroup g = ring_group_of(list, n);
  const bool whole = g.in_f % 2048 == 0;
  auto kern = n > 1 ? (whole ? tsl::nf4_gemv_wide_ring_kernel<kDepth, true, true, true> : tsl::nf4_gemv_wide_ring_kernel<kDepth, true, true, false>)
                    : (whole ? tsl::nf4_gemv_wide_ring_kernel<kDepth, true, false, true> : tsl::nf4_gemv_wide_ring_kernel<kDepth, true, false, false>);
  wide_setup_once(kern, n > 1 ? "wide ring, grouped" : "wide ring");
  int dev, sms;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const int64_t groups = (g.rows + tsl::kWideWarps - 1) / tsl::kWideWarps, per = (groups + sms - 1) / sms;
  launch_pdl(kern, (unsigned)((groups + per - 1) / per), tsl::kWideWarps * 32, tsl::kWideSmem, g, s);
}
template <int kDepth>
static void launch_wide_ring(const Args& a, cudaStream_t s) { launch_wide_ring_group<kDepth>(&a, 1, s); }

// (Round seven also timed the shipped kernels at 4 rows per warp and 4 words per lane, x loaded once
// per 4 rows, launch bounds of 2 blocks: H200 q/o 7.4, k/v 7.0, gate/up 14.5, down 22.0 us, layer
// 75.5 us; down's 128 groups of 32 rows leave half the block slots empty. Removed with the kernels'
// 1- and 2-row finishing lanes, which that form does not have.)

// 2 rows per warp where each SM gets at least 4 row groups of 32, else 1 row.
static void launch_stream_auto_group(const Args* list, int n, cudaStream_t s) {
  int64_t rows = 0;
  for (int i = 0; i < n; i++) rows += list[i].out_f;
  if (rows >= 32LL * 4 * 132) launch_stream_group<2, 4>(list, n, s);
  else launch_stream_group<1, 6>(list, n, s);
}
static void launch_stream_auto(const Args& a, cudaStream_t s) { launch_stream_auto_group(&a, 1, s); }

// Predictions (H200, copy 4.2 TB/s; src_shipped there: q/o 4.53 us, k/v 2.95, gate/up 14.0, down
// 11.9, layer of 4 launches 50.6 us = 52.9%; its loads alone 84% on gate/up): with the loads no
// longer waiting on the math, the big shapes run near the loads-only rate (gate/up ~9.5 us, ~75%),
// and the first kStages-1 tasks' copies start before the previous kernel ends: layer ~40 us (~67%).
// Measured (H200, final forms, us for q/o, k/v, gate/up, down, layer of 4 launches): stream_r1_s4
// 6.4 / 3.3 / 17.2 / 16.0 / 71.8; stream_r1_s6 6.7 / 3.3 / 17.5 / 16.4 / 73.8; stream_r1_s8 6.8 / 3.2 /
// 18.2 / 17.3 / 74.6; stream_r2_s3 5.8 / 4.1 / 15.8 / 13.6 / 61.3; stream_r2_s4 6.0 / 4.3 / 15.9 / 14.1 /
// 62.2; lanes_r1_s4 6.6 / 3.1 / 16.7 / 15.3 / 64.9; lanes_r1_s6 6.3 / 3.2 / 15.9 / 15.2 / 64.6;
// lanes_r2_s3 5.9 / 4.1 / 14.8 / 13.3 / 58.2 (src_shipped 4.5 / 2.9 / 14.0 / 11.8 / 50.5).
static const Variant kStreamVariants[] = {
    {"stream_r1_s4", launch_stream<1, 4>, false, launch_stream_group<1, 4>},
    {"stream_r1_s6", launch_stream<1, 6>, false, launch_stream_group<1, 6>},
    {"stream_r1_s8", launch_stream<1, 8>, false, launch_stream_group<1, 8>},
    {"stream_r2_s3", launch_stream<2, 3>, false, launch_stream_group<2, 3>},
    {"stream_r2_s4", launch_stream<2, 4>, false, launch_stream_group<2, 4>},
    {"stream_auto", launch_stream_auto, false, launch_stream_auto_group},
    {"wide_r1", launch_wide<1>, false, launch_wide_group<1>},
    {"wide_r2", launch_wide<2>, false, launch_wide_group<2>},
    {"wide_auto", launch_wide<0>, false, launch_wide_group<0>},
    {"wide_r1_w20", launch_wide<1, false, false, 20>, false, launch_wide_group<1, false, false, 20>},
    {"wide_r1_w24", launch_wide<1, false, false, 24>, false, launch_wide_group<1, false, false, 24>},
    {"wide_r1_w32", launch_wide<1, false, false, 32>, false, launch_wide_group<1, false, false, 32>},
    {"wide_lanes", launch_wide_lanes<0>, false, launch_wide_lanes_group<0>},
    {"wide_lanes_r2", launch_wide_lanes<2>, false, launch_wide_lanes_group<2>},
    {"probe_src_l2", launch_src_l2, true, launch_src_l2_group},
    {"wide_ring3", launch_wide_ring<3>, false, launch_wide_ring_group<3>},
    {"wide_ring4", launch_wide_ring<4>, false, launch_wide_ring_group<4>},
    {"wide_db", launch_wide_ring<2>, false, launch_wide_ring_group<2>},
    {"wide_auto_xs", launch_wide<0, false, true>, false, launch_wide_group<0, false, true>},
    {"wide_r1_pf", launch_wide<1, true>, false, launch_wide_group<1, true>},
    {"wide_r2_pf", launch_wide<2, true>, false, launch_wide_group<2, true>},
    {"wide_auto_pf", launch_wide<0, true>, false, launch_wide_group<0, true>},
    {"lanes_r1_s4", launch_lanes<1, 4>, false, launch_lanes_group<1, 4>},
    {"lanes_r1_s6", launch_lanes<1, 6>, false, launch_lanes_group<1, 6>},
    {"lanes_r2_s3", launch_lanes<2, 3>, false, launch_lanes_group<2, 3>},
};
