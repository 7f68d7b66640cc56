// Batch-1 decode's matrix-vector product straight from 4-bit NF4 weights (bitsandbytes layout,
// QLoRA, Dettmers et al. 2023): y = W x with W never dequantized to memory, so each weight byte is
// read once and decode runs at the weight stream's bandwidth (the 16-bit alternative moves 4× the
// bytes). The optional bias and LoRA term (scale · (x·aᵀ)·bᵀ, Hu et al. 2021) are added in the
// epilogue.
// Work split: variant "v9m_u8" ("v9m" for blocksize 32) of kernels-cuda/dev/nf4_gemv_bench.cu, which
// holds the previous kernel (v1) and the variants that lost, with predictions and measurements. One warp per
// row; lane l reads 4-byte code words l, l+32, ... (8 weights each), so a warp's code load is 128
// contiguous bytes and its x load (8 bf16 per word) 512 contiguous bytes. An iteration covers
// 32·kWords words; lane j decodes the absmax of the iteration's j-th block once (block indices by
// shifts: block sizes must be powers of two, as bitsandbytes' are) and each word takes its absmax
// with one shuffle. Half the words look their codes up in a 16-entry f32 table in shared memory
// (one wavefront per warp lookup), the other half with prmt on a register-resident bf16 copy of the
// table (integer pipe, packed bf16 products accumulated 4 deep): the two pipes share the work.
// Measured with GPU time (kernels-cuda/dev/nf4_gemv_bench.cu: a CUDA graph of calls over more weight
// copies than L2 holds) on an H100 80GB HBM3, % of its 3.0 TB/s copy rate: q/o 38, k/v 19, gate/up 50,
// down 51, a whole 8B layer 44 (2.06x v1, which measured 22% there; its 12-16% in bench/NOTES.md
// included host pacing). The 70% target is NOT met. Known: the code loads alone run at ~90% in the
// same harness, so the math limits it (ncu: ~8 issued instructions per weight, issue slots ~60% busy).
// Unknown: the H200 numbers, and how much of the rest is latency rather than issue.
#include <string.h>

#include "common.cuh"
#include "nf4_code.cuh"

