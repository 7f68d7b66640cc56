// NF4 dequantize (bitsandbytes layout) to bf16: the variants kernels-cuda/dev/nf4_bench.cu times side
// by side. Self-contained (a copy of src/nf4_code.cuh's code table and absmax reader) so the bench
// builds whatever state the library's sources are in. Every variant must write exactly v1's bits:
// code[i] * scale in f32, rounded once to bf16, scale = code8[q] * nested_absmax + offset (one FFMA).
//
// Cost model used for the predictions (H200: 132 SMs, ~1.98 GHz, copy ~4.2 TB/s): the floor is
// 147 MB in 35 us, i.e. 7.3M chunks of 8 values in 35 us = one chunk per SM every ~1.3 clocks per
// scheduler quartet; at 4 warp-instructions per clock per SM that is ~165 thread-instructions per
// chunk at 100% issue, ~80 at a realistic 50% issue rate. v6's SASS is ~90 per chunk, over half of it
// two 64-bit divisions (chunk -> absmax block, block -> nested block).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

__constant__ float kNf4Code[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                                   -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                                   0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
                                   0.44070982933044006f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

struct Absmax {  // src/nf4_code.cuh Nf4Absmax
  const float* f32;
  const uint8_t* q;
  const float* nested_absmax;
  const float* nested_code;
  int nested_blocksize;
  float nested_offset;
  __device__ __forceinline__ float operator()(int64_t block) const {
    if (!q) return __ldg(f32 + block);
    return __ldg(nested_code + __ldg(q + block)) * __ldg(nested_absmax + block / nested_blocksize) + nested_offset;
  }
};

// What the shift-based variants need besides Absmax: log2 of the blocksizes and the block count.
struct Shape {
  uint64_t chunks;  // 8-value chunks
  int64_t nblocks;  // absmax blocks
  int lbs;          // log2(blocksize)
  int lnbs;         // log2(nested blocksize)
};

__device__ __forceinline__ uint4 decode8(uint32_t word, float scale, const float* code) {
  __align__(16) __nv_bfloat162 v[4];
#pragma unroll
  for (int b = 0; b < 4; b++) {
    uint32_t byte = (word >> (8 * b)) & 0xffu;
    v[b] = __floats2bfloat162_rn(code[byte >> 4] * scale, code[byte & 15] * scale);
  }
  return *reinterpret_cast<uint4*>(v);
}

#define NF4_SMEM_CODE()                                         \
  __shared__ float code[16];                                    \
  if (threadIdx.x < 16) code[threadIdx.x] = kNf4Code[threadIdx.x]; \
  __syncthreads()

// v1 (shipped first): 16 values per thread, 8-byte load, two 16-byte stores 32 bytes apart across lanes.
__global__ void v1(const uint2* __restrict__ packed, uint64_t groups, int bs, Absmax am, uint4* __restrict__ out) {
  NF4_SMEM_CODE();
  for (uint64_t g = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; g < groups; g += (uint64_t)gridDim.x * blockDim.x) {
    uint2 bytes = packed[g];
    float scale = am((g * 16) / bs);
    out[2 * g] = decode8(bytes.x, scale, code);
    out[2 * g + 1] = decode8(bytes.y, scale, code);
  }
}

// v6<K> (shipped before this round): K chunks of 8 per thread, chunk j at warp_base + j*32 + lane,
// loads first, evict-first 16-byte stores. Measured 82% of a 1 GiB memcpy as ONE launch between two
// events (the old bench); the new bench times N back-to-back launches.
template <int K>
__global__ void v6(const uint32_t* __restrict__ packed, uint64_t chunks, int bs, Absmax am, uint4* __restrict__ out) {
  NF4_SMEM_CODE();
  const uint64_t base = ((blockIdx.x * (uint64_t)blockDim.x + threadIdx.x) >> 5) * 32 * K + (threadIdx.x & 31);
  uint32_t w[K];
  float s[K];
#pragma unroll
  for (int j = 0; j < K; j++) w[j] = base + j * 32 < chunks ? __ldcs(packed + base + j * 32) : 0u;
#pragma unroll
  for (int j = 0; j < K; j++) s[j] = base + j * 32 < chunks ? am(((base + j * 32) * 8) / bs) : 0.f;
#pragma unroll
  for (int j = 0; j < K; j++)
    if (base + j * 32 < chunks) __stcs(out + base + j * 32, decode8(w[j], s[j], code));
}

// v6s<K>: v6 with shifts instead of the two divisions (power-of-two blocksizes).
// PREDICTION: SASS per chunk ~90 -> ~50; +3 points of copy if issue rate is part of the limit.
// MEASURED (H100, call 1): 92.6% of memcpy against v6's 91.7%: +0.9, both at the mix ceiling there.
// Call 2 (H100): 92.5% vs 91.5%; K=8 (54 registers, 4 blocks/SM) 90.7%, 512 threads 91.7%.
// Also timed in call 3: K=2 and 128 threads (finer blocks, shorter tail). PREDICTION: within 1 point.
// MEASURED (H100, call 3): v6s 92.3%, K=2 91.9%, 128 threads 92.4%. v6s is what src/nf4.cu ships.
template <int K>
__global__ void v6s(const uint32_t* __restrict__ packed, Shape sh, Absmax am, uint4* __restrict__ out) {
  NF4_SMEM_CODE();
  const uint64_t base = ((blockIdx.x * (uint64_t)blockDim.x + threadIdx.x) >> 5) * 32 * K + (threadIdx.x & 31);
  uint32_t w[K];
  float s[K];
#pragma unroll
  for (int j = 0; j < K; j++) w[j] = base + j * 32 < sh.chunks ? __ldcs(packed + base + j * 32) : 0u;
#pragma unroll
  for (int j = 0; j < K; j++) {
    const int64_t b = (int64_t)(((base + j * 32) * 8) >> sh.lbs);
    s[j] = base + j * 32 < sh.chunks ? __ldg(am.nested_code + __ldg(am.q + b)) * __ldg(am.nested_absmax + (b >> sh.lnbs)) + am.nested_offset : 0.f;
  }
#pragma unroll
  for (int j = 0; j < K; j++)
    if (base + j * 32 < sh.chunks) __stcs(out + base + j * 32, decode8(w[j], s[j], code));
}

__device__ __forceinline__ void pdl_trigger_and_wait() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// v6s_pdl<K>: v6s launched with programmatic dependent launch (cudaLaunchKernelEx, programmatic stream
// serialization): each block lets the next grid launch at once and waits for the previous grid before
// its first global access, so back-to-back launches overlap launch latency and ramp-up with the tail.
// Diagnostic: in a training step the kernels around the dequantize would have to take part too.
// PREDICTION: +2-3 points over v6s in back-to-back launches.
// MEASURED (H100, call 3): 95.0% against v6s's 92.3% (+2.7); a CUDA graph of the same launches 93.8%.
// kLoadsFirst (v6s_pdl_early, as shipped in src/nf4.cu since round five): the loads of the (frozen)
// codes and scales are issued before griddepcontrol.wait, so they overlap the previous kernel's tail
// too; only the stores wait.
// PREDICTION: H200 88% (v6s) -> ~91% back to back (v6s_pdl measured 90.9 there); H100 ~95%.
template <int K, bool kLoadsFirst>
__global__ void v6s_pdl_t(const uint32_t* __restrict__ packed, Shape sh, Absmax am, uint4* __restrict__ out) {
  NF4_SMEM_CODE();
  if (!kLoadsFirst) pdl_trigger_and_wait();
  const uint64_t base = ((blockIdx.x * (uint64_t)blockDim.x + threadIdx.x) >> 5) * 32 * K + (threadIdx.x & 31);
  uint32_t w[K];
  float s[K];
#pragma unroll
  for (int j = 0; j < K; j++) w[j] = base + j * 32 < sh.chunks ? __ldcs(packed + base + j * 32) : 0u;
#pragma unroll
  for (int j = 0; j < K; j++) {
    const int64_t b = (int64_t)(((base + j * 32) * 8) >> sh.lbs);
    s[j] = base + j * 32 < sh.chunks ? __ldg(am.nested_code + __ldg(am.q + b)) * __ldg(am.nested_absmax + (b >> sh.lnbs)) + am.nested_offset : 0.f;
  }
  if (kLoadsFirst) pdl_trigger_and_wait();
#pragma unroll
  for (int j = 0; j < K; j++)
    if (base + j * 32 < sh.chunks) __stcs(out + base + j * 32, decode8(w[j], s[j], code));
}
template <int K>
constexpr auto v6s_pdl = v6s_pdl_t<K, false>;
template <int K>
constexpr auto v6s_pdl_early = v6s_pdl_t<K, true>;

// One warp tile = 32*K chunks = 256*K values, aligned to 256*K values, so with a power-of-two blocksize
// >= 8*K the tile touches at most 32 absmax blocks: lane l reads block first + l (the raw byte and nested
// absmax here, finished by scale_finish), and chunk j of lane x takes its scale from lane (j*256 + x*8) >> lbs.
struct RawScale {
  uint32_t q;
  float na;  // nested absmax, or the f32 absmax itself
};

template <int K>
__device__ __forceinline__ void tile_load(const uint32_t* __restrict__ packed, const Shape& sh, const Absmax& am,
                                          uint64_t tile, int lane, uint32_t (&w)[K], RawScale& r) {
  const uint64_t c0 = tile * 32 * K;
#pragma unroll
  for (int j = 0; j < K; j++) {
    const uint64_t c = c0 + j * 32 + lane;
    w[j] = c < sh.chunks ? __ldcs(packed + c) : 0u;
  }
  const int64_t b = (int64_t)((c0 * 8) >> sh.lbs) + lane;
  const int span = (256 * K) >> sh.lbs;  // blocks in the tile; 0 when one block covers it
  r.q = 0;
  r.na = 0.f;
  if (b < sh.nblocks && lane < (span > 0 ? span : 1)) {
    if (am.q) {
      r.q = __ldg(am.q + b);
      r.na = __ldg(am.nested_absmax + (b >> sh.lnbs));
    } else {
      r.na = __ldg(am.f32 + b);
    }
  }
}

__device__ __forceinline__ float scale_finish(const Absmax& am, const float* code8, RawScale r) {
  return am.q ? code8[r.q] * r.na + am.nested_offset : r.na;
}

template <int K, bool Smem>
__device__ __forceinline__ void tile_decode(uint64_t tile, int lane, const Shape& sh, const uint32_t (&w)[K], float s,
                                            const float* code, uint4* __restrict__ dst) {
  const uint64_t c0 = tile * 32 * K;
#pragma unroll
  for (int j = 0; j < K; j++) {
    const float sj = __shfl_sync(0xffffffffu, s, (j * 256 + lane * 8) >> sh.lbs);
    const uint64_t c = c0 + j * 32 + lane;
    if (Smem)
      dst[j * 32 + lane] = decode8(w[j], sj, code);
    else if (c < sh.chunks)
      __stcs(dst + c, decode8(w[j], sj, code));
  }
}

#define NF4_SMEM_CODES()                                                            \
  __shared__ float code[16];                                                        \
  __shared__ float code8[256];                                                      \
  if (threadIdx.x < 16) code[threadIdx.x] = kNf4Code[threadIdx.x];                  \
  if (am.q)                                                                         \
    for (int i = threadIdx.x; i < 256; i += blockDim.x) code8[i] = am.nested_code[i]; \
  __syncthreads()

// v7<K>: one tile per warp (grid as v6), shifts, the tile's scales read once per lane and shuffled,
// the nested code (256 floats) staged in shared memory: 3 loads per tile instead of 3 per chunk.
// PREDICTION: +4 points over v6 (fewer instructions and loads), the per-block code8 fill costs ~1.
// MEASURED (H100, call 1): K=4 90.8%, K=8 91.1%: 1 point below v6, 2 below v6s (call 2: 90.7%, 91.0%).
template <int K>
__global__ void v7(const uint32_t* __restrict__ packed, Shape sh, Absmax am, uint4* __restrict__ out) {
  NF4_SMEM_CODES();
  const int lane = threadIdx.x & 31;
  const uint64_t tile = (blockIdx.x * (uint64_t)blockDim.x + threadIdx.x) >> 5;
  uint32_t w[K];
  RawScale r;
  tile_load<K>(packed, sh, am, tile, lane, w, r);
  tile_decode<K, false>(tile, lane, sh, w, scale_finish(am, code8, r), code, out);
}

// v10<K>: v7 without the shared nested code (the lane reads code8[q] from global, L1-resident), so
// no 1 KB fill and barrier per block; grid as v6.
// PREDICTION: v6s +-1 point on the H100 (at the mix ceiling); +1-2 over v6s where issue rate binds.
// MEASURED (H100, call 2): 91.5%, 1 point below v6s.
template <int K>
__global__ void v10(const uint32_t* __restrict__ packed, Shape sh, Absmax am, uint4* __restrict__ out) {
  NF4_SMEM_CODE();
  const int lane = threadIdx.x & 31;
  const uint64_t tile = (blockIdx.x * (uint64_t)blockDim.x + threadIdx.x) >> 5;
  uint32_t w[K];
  RawScale r;
  tile_load<K>(packed, sh, am, tile, lane, w, r);
  tile_decode<K, false>(tile, lane, sh, w, am.q ? __ldg(am.nested_code + r.q) * r.na + am.nested_offset : r.na, code, out);
}

// v8<K>: v7 on a persistent grid (resident blocks x SMs); each warp strides over tiles and issues the
// next tile's loads before decoding and storing the current one.
// PREDICTION: +3 points over v7 (no block start-up, loads always in flight): ~92% of memcpy if the
// write-heavy ceiling allows; K=8 within 1 point of K=4.
// MEASURED (H100, call 1): 85.9% (K=4, 256 threads), 86.5% (512), 84.9% (K=8), 85.0% (K=2): 6 points
// BELOW v6. 57344 warp tiles over 6336 resident warps is 9.05 rounds, so the 10th round runs on 5% of
// the warps; small independent blocks let the hardware scheduler balance the tail instead.
template <int K>
__global__ void v8(const uint32_t* __restrict__ packed, Shape sh, Absmax am, uint4* __restrict__ out) {
  NF4_SMEM_CODES();
  const int lane = threadIdx.x & 31;
  const uint64_t tiles = (sh.chunks + 32 * K - 1) / (32 * K);
  const uint64_t stride = ((uint64_t)gridDim.x * blockDim.x) >> 5;
  uint64_t tile = (blockIdx.x * (uint64_t)blockDim.x + threadIdx.x) >> 5;
  uint32_t w[K];
  RawScale r;
  tile_load<K>(packed, sh, am, tile, lane, w, r);
  for (; tile < tiles; tile += stride) {
    uint32_t wn[K];
    RawScale rn;
    tile_load<K>(packed, sh, am, tile + stride, lane, wn, rn);
    tile_decode<K, false>(tile, lane, sh, w, scale_finish(am, code8, r), code, out);
#pragma unroll
    for (int j = 0; j < K; j++) w[j] = wn[j];
    r = rn;
  }
}

// Hopper bulk async stores (cp.async.bulk, sm_90): a block decodes a tile of 8 warp tiles into shared
// memory, then one thread hands the whole contiguous 16*256*K bytes to the copy engine; two buffers so
// decoding tile i+1 overlaps the store of tile i. L2Hint adds an evict-first L2 policy to the store.
__device__ __forceinline__ void bulk_store(void* gdst, const void* ssrc, uint32_t bytes, bool evict_first) {
#if __CUDA_ARCH__ >= 900
  const uint32_t s = (uint32_t)__cvta_generic_to_shared(ssrc);
  if (evict_first) {
    uint64_t pol;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group.L2::cache_hint [%0], [%1], %2, %3;" ::"l"(gdst), "r"(s),
                 "r"(bytes), "l"(pol)
                 : "memory");
  } else {
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(gdst), "r"(s), "r"(bytes) : "memory");
  }
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
#endif
}

