// Device side of the small-batch NF4 matmul (nf4_gemm_small.cu holds the design, the measurements
// and the host dispatch): the launch arguments, the epilogue, the cp.async / mma helpers, the GEMM
// kernel, the LoRA down-projection rows and the split reduction for graph captures.
#pragma once

#include "common.cuh"
#include "nf4_code.cuh"

namespace tsl {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRows = 64;                     // output rows per block: 4 m-tiles
constexpr int kStageK = 256;                  // k per stage: warp w takes slab w (64 k)
constexpr int kStages = 4;                    // = the 256 table rows / 64 rows per stage
constexpr int kTableBytes = 256 * 256;        // entry v at v·256 + 4·lane; bytes 128..255 of each row: W stages
constexpr int kScaleEntries = kRows * 4;      // per stage: (row, slab)
constexpr int kRedLd = kRows + 4;             // padded row stride of the cross-warp reduction

struct SmallArgs {
  const uint8_t* packed;
  int64_t out_f, in_f;
  int T, log2_blocksize, log2_nested_blocksize;
  int64_t nblocks;  // absmax blocks: the q bytes readable
  const float* absmax_f32;
  const uint8_t* absmax_q;
  const float *nested_absmax, *nested_code;
  float nested_offset;
  const __nv_bfloat16* x;
  int stages_total, stages_per_split, splits;
  float* partial;      // [splits][T][out] when splits > 1
  unsigned* counters;  // per row tile, zero between calls (null: nf4_gemm_small_finish sums the splits)
  const void* bias;
  int bias_dtype;
  const float *xa, *lora_b;  // x·aᵀ [T, r] (or null) and b [out, r]
  float lora_scale;
  int r;
  __nv_bfloat16* y;
};

// What every output adds to its sum x·Wᵀ: bias[o] + scale · Σ_j xa[t, j] b[o, j]; rounded once to bf16.
__device__ __forceinline__ void store_output(const SmallArgs& a, int64_t tok, int64_t o, float v) {
  if (a.bias) v += load_as_float(a.bias, a.bias_dtype, o);
  if (a.xa) {
    float l = 0.f;
    for (int j = 0; j < a.r; j++) l = fmaf(a.xa[tok * a.r + j], a.lora_b[o * a.r + j], l);
    v = fmaf(a.lora_scale, l, v);
  }
  a.y[tok * a.out_f + o] = __float2bfloat16(v);
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, uint64_t policy) {
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "l"(policy));
}
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void mma_bf16(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The bf16 pair (code[hi nibble], code[lo nibble]) of byte `idx` of `word`: even k sits in the high
// nibble (bitsandbytes) and in the low half of an mma register.
template <int kIdx>
__device__ __forceinline__ uint32_t decode_pair(const unsigned char* table, uint32_t word, uint32_t lane4) {
  return *reinterpret_cast<const uint32_t*>(table + __byte_perm(word, lane4, 0x5504 | (kIdx << 4)));
}

template <int kNT, bool kDQ>
__global__ void __launch_bounds__(kThreads, 2) nf4_gemm_small_kernel(const SmallArgs a) {
  constexpr int kTokens = 8 * kNT;
  constexpr int kXStage = kTokens * kStageK * 2;
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ float nested_code[256];
  unsigned char* table = smem;
  unsigned char* xs = smem + kTableBytes;
  // Per stage [slab][row]: f32 absmax bits, or the 4-byte word holding the 8-bit absmax code.
  uint32_t* sc = reinterpret_cast<uint32_t*>(xs + kStages * kXStage);
  float* nab = reinterpret_cast<float*>(sc + kStages * kScaleEntries);  // nested absmax (double quantization)

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t row0 = (int64_t)blockIdx.x * kRows;
  const int stage0 = blockIdx.y * a.stages_per_split;
  const int nst = min(a.stages_per_split, a.stages_total - stage0);
  uint64_t evict_first;  // the 4-bit stream is read once: keep X and the partials in L2 instead
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(evict_first));

  // Each thread copies the same slots of every stage; only the addresses advance. Code bytes: rows
  // wr + 16u, 16-byte chunk wc. Absmax: rows (tid >> 2) + 32v of slab tid & 3. X: tokens
  // (tid >> 5) + 4v, chunk lane. Rows past out_f repeat the last row (their results are dropped).
  const int wr = tid >> 3, wc = tid & 7;
  const uint8_t* wsrc[4];
#pragma unroll
  for (int u = 0; u < 4; u++)
    wsrc[u] = a.packed + min(row0 + wr + 16 * u, a.out_f - 1) * (a.in_f >> 1) + (int64_t)stage0 * (kStageK / 2) + 16 * wc;
  const uint32_t wdst = smem_u32(table) + wr * 256 + 128 + ((wc ^ ((wr & 3) << 1)) << 4);
  const int slab = tid & 3;
  int64_t selem[2];  // element index of the slab's first weight at stage0
#pragma unroll
  for (int v = 0; v < 2; v++)
    selem[v] = min(row0 + (tid >> 2) + 32 * v, a.out_f - 1) * a.in_f + (int64_t)stage0 * kStageK + 64 * slab;
  const int sidx = slab * kRows + (tid >> 2);
  const __nv_bfloat16* xsrc = a.x + (int64_t)(tid >> 5) * a.in_f + (int64_t)stage0 * kStageK + 8 * lane;
  const uint32_t xdst = smem_u32(xs) + (tid >> 5) * 512 + ((lane ^ ((tid >> 5) & 1)) << 4);

  // Code bytes and absmax: static weights, safe to read before the previous grid finishes.
  auto issue_weights = [&](int i) {
    const int buf = i % kStages;
    const int64_t kleft = a.in_f - (int64_t)(stage0 + i) * kStageK;  // < 256 only in a row's last stage
#pragma unroll
    for (int u = 0; u < 4; u++)
      if (kleft >= kStageK || 32 * wc < kleft)
        cp_async16(wdst + (buf * kRows + 16 * u) * 256, wsrc[u] + i * (kStageK / 2), evict_first);
    if (64 * slab >= kleft) return;
#pragma unroll
    for (int v = 0; v < 2; v++) {
      const int e = buf * kScaleEntries + sidx + 32 * v;
      const int64_t b = (selem[v] + (int64_t)i * kStageK) >> a.log2_blocksize;
      if (!kDQ) {
        cp_async4(smem_u32(sc + e), a.absmax_f32 + b);
      } else {
        const int64_t word = b & ~int64_t(3);
        if (word + 4 <= a.nblocks) cp_async4(smem_u32(sc + e), a.absmax_q + word);
        else sc[e] = (uint32_t)a.absmax_q[b] << (8 * (b & 3));  // the last word may end past the buffer
        cp_async4(smem_u32(nab + e), a.nested_absmax + (b >> a.log2_nested_blocksize));
      }
    }
  };
  auto issue_x = [&](int i) {
    const int buf = i % kStages;
    const int64_t kleft = a.in_f - (int64_t)(stage0 + i) * kStageK;
#pragma unroll
    for (int v = 0; v < kTokens / 4; v++)
      if ((tid >> 5) + 4 * v < a.T && (kleft >= kStageK || 8 * lane < kleft))
        cp_async16(xdst + buf * kXStage + v * 4 * 512, xsrc + (int64_t)v * 4 * a.in_f + i * kStageK);
  };

  for (int i = 0; i < kStages - 1; i++)
    if (i < nst) issue_weights(i);
  for (int i = tid; i < 256 * 8; i += kThreads) {
    const int v = i >> 3;
    __nv_bfloat162 pair = __floats2bfloat162_rn(kNf4Code[v >> 4], kNf4Code[v & 15]);
    const uint32_t p = *reinterpret_cast<uint32_t*>(&pair);
    *reinterpret_cast<uint4*>(table + v * 256 + (i & 7) * 16) = make_uint4(p, p, p, p);
  }
  if (kDQ)
    for (int i = tid; i < 256; i += kThreads) nested_code[i] = a.nested_code[i];
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // X (and, through it, the LoRA term) may come from the previous grid: wait for it only now.
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
  for (int i = 0; i < kStages - 1; i++) {
    if (i < nst) issue_x(i);
    cp_async_commit();  // group i: stage i's X (group 0 also every prologue weight stage)
  }

  const int g = lane >> 2, t = lane & 3;
  const uint32_t lane4 = (uint32_t)lane * 4;
  // Byte offset of this lane's 8 code bytes inside a row's 128 (16-byte chunks swizzled by row & 3,
  // the same for rows g and g + 8, so each half-warp's 8-byte loads cover the 32 banks once).
  const int wcol = (((2 * warp + (t >> 1)) ^ ((g & 3) << 1)) << 4) | ((t & 1) << 3);
  float acc[4][kNT][4] = {};

  for (int i = 0; i < nst; i++) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // stage i landed for every thread; stage i-1's buffer is free
    if (i + kStages - 1 < nst) {
      issue_weights(i + kStages - 1);
      issue_x(i + kStages - 1);
    }
    cp_async_commit();
    const int buf = i % kStages;
    const int64_t k0 = (int64_t)(stage0 + i) * kStageK;
    if (k0 + 64 * warp >= a.in_f) continue;  // the last stage of a row may be partial (in_f % 256)
    // Lane l decodes the scales of rows l and l + 32 of this warp's slab once; m-tiles shuffle them.
    float sl[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int e = buf * kScaleEntries + warp * kRows + lane + 32 * h;
      if (!kDQ) {
        sl[h] = __uint_as_float(sc[e]);
      } else {
        // Only the low bits of the block index matter: 32-bit products keep them exact.
        const int64_t row = min(row0 + lane + 32 * h, a.out_f - 1);
        const uint32_t el = (uint32_t)row * (uint32_t)a.in_f + (uint32_t)(k0 + 64 * warp);
        const uint32_t q = (sc[e] >> (8 * ((el >> a.log2_blocksize) & 3))) & 0xffu;
        sl[h] = nested_code[q] * nab[e] + a.nested_offset;
      }
    }
    uint32_t xb[kNT][8];
#pragma unroll
    for (int nt = 0; nt < kNT; nt++) {
      const int tok = min(nt * 8 + g, a.T - 1);  // missing tokens repeat the last (their columns are dropped)
      const unsigned char* xr = xs + buf * kXStage + tok * 512;
      const int c0 = 8 * warp + 2 * t;  // 16-byte chunks of 8 k: the slab starts at chunk 8w
      const uint4 v0 = *reinterpret_cast<const uint4*>(xr + ((c0 ^ (tok & 1)) << 4));
      const uint4 v1 = *reinterpret_cast<const uint4*>(xr + (((c0 + 1) ^ (tok & 1)) << 4));
      xb[nt][0] = v0.x, xb[nt][1] = v0.y, xb[nt][2] = v0.z, xb[nt][3] = v0.w;
      xb[nt][4] = v1.x, xb[nt][5] = v1.y, xb[nt][6] = v1.z, xb[nt][7] = v1.w;
    }
#pragma unroll
    for (int mt = 0; mt < 4; mt++) {
      const int r0 = mt * 16 + g;
      const unsigned char* wrow = table + (buf * kRows + r0) * 256 + 128 + wcol;
      const uint2 c0 = *reinterpret_cast<const uint2*>(wrow);
      const uint2 c1 = *reinterpret_cast<const uint2*>(wrow + 8 * 256);
      const float s0 = __shfl_sync(0xffffffffu, sl[mt >> 1], (mt & 1) * 16 + g);
      const float s1 = __shfl_sync(0xffffffffu, sl[mt >> 1], (mt & 1) * 16 + g + 8);
      uint32_t af[4][4];
      af[0][0] = decode_pair<0>(table, c0.x, lane4), af[0][1] = decode_pair<0>(table, c1.x, lane4);
      af[0][2] = decode_pair<1>(table, c0.x, lane4), af[0][3] = decode_pair<1>(table, c1.x, lane4);
      af[1][0] = decode_pair<2>(table, c0.x, lane4), af[1][1] = decode_pair<2>(table, c1.x, lane4);
      af[1][2] = decode_pair<3>(table, c0.x, lane4), af[1][3] = decode_pair<3>(table, c1.x, lane4);
      af[2][0] = decode_pair<0>(table, c0.y, lane4), af[2][1] = decode_pair<0>(table, c1.y, lane4);
      af[2][2] = decode_pair<1>(table, c0.y, lane4), af[2][3] = decode_pair<1>(table, c1.y, lane4);
      af[3][0] = decode_pair<2>(table, c0.y, lane4), af[3][1] = decode_pair<2>(table, c1.y, lane4);
      af[3][2] = decode_pair<3>(table, c0.y, lane4), af[3][3] = decode_pair<3>(table, c1.y, lane4);
#pragma unroll
      for (int nt = 0; nt < kNT; nt++) {
        float part[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int j = 0; j < 4; j++) mma_bf16(part, af[j], xb[nt][2 * j], xb[nt][2 * j + 1]);
        acc[mt][nt][0] = fmaf(s0, part[0], acc[mt][nt][0]);
        acc[mt][nt][1] = fmaf(s0, part[1], acc[mt][nt][1]);
        acc[mt][nt][2] = fmaf(s1, part[2], acc[mt][nt][2]);
        acc[mt][nt][3] = fmaf(s1, part[3], acc[mt][nt][3]);
      }
    }
  }

  // The 4 warps hold partial sums over different k slabs of the same rows: add them in shared
  // memory (the X stages, drained). One split: that is y. Several: write this split's [T][64 rows]
  // partial (rows contiguous); the split that finishes last for this row tile adds them all up
  // (threadfence + counter, the CUDA programming guide's "last block" reduction), so no second
  // kernel is needed.
  cp_async_wait<0>();
  __syncthreads();
  float* red = reinterpret_cast<float*>(xs);  // [warp][token][kRedLd]
