// Batch-1 decode's matrix-vector product straight from 4-bit NF4 weights (bitsandbytes layout,
// QLoRA, Dettmers et al. 2023): y = W x with W never dequantized to memory, so each weight byte is
// read once and decode runs at the weight stream's bandwidth (the 16-bit alternative moves 4× the
// bytes). The optional bias and LoRA term (scale · (x·aᵀ)·bᵀ, Hu et al. 2021) are added in the
// epilogue.
// Work split: variant "v10w_autoc_pdl" of kernels-cuda/dev/nf4_gemv_bench.cu, which holds the earlier
// kernels (v1, v9m_u8) and the variants that lost, with predictions and measurements. A warp computes
// 2 adjacent rows (1 when that leaves fewer than 8 warps per SM) over the same x; lane l reads 4-byte
// code words l, l+32, ... (8 weights each), so a warp's code load is 128 contiguous bytes and its x
// load (8 bf16 per word) 512 contiguous bytes, shared by both rows. An iteration covers 32·kWords
// words; lane j decodes the absmax of the iteration's j-th block once (block indices by shifts: block
// sizes must be powers of two, as bitsandbytes' are) and each word takes its absmax with one shuffle.
// Each code byte (two weights) is looked up once in a 256-entry table of bf16 pairs in shared memory,
// replicated so that lane l always reads bank l (one wavefront per warp lookup whatever the codes);
// one PRMT makes the entry's offset (code byte in byte 1, 4·lane in byte 0: 256-byte rows, half used)
// and one HFMA2 multiplies the pair with x's pair: ~3.3 issued instructions per weight in the SASS of
// the 2-row main loop (427 per 128 weights on sm_90) against ~6.3 for v9m_u8 (a 16-entry table and
// prmt lookups). The grid is capped at the blocks resident at once (occupancy x SMs) and blocks
// stride over groups of 8 warps x rows, so each block fills its 64 KB table once; of the 8B shapes
// only gate/up (896 groups of 16 rows on 264 slots of an H100) has more groups than slots. Launched
// with programmatic dependent launch on sm_90+: the table fill overlaps the previous kernel's tail,
// and the kernel waits for that kernel (griddepcontrol.wait) before its first global read.
// Measured with GPU time (kernels-cuda/dev/nf4_gemv_bench.cu: a CUDA graph of calls over more weight
// copies than L2 holds), % of the card's copy rate, one 8B layer = 7 projections back to back:
//   H100 80GB HBM3 (copy 2.98 TB/s, one run): the bench's v10w_autoc_pdl (this grid and loop, no
//   bias/LoRA epilogue) q/o 55, k/v 23, gate/up 67, down 77, layer 60.4 us = 62.5%; the uncapped grid
//   (v10w_auto_pdl, this file's previous form) 65.4 us = 57.7% (gate/up 57), v9m_u8 83.6 us = 45.2%,
//   the loads alone (probe_words) 48.4 us = 78.0%.
//   H200 (copy 4.2 TB/s, one run): v10w_autoc_pdl layer 56.1 us = 47.8%, v10w_auto_pdl 61.0-61.1 us
//   (two runs), v9m_u8 82.0-82.9 us.
// This file's kernel itself through the C ABI (bench/infer/nf4_gemv_bench.py, one shape repeated,
// same H100, two runs alternating with the previous form): gate/up 15.5-15.6 us = 64.6-64.8% of copy
// (previous 17.7-17.9 us), q/o 5.9 us = 48.4-48.9% (previous 5.8 us), down 13.9 us = 72.2-72.5%
// (previous 13.6-13.7 us); its k/v and layer times were not measured. Where the grid is unchanged
// (q/o, down) the 2-row loop costs ~1-2%: 123-126 registers under the __launch_bounds__ cap and 427
// instead of 401 instructions per iteration. The 70% target on the layer is NOT met (the loads alone
// reach 78%): with 16 warps per SM (64 KB table, ~125 registers) latency, not issue, bounds it.
#include <string.h>

#include "common.cuh"
#include "nf4_code.cuh"