// v8 "evened": the same kernel on grid = ceil(tiles / (rounds x 8)), rounds = ceil(tiles / (resident
// warps)), so every warp runs the same number of tiles (no 5%-busy last round); fewer blocks than slots.
// PREDICTION: ~91% of memcpy (the tail fixed; still 6 blocks per SM at 40 registers).
// MEASURED (H100, call 3): 84.2%, below plain v8 (85.5%): the last round was not the loss. What is
// left: each warp has only one tile's loads in flight behind its stores, where v6s's 8 fresh blocks
// per SM all issue loads at once.

// v9<K, L2Hint>: persistent, 256 threads, prefetch as v8, stores through cp.async.bulk.
// PREDICTION: within +-2 points of v8: the stores were never the instruction bottleneck, and the
// shared-memory round trip plus two barriers per tile cost about what the 16 STG.128 per tile saved.
// MEASURED (H100, call 1): 87.9% (K=4), 88.0% with evict_first, 87.2% (K=2): 2 points above v8 (same
// persistent tail), 4 below v6.
template <int K, bool L2Hint>
__global__ void __launch_bounds__(256) v9(const uint32_t* __restrict__ packed, Shape sh, Absmax am, uint4* __restrict__ out) {
  constexpr int kTile = 256 * K;  // chunks per block tile = 8 warp tiles
  __shared__ __align__(128) uint4 buf[2][kTile];
  NF4_SMEM_CODES();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const uint64_t tiles = (sh.chunks + kTile - 1) / kTile;
  uint64_t t = blockIdx.x;
  uint32_t w[K];
  RawScale r;
  tile_load<K>(packed, sh, am, t * 8 + warp, lane, w, r);
  for (int it = 0; t < tiles; t += gridDim.x, it++) {
    uint32_t wn[K];
    RawScale rn;
    tile_load<K>(packed, sh, am, (t + gridDim.x) * 8 + warp, lane, wn, rn);
#if __CUDA_ARCH__ >= 900
    if (threadIdx.x == 0) asm volatile("cp.async.bulk.wait_group.read 1;" ::: "memory");  // buffer it&1 is free
#endif
    __syncthreads();
    uint4* b = buf[it & 1];
    tile_decode<K, true>(t * 8 + warp, lane, sh, w, scale_finish(am, code8, r), code, b + warp * 32 * K);
#if __CUDA_ARCH__ >= 900
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");  // generic-proxy writes -> visible to the bulk copy
#endif
    __syncthreads();
    if (threadIdx.x == 0) {
      const uint64_t c0 = t * kTile;
      const uint64_t n = sh.chunks - c0 < (uint64_t)kTile ? sh.chunks - c0 : (uint64_t)kTile;
      bulk_store(out + c0, b, (uint32_t)(n * 16), L2Hint);
    }
#pragma unroll
    for (int j = 0; j < K; j++) w[j] = wn[j];
    r = rn;
  }
#if __CUDA_ARCH__ >= 900
  if (threadIdx.x == 0) asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
#endif
}