namespace tsl {
namespace {

constexpr int kWarps = 8;  // per block, one row each

// bf16 NF4 code values as byte planes for prmt: lo[k] holds the low bytes of entries 4k..4k+3, hi[k]
// their high bytes (filled on the host from the same table as kNf4Code).
struct CodePlanes {
  uint32_t lo[4], hi[4];
};

struct GemvArgs {
  const uint32_t* packed;
  int64_t out_f, in_f;
  int log2_blocksize, log2_nested_blocksize;
  Nf4Absmax scales;
  CodePlanes planes;
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

// Σ over the 8 weights of one code word (even element in the high nibble) against 8 f32 of x,
// through the shared table; codes pre-shifted so one prmt yields each lookup's byte offset.
__device__ __forceinline__ float dot8_table(uint32_t w, const uint4 xv, const float* code) {
  const uint32_t lo4 = (w << 2) & 0x3c3c3c3cu, hi4 = (w >> 2) & 0x3c3c3c3cu;
  const char* base = reinterpret_cast<const char*>(code);
  const uint32_t xw[4] = {xv.x, xv.y, xv.z, xv.w};
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < 4; j++) {
    s = fmaf(*reinterpret_cast<const float*>(base + __byte_perm(hi4, 0, 0x4440 + j)), __uint_as_float(xw[j] << 16), s);
    s = fmaf(*reinterpret_cast<const float*>(base + __byte_perm(lo4, 0, 0x4440 + j)), __uint_as_float(xw[j] & 0xffff0000u), s);
  }
  return s;
}

// The same sum without memory: prmt picks 4 bytes out of 8 with the low 3 bits of each code and
// bit 3 chooses the table half through a byte mask that prmt's sign-replicate mode builds from the
// codes' top bits; pairs are multiplied in bf16x2 and accumulated 4 deep before f32 (codes held in
// bf16: one extra rounding of 2^-9 relative against bf16(code · absmax)).
__device__ __forceinline__ float dot8_prmt(uint32_t w, const uint4 xv, const CodePlanes& t) {
  const uint32_t w7 = w & 0x77777777u, up = w << 4;
  const uint32_t sel[2] = {w7, w7 >> 16};
  const uint32_t mask[2] = {prmt(up, w, 0xD9C8u), prmt(up, w, 0xFBEAu)};  // 0xff where the code's bit 3 is set
  uint32_t p[4];
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const uint32_t m = mask[h];
    const uint32_t lo = (prmt(t.lo[0], t.lo[1], sel[h]) & ~m) | (prmt(t.lo[2], t.lo[3], sel[h]) & m);
    const uint32_t hi = (prmt(t.hi[0], t.hi[1], sel[h]) & ~m) | (prmt(t.hi[2], t.hi[3], sel[h]) & m);
    p[2 * h] = prmt(lo, hi, 0x4051u);      // selector nibbles 1,0 = elements 0,1
    p[2 * h + 1] = prmt(lo, hi, 0x6273u);  // nibbles 3,2 = elements 2,3
  }
  const uint32_t xw[4] = {xv.x, xv.y, xv.z, xv.w};
  __nv_bfloat162 acc = __hmul2(*reinterpret_cast<const __nv_bfloat162*>(&p[0]), *reinterpret_cast<const __nv_bfloat162*>(&xw[0]));
#pragma unroll
  for (int k = 1; k < 4; k++)
    acc = __hfma2(*reinterpret_cast<const __nv_bfloat162*>(&p[k]), *reinterpret_cast<const __nv_bfloat162*>(&xw[k]), acc);
  const float2 f = __bfloat1622float2(acc);
  return f.x + f.y;
}

// kWords code words per lane and iteration: 32·kWords words = 256·kWords weights must span at most
// 32 absmax blocks (one per lane), so kWords = 8 needs blocksize >= 64 and kWords = 4 blocksize >= 32.
// The explicit minimum of 1 block in __launch_bounds__ makes ptxas keep all kWords loads ahead of
// the math (more registers, more bytes in flight); with the bare form it sinks them below earlier
// words' math (bench: 2-30% slower per layer depending on the variant).
template <int kWords, bool kDoubleQuant>
__global__ void __launch_bounds__(kWarps * 32, 1) nf4_gemv_kernel(const GemvArgs a) {
  __shared__ float code[16];
  __shared__ float nested_code[256];
  if (kDoubleQuant) nested_code[threadIdx.x] = a.scales.nested_code[threadIdx.x];
  if (threadIdx.x < 16) code[threadIdx.x] = kNf4Code[threadIdx.x];
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int64_t row = (int64_t)blockIdx.x * kWarps + (threadIdx.x >> 5);
  if (row >= a.out_f) return;
  const int words = (int)(a.in_f >> 3);
  const uint32_t* rowp = a.packed + row * words;
  const uint4* x8 = reinterpret_cast<const uint4*>(a.x);
  const int64_t e0 = row * a.in_f;  // element index of the row's first weight
  const int bs_mask = (1 << a.log2_blocksize) - 1;
  float acc = 0.f;
  for (int base = 0; base < words; base += 32 * kWords) {
    uint32_t cw[kWords];
    uint4 xv[kWords];
#pragma unroll
    for (int u = 0; u < kWords; u++) {
      const int w = base + lane + 32 * u;
      cw[u] = w < words ? __ldcs(rowp + w) : 0u;  // streamed once: do not keep in L2
      xv[u] = __ldg(x8 + (w < words ? w : 0));
    }
    const int64_t start = e0 + (int64_t)base * 8;
    const int64_t first = start >> a.log2_blocksize;
    const int64_t last = (e0 + (int64_t)min(base + 32 * kWords, words) * 8 - 1) >> a.log2_blocksize;
    const int64_t b = first + lane;
    float mine = 0.f;
    if (b <= last) {
      mine = kDoubleQuant ? fmaf(nested_code[__ldg(a.scales.q + b)],
                                 __ldg(a.scales.nested_absmax + (b >> a.log2_nested_blocksize)), a.scales.nested_offset)
                          : __ldg(a.scales.f32 + b);
    }
    const int t = (int)(start & bs_mask) + lane * 8;  // weight offset from the first block's start
#pragma unroll
    for (int u = 0; u < kWords; u++) {
      const bool ok = base + lane + 32 * u < words;
      const float scale = __shfl_sync(0xffffffffu, mine, (t + 256 * u) >> a.log2_blocksize);
      const float s = (u & 1) ? dot8_prmt(cw[u], xv[u], a.planes) : dot8_table(cw[u], xv[u], code);
      acc = fmaf(ok ? scale : 0.f, s, acc);
    }
  }
  acc = warp_sum(acc);
  if (lane == 0) {
    if (a.bias) acc += load_as_float(a.bias, a.bias_dtype, row);
    if (a.xa) {
      float l = 0.f;
      for (int j = 0; j < a.r; j++) l += a.xa[j] * a.lora_b[row * a.r + j];
      acc += a.lora_scale * l;
    }
    a.y[row] = __float2bfloat16(acc);
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

uint16_t bf16_bits(float f) {  // round to nearest even
  uint32_t b;
  memcpy(&b, &f, 4);
  return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

CodePlanes code_planes() {
  static const float nf4[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                                -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                                0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
                                0.44070982933044006f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
  CodePlanes c{};
  for (int i = 0; i < 16; i++) {
    const uint16_t b = bf16_bits(nf4[i]);
    c.lo[i / 4] |= (uint32_t)(b & 0xff) << (8 * (i % 4));
    c.hi[i / 4] |= (uint32_t)(b >> 8) << (8 * (i % 4));
  }
  return c;
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
                      code_planes(),
                      static_cast<const __nv_bfloat16*>(d_x),
                      d_bias,
                      bias_dtype,
                      xa,
                      d_b,
                      scale,
                      r,
                      static_cast<__nv_bfloat16*>(d_y)};
  const unsigned blocks = (unsigned)((out_f + kWarps - 1) / kWarps);
  cudaStream_t st = compute_stream();
  if (blocksize >= 64) {
    if (d_absmax_q) nf4_gemv_kernel<8, true><<<blocks, kWarps * 32, 0, st>>>(args);
    else nf4_gemv_kernel<8, false><<<blocks, kWarps * 32, 0, st>>>(args);
  } else {
    if (d_absmax_q) nf4_gemv_kernel<4, true><<<blocks, kWarps * 32, 0, st>>>(args);
    else nf4_gemv_kernel<4, false><<<blocks, kWarps * 32, 0, st>>>(args);
  }
  cudaError_t e = cudaGetLastError();
  scratch_free(xa);
  if (e != cudaSuccess) return cuda_fail(op, e);
  return TSL_OK;
}