namespace tsl {
namespace {

constexpr int kWarps = 8;                  // per block
constexpr int kTableBytes = 256 * 256;     // 256 entries, one 256-byte row each (32 lanes x 4 bytes used)

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

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
  return r;
}

// Entry v (a code byte: even weight in the high nibble) holds bf16(code[v >> 4]) in its low half,
// where x's even element sits, and bf16(code[v & 15]) in its high half; lane l's copy at byte
// v·256 + 4l. Codes held in bf16: one extra rounding of 2^-9 relative against bf16(code · absmax).
__device__ __forceinline__ void fill_pair_table(char* table) {
  for (int i = threadIdx.x; i < 256 * 8; i += blockDim.x) {  // (entry, 16-byte group of 4 lanes)
    const int v = i >> 3;
    const uint32_t p = (uint32_t)__bfloat16_as_ushort(__float2bfloat16(kNf4Code[v >> 4])) |
                       ((uint32_t)__bfloat16_as_ushort(__float2bfloat16(kNf4Code[v & 15])) << 16);
    *reinterpret_cast<uint4*>(table + v * 256 + (i & 7) * 16) = make_uint4(p, p, p, p);
  }
}

// Σ over the 8 weights of one code word against 8 bf16 of x: 4 lookups (the offset is one PRMT:
// bytes 4·lane, code byte j, 0, 0), 4 HFMA2 accumulating 4 deep in bf16x2, then the halves in f32.
__device__ __forceinline__ float dot8_pairs(uint32_t w, const uint4 xv, const char* table, uint32_t lane4) {
  const uint32_t xw[4] = {xv.x, xv.y, xv.z, xv.w};
  __nv_bfloat162 acc;
#pragma unroll
  for (int j = 0; j < 4; j++) {
    const uint32_t p = *reinterpret_cast<const uint32_t*>(table + prmt(w, lane4, 0x5504u + 0x10u * j));
    const __nv_bfloat162 pb = *reinterpret_cast<const __nv_bfloat162*>(&p);
    const __nv_bfloat162 xb = *reinterpret_cast<const __nv_bfloat162*>(&xw[j]);
    acc = j == 0 ? __hmul2(pb, xb) : __hfma2(pb, xb, acc);
  }
  const uint32_t bits = *reinterpret_cast<const uint32_t*>(&acc);
  return __uint_as_float(bits << 16) + __uint_as_float(bits & 0xffff0000u);
}

// One iteration of 32·kWords words for kRows rows; kFull: every word in range (no per-word checks).
// 32·kWords words = 256·kWords weights must span at most 32 absmax blocks (one per lane), so
// kWords = 8 needs blocksize >= 64 and kWords = 4 blocksize >= 32.
template <int kRows, int kWords, bool kDoubleQuant, bool kFull>
__device__ __forceinline__ void gemv_iteration(const GemvArgs& a, const uint32_t* const* rowp, const int64_t* e0, int base,
                                               int words, const float* nested_code, const char* table, float* acc) {
  const int lane = threadIdx.x & 31;
  const uint4* x8 = reinterpret_cast<const uint4*>(a.x);
  uint32_t cw[kRows][kWords];
  uint4 xv[kWords];
  const uint4* xp = x8 + base + lane;  // one address per row and x, the words at immediate offsets
  const uint32_t* cp[kRows];
#pragma unroll
  for (int r = 0; r < kRows; r++) cp[r] = rowp[r] + base + lane;
#pragma unroll
  for (int u = 0; u < kWords; u++) {
    const bool ok = kFull || base + lane + 32 * u < words;
#pragma unroll
    for (int r = 0; r < kRows; r++) cw[r][u] = ok ? __ldcs(cp[r] + 32 * u) : 0u;  // streamed once: do not keep in L2
    xv[u] = __ldg(ok ? xp + 32 * u : x8);
  }
  const int end = kFull ? base + 32 * kWords : min(base + 32 * kWords, words);
  float mine[kRows];
  int t[kRows];
#pragma unroll
  for (int r = 0; r < kRows; r++) {
    const int64_t start = e0[r] + (int64_t)base * 8;
    const int64_t b = (start >> a.log2_blocksize) + lane;
    mine[r] = 0.f;
    if (b <= (e0[r] + (int64_t)end * 8 - 1) >> a.log2_blocksize) {
      mine[r] = kDoubleQuant ? fmaf(nested_code[__ldg(a.scales.q + b)],
                                    __ldg(a.scales.nested_absmax + (b >> a.log2_nested_blocksize)), a.scales.nested_offset)
                             : __ldg(a.scales.f32 + b);
    }
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

// An explicit minimum in __launch_bounds__ makes ptxas keep all kWords loads ahead of the math
// (more registers, more bytes in flight); with the bare form it sinks them below earlier words'
// math (bench: 2-30% slower per layer depending on the variant). 1 block for 1 row per warp (79-85
// registers: 3 blocks fit anyway); 2 for 2 rows, whose grid-stride loop otherwise takes 142-147
// registers (1 block of 8 warps per SM) where 2 blocks need at most 128 (sm_90: 123-126, no spills,
// the 28 loads of an iteration still issued before its first table lookup).
template <int kRows, int kWords, bool kDoubleQuant>
__global__ void __launch_bounds__(kWarps * 32, kRows == 2 ? 2 : 1) nf4_gemv_kernel(const GemvArgs a) {
  extern __shared__ __align__(16) char table[];
  __shared__ float nested_code[256];
  fill_pair_table(table);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // Programmatic dependent launch: let the next such grid start its table fill, then wait for the
  // previous grid (x, the absmax and the LoRA term may come from it) before any global read.
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  if (kDoubleQuant) nested_code[threadIdx.x] = a.scales.nested_code[threadIdx.x];
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int words = (int)(a.in_f >> 3);
  // The grid is capped at the blocks that fit at once (launch_gemv): each block filled its table
  // once above and now takes groups of kWarps·kRows rows, grid-strided.
  const int64_t groups = (a.out_f + kWarps * kRows - 1) / (kWarps * kRows);
  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {
    const int64_t row0 = (g * kWarps + (threadIdx.x >> 5)) * kRows;
    if (row0 >= a.out_f) break;  // warp-uniform, and later groups only lie further on
    const uint32_t* rowp[kRows];
    int64_t e0[kRows];  // element index of each row's first weight
    float acc[kRows];
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const int64_t row = min(row0 + r, a.out_f - 1);  // a missing last row recomputes the one before
      rowp[r] = a.packed + row * words;
      e0[r] = row * a.in_f;
      acc[r] = 0.f;
    }
    int base = 0;
    for (; base + 32 * kWords <= words; base += 32 * kWords)
      gemv_iteration<kRows, kWords, kDoubleQuant, true>(a, rowp, e0, base, words, nested_code, table, acc);
    if (base < words) gemv_iteration<kRows, kWords, kDoubleQuant, false>(a, rowp, e0, base, words, nested_code, table, acc);
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      float v = warp_sum(acc[r]);
      const int64_t row = row0 + r;
      if (lane == 0 && row < a.out_f) {
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
}

// xa[j] = Σ_i x[i] a[j, i]: one block per LoRA rank row.
__global__ void lora_down_kernel(const __nv_bfloat16* __restrict__ x, const float* __restrict__ a, int64_t in_f,
                                 float* __restrict__ xa) {
  __shared__ float red[32];
  float s = 0.f;
  for (int64_t i = threadIdx.x; i < in_f; i += blockDim.x) s += __bfloat162float(x[i]) * a[blockIdx.x * in_f + i];
  s = block_sum(s, red);
  if (threadIdx.x == 0) xa[blockIdx.x] = s;
}

bool is_pow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

// Once per instantiation: the 64 KB of dynamic shared memory opted in, the blocks of it that fit on
// an SM at once (registers and shared memory; the one GPU a process drives), and whether the code
// that runs was built for sm_90+ (so it holds the griddepcontrol.wait; PTX of an older target
// JIT-compiled on a newer GPU does not, and must not get the programmatic-dependent-launch attribute).
struct KernelSetup {
  cudaError_t error;
  int blocks_per_sm;
  bool dependent_launch;
};

template <int kRows, int kWords, bool kDoubleQuant>
KernelSetup setup_kernel() {
  auto kernel = nf4_gemv_kernel<kRows, kWords, kDoubleQuant>;
  KernelSetup s{cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kTableBytes), 0, false};
  if (s.error == cudaSuccess)
    s.error = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&s.blocks_per_sm, kernel, kWarps * 32, kTableBytes);
  cudaFuncAttributes fa;
  if (s.error == cudaSuccess) s.error = cudaFuncGetAttributes(&fa, kernel);
  s.dependent_launch = s.error == cudaSuccess && fa.binaryVersion >= 90;
  return s;
}

// Grid: at most the resident blocks (blocks_per_sm x SMs), evened so that every block takes the
// same number of row groups (the last possibly one fewer), so no block waits for a free slot and
// refills its table.
template <int kRows, int kWords, bool kDoubleQuant>
cudaError_t launch_gemv(const GemvArgs& args, int sms, cudaStream_t st) {
  static const KernelSetup setup = setup_kernel<kRows, kWords, kDoubleQuant>();
  if (setup.error != cudaSuccess) return setup.error;
  const int64_t groups = (args.out_f + kWarps * kRows - 1) / (kWarps * kRows);
  const int64_t slots = (int64_t)(setup.blocks_per_sm > 0 ? setup.blocks_per_sm : 1) * sms;
  const int64_t per_block = (groups + slots - 1) / slots;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3((unsigned)((groups + per_block - 1) / per_block));
  cfg.blockDim = dim3(kWarps * 32);
  cfg.dynamicSmemBytes = kTableBytes;
  cfg.stream = st;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = setup.dependent_launch ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, nf4_gemv_kernel<kRows, kWords, kDoubleQuant>, args);
}

template <int kWords, bool kDoubleQuant>
cudaError_t launch_gemv_rows(const GemvArgs& args, int sms, cudaStream_t st) {
  // 2 rows per warp halves the x loads and the table fill per row, but halves the warps: keep 1 row
  // where 2 would leave fewer than kWarps warps per SM (k/v's 1024 rows on 132 SMs).
  if (args.out_f / 2 >= (int64_t)kWarps * sms) return launch_gemv<2, kWords, kDoubleQuant>(args, sms, st);
  return launch_gemv<1, kWords, kDoubleQuant>(args, sms, st);
}

int log2_of(int64_t v) {
  int l = 0;
  while ((int64_t(1) << l) < v) l++;
  return l;
}

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" tsl_status tsl_nf4_gemv(const uint8_t* d_packed, int64_t out_f, int64_t in_f, int32_t blocksize,
                                   const float* d_absmax_f32, const uint8_t* d_absmax_q, const float* d_nested_absmax,
                                   const float* d_nested_code, int32_t nested_blocksize, float nested_offset,
                                   const void* d_x, const void* d_bias, int32_t bias_dtype, const float* d_a,
                                   const float* d_b, float scale, int32_t r, void* d_y) {
  const char* op = "tsl_nf4_gemv";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, out_f > 0 && in_f > 0 && in_f % 64 == 0, "in_f must be a positive multiple of 64, got %lld", (long long)in_f);
  TSL_REQUIRE(op, in_f / 8 <= INT32_MAX, "in_f must be below 2^34, got %lld", (long long)in_f);
  TSL_REQUIRE(op, blocksize >= 32 && is_pow2(blocksize),
              "blocksize must be a power of two of at least 32 (bitsandbytes uses 64), got %d", blocksize);
  TSL_REQUIRE(op, d_absmax_q ? (d_nested_absmax && d_nested_code && nested_blocksize > 0) : d_absmax_f32 != nullptr,
              "absmax: give f32 absmax, or the double-quantized absmax with nested absmax, code and blocksize");
  TSL_REQUIRE(op, !d_absmax_q || is_pow2(nested_blocksize),
              "nested_blocksize must be a power of two (bitsandbytes uses 256), got %d", nested_blocksize);
  TSL_REQUIRE(op, (uintptr_t)d_packed % 16 == 0 && (uintptr_t)d_x % 16 == 0, "packed weights and x must be 16-byte aligned");
  TSL_REQUIRE(op, !d_bias || is_float_dtype(bias_dtype), "bias dtype must be f32, bf16 or f16");
  TSL_REQUIRE(op, !d_a || (d_b && r > 0), "LoRA needs both a and b and r > 0");
  float* xa = nullptr;
  if (d_a) {
    TSL_TRY(scratch_alloc(op, (uint64_t)r * 4, reinterpret_cast<void**>(&xa)));
    lora_down_kernel<<<r, 256, 0, compute_stream()>>>(static_cast<const __nv_bfloat16*>(d_x), d_a, in_f, xa);
  }
  const GemvArgs args{reinterpret_cast<const uint32_t*>(d_packed),
                      out_f,
                      in_f,
                      log2_of(blocksize),
                      d_absmax_q ? log2_of(nested_blocksize) : 0,
                      Nf4Absmax{d_absmax_f32, d_absmax_q, d_nested_absmax, d_nested_code, nested_blocksize, nested_offset},
                      static_cast<const __nv_bfloat16*>(d_x),
                      d_bias,
                      bias_dtype,
                      xa,
                      d_b,
                      scale,
                      r,
                      static_cast<__nv_bfloat16*>(d_y)};
  int dev = 0, sms = 1;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  cudaStream_t st = compute_stream();
  cudaError_t e;
  if (blocksize >= 64) {
    e = d_absmax_q ? launch_gemv_rows<8, true>(args, sms, st) : launch_gemv_rows<8, false>(args, sms, st);
  } else {
    e = d_absmax_q ? launch_gemv_rows<4, true>(args, sms, st) : launch_gemv_rows<4, false>(args, sms, st);
  }
  if (e == cudaSuccess) e = cudaGetLastError();
  scratch_free(xa);
  if (e != cudaSuccess) return cuda_fail(op, e);
  return TSL_OK;
}