#pragma unroll
  for (int mt = 0; mt < 4; mt++)
#pragma unroll
    for (int nt = 0; nt < kNT; nt++) {
      float* p = red + (warp * kTokens + nt * 8 + 2 * t) * kRedLd + mt * 16 + g;
      p[0] = acc[mt][nt][0];
      p[kRedLd] = acc[mt][nt][1];
      p[8] = acc[mt][nt][2];
      p[kRedLd + 8] = acc[mt][nt][3];
    }
  __syncthreads();
  const int64_t n = (int64_t)a.T * a.out_f;
  for (int q = tid; q < a.T * kRows; q += kThreads) {
    const int tok = q / kRows, r = q % kRows;
    if (row0 + r >= a.out_f) continue;
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; w++) v += red[(w * kTokens + tok) * kRedLd + r];
    if (a.splits == 1) store_output(a, tok, row0 + r, v);
    else a.partial[blockIdx.y * n + tok * a.out_f + row0 + r] = v;
  }
  if (a.splits == 1 || !a.counters) return;
  __shared__ bool last;
  __threadfence();  // this block's partials are visible before its count
  __syncthreads();
  if (tid == 0) last = atomicAdd(a.counters + blockIdx.x, 1u) == (unsigned)a.splits - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  for (int q = tid; q < a.T * kRows; q += kThreads) {
    const int tok = q / kRows, r = q % kRows;
    if (row0 + r >= a.out_f) continue;
    float v = 0.f;
    for (int z = 0; z < a.splits; z++) v += __ldcg(a.partial + z * n + tok * a.out_f + row0 + r);  // L2: other SMs wrote them
    store_output(a, tok, row0 + r, v);
  }
  if (tid == 0) a.counters[blockIdx.x] = 0;  // ready for the next call (and graph replay)
}

