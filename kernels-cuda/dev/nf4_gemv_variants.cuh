// NF4 matrix-vector bench, part 1: the types every variant reads and the two one-row-per-warp
// variants (v1, the kernel shipped before; v3). Included by nf4_gemv_bench.cu only.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>


#define CK(x)                                                                            \
  do {                                                                                   \
    cudaError_t e = (x);                                                                 \
    if (e != cudaSuccess) {                                                              \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e)); \
      exit(1);                                                                           \
    }                                                                                    \
  } while (0)

__constant__ float kNf4Code[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                                   -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                                   0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
                                   0.44070982933044006f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
static const float kHostCode[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                                    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                                    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
                                    0.44070982933044006f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

// Double-quantized absmax: code8[q[block]] * nested_absmax[block / nbs] + offset.
struct Absmax {
  const uint8_t* q;
  const float* nested_absmax;
  const float* nested_code;
  int nested_blocksize;
  float nested_offset;
  __device__ __forceinline__ float operator()(int64_t block) const {
    return __ldg(nested_code + __ldg(q + block)) * __ldg(nested_absmax + block / nested_blocksize) + nested_offset;
  }
};

// bf16 NF4 code values split into byte planes for prmt lookups (v4): lo[k] holds the low bytes of
// entries 4k..4k+3, hi[k] their high bytes.
struct CodePlanes {
  uint32_t lo[4], hi[4];
};

struct Args {
  const uint8_t* packed;
  int64_t out_f, in_f;
  int blocksize, log2_bs, log2_nbs;
  Absmax am;
  CodePlanes planes;
  const __nv_bfloat16* x;
  __nv_bfloat16* y;
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
  return r;
}

// ---- v1: the kernel shipped before this bench (kept for comparison) -----------------------------
// One warp per row; each lane owns 16-byte chunks (32 codes) at a 16-byte stride, 4 in flight; a
// byte -> float2 table of 256 entries in shared memory; absmax by two 64-bit divisions per chunk and
// a three-load dependent chain. Prediction: far from HBM; the divisions (~2 instr/weight), the
// conflicting LDS.64 (~6 wavefronts per 64 weights) and the strided x loads (16 wavefronts per
// LDG.128) make it issue- and MIO-bound.
__global__ void __launch_bounds__(256) v1_kernel(Args a) {
  __shared__ float2 lut[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) lut[i] = make_float2(kNf4Code[i >> 4], kNf4Code[i & 15]);
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int64_t row = (int64_t)blockIdx.x * 8 + (threadIdx.x >> 5);
  if (row >= a.out_f) return;
  const int64_t chunks = a.in_f / 32;
  const uint4* rowp = reinterpret_cast<const uint4*>(a.packed) + row * chunks;
  const uint4* x4 = reinterpret_cast<const uint4*>(a.x);
  float acc = 0.f;
  for (int64_t c0 = lane; c0 < chunks; c0 += 32 * 4) {
    uint4 codes[4];
#pragma unroll
    for (int u = 0; u < 4; u++) {
      const int64_t c = c0 + 32 * u;
      codes[u] = c < chunks ? __ldcs(rowp + c) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < 4; u++) {
      const int64_t c = c0 + 32 * u;
      if (c >= chunks) continue;
      const uint32_t w[4] = {codes[u].x, codes[u].y, codes[u].z, codes[u].w};
      float s = 0.f;
#pragma unroll
      for (int k = 0; k < 4; k++) {
        const uint4 xv = __ldg(x4 + c * 4 + k);
        const __nv_bfloat162* xp = reinterpret_cast<const __nv_bfloat162*>(&xv);
#pragma unroll
        for (int j = 0; j < 4; j++) {
          const float2 cf = lut[(w[k] >> (8 * j)) & 0xffu];
          const float2 xf = __bfloat1622float2(xp[j]);
          s += cf.x * xf.x + cf.y * xf.y;
        }
      }
      acc += a.am((row * a.in_f + c * 32) / a.blocksize) * s;
    }
  }
  acc = warp_sum(acc);
  if (lane == 0) a.y[row] = __float2bfloat16(acc);
}

// Σ over 8 weights of one code word against 8 f32 of x, through a 16-entry f32 table in shared
// memory (16 distinct banks: a warp's lookup is one wavefront whatever the codes).
__device__ __forceinline__ float dot8_lds(uint32_t w, const float* xf, const float* code) {
  const uint32_t lo = w & 0x0f0f0f0fu, hi = (w >> 4) & 0x0f0f0f0fu;
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < 4; j++) {
    s = fmaf(code[(hi >> (8 * j)) & 0xffu], xf[2 * j], s);
    s = fmaf(code[(lo >> (8 * j)) & 0xffu], xf[2 * j + 1], s);
  }
  return s;
}

__device__ __forceinline__ void bf16x8_to_f32(const uint4 v, float* f) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int k = 0; k < 4; k++) {
    f[2 * k] = __uint_as_float(w[k] << 16);
    f[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
  }
}