// Diagnostics in the bench (no new kernel): expand over 4x the size in one launch (PREDICTION ~97% of
// memcpy: per-launch ramp-up and tail cost ~5 points), and v6s / expand as a CUDA graph of N launches
// instead of N stream launches (PREDICTION +1 point: shorter gaps between kernels).
// MEASURED (H100, call 3): expand 4x size 95.1% against 91.8% (per-launch cost ~3 points); graph
// 93.5% (expand) and 93.8% (v6s) against 91.8% / 92.3% (+1.5 points).

// Ceilings for this traffic mix (same grid shape as v6<4>, evict-first stores, no decode):
// PREDICTION: write-only 117 MB runs at ~90-95% of the memcpy rate (HBM write turnarounds), the
// 1:4 read:write mix ("expand") at ~92%; the plain copy kernel of the same total bytes at ~97%.
// MEASURED (H100, call 1; memcpy 3.01 TB/s): write-only 103.7% (writes alone are NOT slower), read-only
// 99.7%, copy kernel 94.3%, expand 92.1%: mixing reads into a write stream is what costs.
__global__ void ceil_copy(const uint4* __restrict__ in, uint64_t n16, uint4* __restrict__ out) {
  const uint64_t base = ((blockIdx.x * (uint64_t)blockDim.x + threadIdx.x) >> 5) * 128 + (threadIdx.x & 31);
  uint4 v[4];
#pragma unroll
  for (int j = 0; j < 4; j++) v[j] = base + j * 32 < n16 ? __ldcs(in + base + j * 32) : make_uint4(0, 0, 0, 0);
#pragma unroll
  for (int j = 0; j < 4; j++)
    if (base + j * 32 < n16) __stcs(out + base + j * 32, v[j]);
}