// xa[t, j] = Σ_i x[t, i] a[j, i]: block j reads row j of a once for every token.
__global__ void lora_down_rows(const __nv_bfloat16* __restrict__ x, const float* __restrict__ a, int64_t in_f, int T,
                               int r, float* __restrict__ xa) {
  __shared__ float red[32];
  float s[16] = {};
  for (int64_t i = threadIdx.x; i < in_f; i += blockDim.x) {
    const float av = a[blockIdx.x * in_f + i];
#pragma unroll
    for (int t = 0; t < 16; t++)
      if (t < T) s[t] = fmaf(__bfloat162float(x[t * in_f + i]), av, s[t]);
  }
#pragma unroll
  for (int t = 0; t < 16; t++) {
    if (t >= T) break;
    const float v = block_sum(s[t], red);
    if (threadIdx.x == 0) xa[t * r + blockIdx.x] = v;
  }
}

// Where no counters are available (first call inside a graph capture): y = Σ_splits partial + the
// bias and LoRA terms, one thread per output.
__global__ void nf4_gemm_small_finish(const SmallArgs a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
  const int64_t n = (int64_t)a.T * a.out_f;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float v = 0.f;
    for (int s = 0; s < a.splits; s++) v += a.partial[s * n + i];
    store_output(a, i / a.out_f, i % a.out_f, v);
  }
}

}  // namespace
}  // namespace tsl
