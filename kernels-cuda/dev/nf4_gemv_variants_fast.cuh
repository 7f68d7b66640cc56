// NF4 matrix-vector bench, part 2: the coalesced variants (v4, v5), the load-only probes, the
// shuffled-absmax variants (v9) and the table of every variant. Included by nf4_gemv_bench.cu only.
#pragma once
#include "nf4_gemv_variants.cuh"

// ---- coalesced layout: lane l reads code words l, l+32, ... of R rows (v4, v5) --------------------
// A warp's code load is 128 contiguous bytes and its x load (8 bf16 per word) 512 contiguous bytes,
// so both are the minimum number of wavefronts; x is loaded (and converted) once for R rows.
// v4 = prmt lookup (below); prediction ~3.6 instr/weight, ~2.9 of them integer (half-rate pipe on
// sm_90, 64/clk/SM) -> ~22 weights/clk/SM, no table wavefronts: ~80% of H100 copy if latency is hidden.
// v5 = 16-entry shared table; prediction: MIO-bound by the table (one wavefront per 32 weights) plus
// x/absmax wavefronts, ~16-20 weights/clk/SM (~60-75% of H100 copy). Both measured ~45% on the big
// shapes: each word still loads its own absmax codes with 64-bit index math (~2.5 instr/weight), and
// R = 2 (v5r2) is no better.
template <int R, int U, bool kPrmt>
__global__ void __launch_bounds__(256) coalesced_kernel(Args a) {
  __shared__ float code[16];
  __shared__ float ncode[256];
  ncode[threadIdx.x] = a.am.nested_code[threadIdx.x];
  if (threadIdx.x < 16) code[threadIdx.x] = kNf4Code[threadIdx.x];
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int64_t row0 = ((int64_t)blockIdx.x * 8 + (threadIdx.x >> 5)) * R;
  if (row0 >= a.out_f) return;
  const int words = (int)(a.in_f >> 3);
  const uint32_t* packed = reinterpret_cast<const uint32_t*>(a.packed);
  const uint4* x8 = reinterpret_cast<const uint4*>(a.x);
  const int shift = a.log2_bs - 3;  // word -> absmax block
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; r++) acc[r] = 0.f;
  for (int w0 = lane; w0 < words; w0 += 32 * U) {
    uint32_t cw[R][U], qv[R][U];
    float na[R][U];
#pragma unroll
    for (int r = 0; r < R; r++) {
#pragma unroll
      for (int u = 0; u < U; u++) {
        const int w = w0 + 32 * u;
        const bool ok = w < words && row0 + r < a.out_f;
        const int64_t g = (row0 + r) * words + w;
        const int64_t blk = g >> shift;
        cw[r][u] = ok ? __ldcs(packed + g) : 0u;
        qv[r][u] = ok ? __ldg(a.am.q + blk) : 0u;
        na[r][u] = ok ? __ldg(a.am.nested_absmax + (blk >> a.log2_nbs)) : 0.f;
      }
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int w = w0 + 32 * u;
      if (w >= words) continue;
      const uint4 xv = __ldg(x8 + w);
      float xf[8];
      if (!kPrmt) bf16x8_to_f32(xv, xf);
#pragma unroll
      for (int r = 0; r < R; r++) {
        const float s = kPrmt ? dot8_prmt(cw[r][u], xv, a.planes) : dot8_lds(cw[r][u], xf, code);
        acc[r] = fmaf(fmaf(ncode[qv[r][u]], na[r][u], a.am.nested_offset), s, acc[r]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; r++) {
    const float v = warp_sum(acc[r]);
    if (lane == 0 && row0 + r < a.out_f) a.y[row0 + r] = __float2bfloat16(v);
  }
}

// ---- probes: the same reads with no NF4 math (not a GEMV: excluded from the checks and the best) -
// What the load pattern alone achieves in this harness, so a variant's gap to copy bandwidth can be
// split into "the loads" and "the math". words: lane l reads 4-byte words l, l+32, ... (U in
// flight); chunks: lane l reads 16-byte chunks l, l+32, ... (U in flight).
template <int U, bool kChunks>
__global__ void __launch_bounds__(256) probe_kernel(Args a) {
  const int lane = threadIdx.x & 31;
  const int64_t row = (int64_t)blockIdx.x * 8 + (threadIdx.x >> 5);
  if (row >= a.out_f) return;
  uint32_t acc = 0;
  if (kChunks) {
    const int n = (int)(a.in_f >> 5);
    const uint4* p = reinterpret_cast<const uint4*>(a.packed) + row * n;
    for (int c0 = lane; c0 < n; c0 += 32 * U) {
      uint4 v[U];
#pragma unroll
      for (int u = 0; u < U; u++) v[u] = c0 + 32 * u < n ? __ldcs(p + c0 + 32 * u) : make_uint4(0, 0, 0, 0);
#pragma unroll
      for (int u = 0; u < U; u++) acc += v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
  } else {
    const int n = (int)(a.in_f >> 3);
    const uint32_t* p = reinterpret_cast<const uint32_t*>(a.packed) + row * n;
    for (int c0 = lane; c0 < n; c0 += 32 * U) {
      uint32_t v[U];
#pragma unroll
      for (int u = 0; u < U; u++) v[u] = c0 + 32 * u < n ? __ldcs(p + c0 + 32 * u) : 0u;
#pragma unroll
      for (int u = 0; u < U; u++) acc += v[u];
    }
  }
  const float f = warp_sum((float)(acc & 0xffff));
  if (lane == 0) a.y[row] = __float2bfloat16(f);
}

// Table lookups taking their byte offset from one prmt each (codes pre-shifted to multiples of 4).
__device__ __forceinline__ float dot8_lds_bytes(uint32_t w, const float* xf, const float* code) {
  const uint32_t lo4 = (w << 2) & 0x3c3c3c3cu, hi4 = (w >> 2) & 0x3c3c3c3cu;  // byte offsets into code[]
  const char* base = reinterpret_cast<const char*>(code);
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < 4; j++) {
    s = fmaf(*reinterpret_cast<const float*>(base + __byte_perm(hi4, 0, 0x4440 + j)), xf[2 * j], s);
    s = fmaf(*reinterpret_cast<const float*>(base + __byte_perm(lo4, 0, 0x4440 + j)), xf[2 * j + 1], s);
  }
  return s;
}

// ---- v9: v4/v5 with the absmax of an iteration computed once per block and shuffled ---------------
// ncu on a v5-like kernel (gate/up): ~9.4 instructions per weight (IPC 3.15, issue slots 70% busy),
// ~2.5 of them 64-bit index math and the 8-bit absmax / nested absmax loads of every word (8 lanes
// load the same block's). x loads are all issued before the math here. Here an iteration covers
// 32·U words of one row = 256·U weights, i.e. at most 32 absmax blocks for blocksize >= 32 (U = 4;
// U = 8 needs blocksize >= 64); lane j decodes the iteration's block j once, each word takes its
// absmax with one shuffle; per-word offsets are 32-bit. kMode: 0 shared table, 1 prmt, 2 both (even
// words through the table, odd through prmt, to split the work between the shared-memory pipe and the
// integer pipe). Prediction: ~6 instructions per weight, issue-bound near 21 weights/clk/SM -> ~65-75%
// of H100 copy. Measured: 7.9 instructions per weight, ~50% on the big shapes whatever the mode.
// __launch_bounds__(256, 1) rather than (256): with the explicit minimum ptxas keeps the U words'
// loads ahead of the math (56-80 registers instead of 32-40); layer time 2% (v9m_u8) to 30% (v9p) lower.
template <int U, int kMode>
__global__ void __launch_bounds__(256, 1) shuffled_kernel(Args a) {
  __shared__ float code[16];
  __shared__ float ncode[256];
  ncode[threadIdx.x] = a.am.nested_code[threadIdx.x];
  if (threadIdx.x < 16) code[threadIdx.x] = kNf4Code[threadIdx.x];
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int64_t row = (int64_t)blockIdx.x * 8 + (threadIdx.x >> 5);
  if (row >= a.out_f) return;
  const int words = (int)(a.in_f >> 3);
  const uint32_t* rowp = reinterpret_cast<const uint32_t*>(a.packed) + row * words;
  const uint4* x8 = reinterpret_cast<const uint4*>(a.x);
  const int64_t e0 = row * a.in_f;  // element index of the row's first weight
  const int bs_mask = (1 << a.log2_bs) - 1;
  float acc = 0.f;
  for (int base = 0; base < words; base += 32 * U) {
    uint32_t cw[U];
    uint4 xv[U];
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int w = base + lane + 32 * u;
      cw[u] = w < words ? __ldcs(rowp + w) : 0u;
      xv[u] = __ldg(x8 + (w < words ? w : 0));
    }
    const int64_t start = e0 + (int64_t)base * 8;
    const int64_t first = start >> a.log2_bs;
    const int64_t last = (e0 + (int64_t)min(base + 32 * U, words) * 8 - 1) >> a.log2_bs;
    const int64_t b = first + lane;
    const uint32_t qb = b <= last ? __ldg(a.am.q + b) : 0u;
    const float na = b <= last ? __ldg(a.am.nested_absmax + (b >> a.log2_nbs)) : 0.f;
    const float mine = fmaf(ncode[qb], na, a.am.nested_offset);
    const int t = (int)(start & bs_mask) + lane * 8;  // weight offset from the first block's start
#pragma unroll
    for (int u = 0; u < U; u++) {
      const bool ok = base + lane + 32 * u < words;
      const float scale = __shfl_sync(0xffffffffu, mine, (t + 256 * u) >> a.log2_bs);
      const bool prmt_word = kMode == 1 || (kMode == 2 && (u & 1));
      float s;
      if (prmt_word) {
        s = dot8_prmt(cw[u], xv[u], a.planes);
      } else {
        float xf[8];
        bf16x8_to_f32(xv[u], xf);
        s = dot8_lds_bytes(cw[u], xf, code);
      }
      acc = fmaf(ok ? scale : 0.f, s, acc);
    }
  }
  acc = warp_sum(acc);
  if (lane == 0) a.y[row] = __float2bfloat16(acc);
}

struct Variant {
  const char* name;
  void (*launch)(const Args&, cudaStream_t);
  bool probe;  // a load-pattern probe, not a GEMV
  // Optional: one launch for several matrices sharing x (the layer is then also timed as 4 launches).
  void (*group)(const Args* list, int n, cudaStream_t) = nullptr;
};
static unsigned grid_for(int64_t rows, int rows_per_block) { return (unsigned)((rows + rows_per_block - 1) / rows_per_block); }
template <int R, int U, bool P>
static void launch_coalesced(const Args& a, cudaStream_t s) {
  coalesced_kernel<R, U, P><<<grid_for(a.out_f, 8 * R), 256, 0, s>>>(a);
}
template <int U, int M>
static void launch_shuffled(const Args& a, cudaStream_t s) {
  shuffled_kernel<U, M><<<grid_for(a.out_f, 8), 256, 0, s>>>(a);
}
static const Variant kVariants[] = {
    {"v1", [](const Args& a, cudaStream_t s) { v1_kernel<<<grid_for(a.out_f, 8), 256, 0, s>>>(a); }},
    {"v3", [](const Args& a, cudaStream_t s) { v3_kernel<4><<<grid_for(a.out_f, 8), 256, 0, s>>>(a); }},
    {"v4", launch_coalesced<1, 4, true>},
    {"v5", launch_coalesced<1, 4, false>},
    {"v5r2", launch_coalesced<2, 4, false>},
    {"v9l", launch_shuffled<4, 0>},
    {"v9p", launch_shuffled<4, 1>},
    {"v9m", launch_shuffled<4, 2>},
    {"v9p_u8", launch_shuffled<8, 1>},
    {"v9m_u8", launch_shuffled<8, 2>},  // the kernel of kernels-cuda/src/nf4_gemv.cu before v10w_auto_pdl
    {"probe_words", [](const Args& a, cudaStream_t s) { probe_kernel<4, false><<<grid_for(a.out_f, 8), 256, 0, s>>>(a); }, true},
    {"probe_chunks", [](const Args& a, cudaStream_t s) { probe_kernel<4, true><<<grid_for(a.out_f, 8), 256, 0, s>>>(a); }, true},
};