__global__ void ceil_expand(const uint32_t* __restrict__ in, uint64_t chunks, uint4* __restrict__ out) {
  const uint64_t base = ((blockIdx.x * (uint64_t)blockDim.x + threadIdx.x) >> 5) * 128 + (threadIdx.x & 31);
  uint32_t v[4];
#pragma unroll
  for (int j = 0; j < 4; j++) v[j] = base + j * 32 < chunks ? __ldcs(in + base + j * 32) : 0u;
#pragma unroll
  for (int j = 0; j < 4; j++)
    if (base + j * 32 < chunks) __stcs(out + base + j * 32, make_uint4(v[j], v[j] ^ 1u, v[j] ^ 2u, v[j] ^ 3u));
}

__global__ void ceil_write(uint64_t chunks, uint4* __restrict__ out) {
  const uint64_t base = ((blockIdx.x * (uint64_t)blockDim.x + threadIdx.x) >> 5) * 128 + (threadIdx.x & 31);
#pragma unroll
  for (int j = 0; j < 4; j++) {
    const uint64_t c = base + j * 32;
    if (c < chunks) __stcs(out + c, make_uint4((uint32_t)c, 1u, 2u, 3u));
  }
}

__global__ void ceil_read(const uint4* __restrict__ in, uint64_t n16, uint32_t* __restrict__ sink) {
  const uint64_t base = ((blockIdx.x * (uint64_t)blockDim.x + threadIdx.x) >> 5) * 128 + (threadIdx.x & 31);
  uint32_t x = 0;
#pragma unroll
  for (int j = 0; j < 4; j++) {
    const uint4 v = base + j * 32 < n16 ? __ldcs(in + base + j * 32) : make_uint4(0, 0, 0, 0);
    x ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (x == 0x9e3779b9u) sink[0] = x;  // keeps the loads; practically never stores
}