// ---- v3: v1's layout, cheap absmax, 16-entry f32 table --------------------------------------------
// Shift indexing (power-of-two block sizes), one absmax per chunk (a chunk never straddles a block),
// the 256 nested-code floats staged in shared memory, all loads of an iteration (codes, 8-bit
// absmax, nested absmax) issued before any math. Prediction: ~4.5 instr/weight (nibble extract,
// LDS.32, x convert, FFMA + per-word masks), near the H100 issue ceiling; but x is still read with
// 16-byte loads at a 64-byte lane stride (16 L1 wavefronts per LDG.128, 64 per 1024 weights) plus
// 32 table wavefronts per 1024 weights: MIO-bound near 10 weights/clk/SM, i.e. ~40% of copy.
template <int K>
__global__ void __launch_bounds__(256) v3_kernel(Args a) {
  __shared__ float code[16];
  __shared__ float ncode[256];
  ncode[threadIdx.x] = a.am.nested_code[threadIdx.x];
  if (threadIdx.x < 16) code[threadIdx.x] = kNf4Code[threadIdx.x];
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int64_t row = (int64_t)blockIdx.x * 8 + (threadIdx.x >> 5);
  if (row >= a.out_f) return;
  const int chunks = (int)(a.in_f >> 5);
  const int64_t first = row * chunks;  // global index of the row's first chunk
  const uint4* rowp = reinterpret_cast<const uint4*>(a.packed) + first;
  const uint4* x4 = reinterpret_cast<const uint4*>(a.x);
  const int shift = a.log2_bs - 5;  // chunk -> absmax block
  float acc = 0.f;
  for (int c0 = lane; c0 < chunks; c0 += 32 * K) {
    uint4 codes[K];
    uint32_t qv[K];
    float na[K];
#pragma unroll
    for (int u = 0; u < K; u++) {
      const int c = c0 + 32 * u;
      const bool ok = c < chunks;
      const int64_t blk = (first + c) >> shift;
      codes[u] = ok ? __ldcs(rowp + c) : make_uint4(0, 0, 0, 0);
      qv[u] = ok ? __ldg(a.am.q + blk) : 0u;
      na[u] = ok ? __ldg(a.am.nested_absmax + (blk >> a.log2_nbs)) : 0.f;
    }
#pragma unroll
    for (int u = 0; u < K; u++) {
      const int c = c0 + 32 * u;
      if (c >= chunks) continue;
      const uint32_t w[4] = {codes[u].x, codes[u].y, codes[u].z, codes[u].w};
      float s = 0.f;
#pragma unroll
      for (int k = 0; k < 4; k++) {
        float xf[8];
        bf16x8_to_f32(__ldg(x4 + c * 4 + k), xf);
        s += dot8_lds(w[k], xf, code);
      }
      acc = fmaf(fmaf(ncode[qv[u]], na[u], a.am.nested_offset), s, acc);
    }
  }
  acc = warp_sum(acc);
  if (lane == 0) a.y[row] = __float2bfloat16(acc);
}

// 8 NF4 codes of one word -> four bf16x2 pairs (element 2k in the low half) with no memory access:
// the 16 bf16 code values live in 8 registers as byte planes; prmt picks 4 bytes out of 8 with the
// low 3 bits of each code, and bit 3 chooses between the two halves of the table through a byte
// mask that prmt's sign-replicate mode builds from the codes' top bits. Codes are held in bf16
// (relative rounding 2^-9, an extra rounding against the reference bf16(code * absmax)).
__device__ __forceinline__ void nf4_pairs_prmt(uint32_t w, const CodePlanes& t, uint32_t* pairs) {
  const uint32_t w7 = w & 0x77777777u, up = w << 4;
  const uint32_t sel[2] = {w7, w7 >> 16};
  const uint32_t mask[2] = {prmt(up, w, 0xD9C8u), prmt(up, w, 0xFBEAu)};  // 0xff where the code's bit 3 is set
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const uint32_t m = mask[h];
    const uint32_t lo = (prmt(t.lo[0], t.lo[1], sel[h]) & ~m) | (prmt(t.lo[2], t.lo[3], sel[h]) & m);
    const uint32_t hi = (prmt(t.hi[0], t.hi[1], sel[h]) & ~m) | (prmt(t.hi[2], t.hi[3], sel[h]) & m);
    pairs[2 * h] = prmt(lo, hi, 0x4051u);      // selector nibbles 1,0 = elements 0,1
    pairs[2 * h + 1] = prmt(lo, hi, 0x6273u);  // nibbles 3,2 = elements 2,3
  }
}

// Σ over 8 weights with packed bf16 math: products accumulated 4 deep in bf16x2, then f32.
__device__ __forceinline__ float dot8_prmt(uint32_t w, const uint4 xv, const CodePlanes& t) {
  uint32_t p[4];
  nf4_pairs_prmt(w, t, p);
  const uint32_t xw[4] = {xv.x, xv.y, xv.z, xv.w};
  __nv_bfloat162 acc = __hmul2(*reinterpret_cast<const __nv_bfloat162*>(&p[0]), *reinterpret_cast<const __nv_bfloat162*>(&xw[0]));
#pragma unroll
  for (int k = 1; k < 4; k++)
    acc = __hfma2(*reinterpret_cast<const __nv_bfloat162*>(&p[k]), *reinterpret_cast<const __nv_bfloat162*>(&xw[k]), acc);
  const float2 f = __bfloat1622float2(acc);
  return f.x + f.y;
}

