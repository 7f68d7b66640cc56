// NF4 matrix-vector bench, part 6: the streaming kernel of nf4_gemv_stream.cuh in both forms (code
// words and absmax copied into shared memory kStages-1 tasks ahead by cp.async, one block of 16 warps
// per SM; lost, measurements there), for one matrix and for the grouped launch. Included by
// nf4_gemv_bench.cu only.
#pragma once
#include "nf4_gemv_variants_lanes.cuh"
#include "nf4_gemv_stream.cuh"

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
    {"lanes_r1_s4", launch_lanes<1, 4>, false, launch_lanes_group<1, 4>},
    {"lanes_r1_s6", launch_lanes<1, 6>, false, launch_lanes_group<1, 6>},
    {"lanes_r2_s3", launch_lanes<2, 3>, false, launch_lanes_group<2, 3>},
};
