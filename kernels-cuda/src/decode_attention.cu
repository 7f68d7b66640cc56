// Generation's attention over the KV cache (lib/infer): writing new keys/values into their slots,
// and causal GQA attention of new queries over a block-organized cache (PagedAttention, Kwon et al.
// 2023). One thread block serves one query row and one kv head, so the keys and values it reads
// are shared by the G query heads of that group. Long contexts are split along the sequence over
// several blocks whose partial results merge by log-sum-exp (FlashDecoding, Dao et al. 2023), so a
// batch-1 decode still fills the GPU.
#include "common.cuh"

namespace tsl {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxGroup = 8;
// Positions per split when a context is cut along the sequence: each warp's positions form one
// dependent chain (a load, G reductions and exponentials per position), so short chains and many
// blocks beat long chains and few. At 256 a batch-1 8B decode over 576 positions ran 24 blocks of
// 48 positions per warp, ~55 us per layer on an H100; at 32 it runs 144 blocks of 8.
constexpr int kSplitTokens = 32;

struct KvSegs {
  const __nv_bfloat16* k[TSL_MAX_KV_SEGMENTS];
  const __nv_bfloat16* v[TSL_MAX_KV_SEGMENTS];
  int32_t first_block[TSL_MAX_KV_SEGMENTS + 1];
  int32_t n;
};

// Segment and row of a global slot (block id * bs + offset).
__device__ __forceinline__ int64_t locate(const KvSegs& s, int64_t slot, int bs, int* seg) {
  const int block = (int)(slot / bs);
  int i = 0;
  while (i + 1 < s.n && s.first_block[i + 1] <= block) i++;
  *seg = i;
  return slot - (int64_t)s.first_block[i] * bs;
}

__global__ void kv_write_kernel(KvSegs segs, int bs, const void* __restrict__ k, const void* __restrict__ v, int src_dtype,
                                const int32_t* __restrict__ slots, int width) {
  const int t = blockIdx.x;
  int seg;
  const int64_t row = locate(segs, slots[t], bs, &seg);
  __nv_bfloat16* kd = const_cast<__nv_bfloat16*>(segs.k[seg]) + row * width;
  __nv_bfloat16* vd = const_cast<__nv_bfloat16*>(segs.v[seg]) + row * width;
  for (int i = threadIdx.x; i < width; i += blockDim.x) {
    kd[i] = __float2bfloat16(load_as_float(k, src_dtype, (uint64_t)t * width + i));
    vd[i] = __float2bfloat16(load_as_float(v, src_dtype, (uint64_t)t * width + i));
  }
}

// Key and value elements lane·P .. lane·P + P − 1 of position p of sequence b (zeros past `end`).
template <int P>
__device__ __forceinline__ void load_kv(const KvSegs& segs, int bs, const int32_t* __restrict__ tables, int b, int max_blocks,
                                        int p, int end, int kw, int head_off, int lane, bool active, float* kf, float* vf) {
  if (p >= end || !active) {
#pragma unroll
    for (int i = 0; i < P; i++) kf[i] = vf[i] = 0.f;
    return;
  }
  const int block = tables[b * max_blocks + p / bs];
  int seg;
  const int64_t row = locate(segs, (int64_t)block * bs + p % bs, bs, &seg);
  const __nv_bfloat16* kr = segs.k[seg] + row * kw + head_off + lane * P;
  const __nv_bfloat16* vr = segs.v[seg] + row * kw + head_off + lane * P;
#pragma unroll
  for (int i = 0; i < P; i++) {
    kf[i] = __bfloat162float(kr[i]);
    vf[i] = __bfloat162float(vr[i]);
  }
}

// grid (T, Hkv, splits), kWarps warps. Each lane holds D/32 consecutive dims of every query head
// of the group; warps take positions round-robin with an online softmax each, then combine.
template <int D>
__global__ void __launch_bounds__(kWarps * 32) paged_attention_kernel(
    const __nv_bfloat16* __restrict__ q, KvSegs segs, int bs, const int32_t* __restrict__ tables, int max_blocks,
    const int32_t* __restrict__ cu_q, const int32_t* __restrict__ ctx_lens, int B, int Hq, int Hkv, float scale,
    int split_len, __nv_bfloat16* __restrict__ o, float* __restrict__ part_acc, float* __restrict__ part_ml, int T) {
  constexpr int P = D >= 32 ? D / 32 : 1;  // dims per lane (D = 16: half the lanes idle)
  const int t = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z, splits = gridDim.z;
  const int G = Hq / Hkv, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  // The query's sequence: the last b with cu_q[b] <= t.
  int lo = 0, hi = B - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) >> 1;
    if (cu_q[mid] <= t) lo = mid; else hi = mid - 1;
  }
  const int b = lo, nq = cu_q[b + 1] - cu_q[b];
  const int pos = ctx_lens[b] - nq + (t - cu_q[b]);
  const int begin = split * split_len, end = min(begin + split_len, pos + 1);
  const int kw = Hkv * D;
  const bool active = lane * P < D;

  float qv[kMaxGroup][P], acc[kMaxGroup][P], m[kMaxGroup], l[kMaxGroup];
#pragma unroll
  for (int g = 0; g < kMaxGroup; g++) {
    m[g] = -INFINITY;
    l[g] = 0.f;
#pragma unroll
    for (int p = 0; p < P; p++) {
      acc[g][p] = 0.f;
      qv[g][p] = g < G && active ? __bfloat162float(q[(int64_t)t * Hq * D + (kvh * G + g) * D + lane * P + p]) * scale : 0.f;
    }
  }
  // The next position's key and value rows are loaded while this one's scores are computed, so a
  // warp has a load in flight across its dependent chain of reductions and exponentials.
  float kf[P], vf[P];
  load_kv<P>(segs, bs, tables, b, max_blocks, begin + warp, end, kw, kvh * D, lane, active, kf, vf);
  for (int p = begin + warp; p < end; p += kWarps) {
    float kn[P], vn[P];
    load_kv<P>(segs, bs, tables, b, max_blocks, p + kWarps, end, kw, kvh * D, lane, active, kn, vn);
#pragma unroll
    for (int g = 0; g < kMaxGroup; g++) {
      if (g >= G) break;
      float s = 0.f;
#pragma unroll
      for (int i = 0; i < P; i++) s += qv[g][i] * kf[i];
      s = warp_sum(s);
      const float mn = fmaxf(m[g], s), corr = __expf(m[g] - mn), e = __expf(s - mn);
      l[g] = l[g] * corr + e;
#pragma unroll
      for (int i = 0; i < P; i++) acc[g][i] = acc[g][i] * corr + e * vf[i];
      m[g] = mn;
    }
#pragma unroll
    for (int i = 0; i < P; i++) {
      kf[i] = kn[i];
      vf[i] = vn[i];
    }
  }
  // Combine the warps: M = max m, L = Σ l e^(m−M), A = Σ acc e^(m−M).
  __shared__ float sm_m[kWarps][kMaxGroup], sm_l[kWarps][kMaxGroup];
  __shared__ float sm_acc[kWarps][kMaxGroup][D];
#pragma unroll
  for (int g = 0; g < kMaxGroup; g++) {
    if (g >= G) break;
    if (lane == 0) { sm_m[warp][g] = m[g]; sm_l[warp][g] = l[g]; }
    if (active)
#pragma unroll
      for (int i = 0; i < P; i++) sm_acc[warp][g][lane * P + i] = acc[g][i];
  }
  __syncthreads();
  for (int e = threadIdx.x; e < G * D; e += blockDim.x) {
    const int g = e / D, d = e % D;
    float M = -INFINITY;
    for (int w = 0; w < kWarps; w++) M = fmaxf(M, sm_m[w][g]);
    float L = 0.f, A = 0.f;
    if (M != -INFINITY) {
      for (int w = 0; w < kWarps; w++) {
        const float f = __expf(sm_m[w][g] - M);
        L += sm_l[w][g] * f;
        A += sm_acc[w][g][d] * f;
      }
    }
    const int h = kvh * G + g;
    if (splits == 1) {
      o[(int64_t)t * Hq * D + h * D + d] = __float2bfloat16(L > 0.f ? A / L : 0.f);
    } else {
      const int64_t r = ((int64_t)split * T + t) * Hq + h;
      part_acc[r * D + d] = A;
      if (d == 0) { part_ml[2 * r] = M; part_ml[2 * r + 1] = L; }
    }
  }
}

// grid (T, Hq), D threads: o = Σ_s A_s e^(M_s−M) / Σ_s L_s e^(M_s−M).
__global__ void merge_splits_kernel(const float* __restrict__ part_acc, const float* __restrict__ part_ml, int splits,
                                    int T, int Hq, int D, __nv_bfloat16* __restrict__ o) {
  const int t = blockIdx.x, h = blockIdx.y, d = threadIdx.x;
  float M = -INFINITY;
  for (int s = 0; s < splits; s++) M = fmaxf(M, part_ml[2 * (((int64_t)s * T + t) * Hq + h)]);
  float L = 0.f, A = 0.f;
  if (M != -INFINITY) {
    for (int s = 0; s < splits; s++) {
      const int64_t r = ((int64_t)s * T + t) * Hq + h;
      const float f = __expf(part_ml[2 * r] - M);
      L += part_ml[2 * r + 1] * f;
      A += part_acc[r * D + d] * f;
    }
  }
  o[((int64_t)t * Hq + h) * D + d] = __float2bfloat16(L > 0.f ? A / L : 0.f);
}

tsl_status make_segs(const char* op, const uint64_t* k, const uint64_t* v, const int32_t* blocks, int32_t n, KvSegs* s) {
  TSL_REQUIRE(op, n >= 1 && n <= TSL_MAX_KV_SEGMENTS, "1..%d KV segments expected, got %d", TSL_MAX_KV_SEGMENTS, n);
  TSL_REQUIRE(op, k && v && blocks, "segment arrays must not be null");
  s->n = n;
  s->first_block[0] = 0;
  for (int i = 0; i < n; i++) {
    TSL_REQUIRE(op, k[i] && v[i] && blocks[i] > 0, "segment %d is empty or null", i);
    s->k[i] = reinterpret_cast<const __nv_bfloat16*>(k[i]);
    s->v[i] = reinterpret_cast<const __nv_bfloat16*>(v[i]);
    s->first_block[i + 1] = s->first_block[i] + blocks[i];
  }
  return TSL_OK;
}

int sm_count() {
  static int n = 0;
  if (!n) {
    int dev = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
    if (n <= 0) n = 100;
  }
  return n;
}

template <int D>
void launch_attention(dim3 grid, const void* q, const KvSegs& segs, int bs, const int32_t* tables, int max_blocks,
                      const int32_t* cu_q, const int32_t* ctx, int B, int Hq, int Hkv, float scale, int split_len, void* o,
                      float* part_acc, float* part_ml, int T) {
  paged_attention_kernel<D><<<grid, kWarps * 32, 0, compute_stream()>>>(
      static_cast<const __nv_bfloat16*>(q), segs, bs, tables, max_blocks, cu_q, ctx, B, Hq, Hkv, scale, split_len,
      static_cast<__nv_bfloat16*>(o), part_acc, part_ml, T);
}

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" tsl_status tsl_kv_cache_write(const uint64_t* h_k_segs, const uint64_t* h_v_segs, const int32_t* h_seg_blocks,
                                         int32_t num_segs, int32_t block_size, const void* d_k, const void* d_v,
                                         int32_t src_dtype, const int32_t* d_slots, int64_t T, int32_t width) {
  const char* op = "tsl_kv_cache_write";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, block_size > 0 && width > 0, "block_size and width must be positive");
  TSL_REQUIRE(op, is_float_dtype(src_dtype), "k/v dtype must be f32, bf16 or f16, got %d", src_dtype);
  KvSegs segs;
  TSL_TRY(make_segs(op, h_k_segs, h_v_segs, h_seg_blocks, num_segs, &segs));
  if (T == 0) return TSL_OK;
  kv_write_kernel<<<(unsigned)T, 128, 0, compute_stream()>>>(segs, block_size, d_k, d_v, src_dtype, d_slots, width);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

extern "C" tsl_status tsl_paged_attention(const void* d_q, const uint64_t* h_k_segs, const uint64_t* h_v_segs,
                                          const int32_t* h_seg_blocks, int32_t num_segs, int32_t block_size,
                                          const int32_t* d_block_tables, int32_t max_blocks, const int32_t* d_cu_q,
                                          const int32_t* d_context_lens, int32_t B, int64_t T, int32_t max_context_len,
                                          int32_t Hq, int32_t Hkv, int32_t D, float scale, void* d_o) {
  const char* op = "tsl_paged_attention";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, B >= 1 && Hkv >= 1 && Hq % Hkv == 0, "need B >= 1 and Hq (%d) a multiple of Hkv (%d)", Hq, Hkv);
  TSL_REQUIRE(op, Hq / Hkv <= kMaxGroup, "at most %d query heads per kv head, got %d", kMaxGroup, Hq / Hkv);
  TSL_REQUIRE(op, D == 16 || D == 32 || D == 64 || D == 128 || D == 256, "head_dim must be 16, 32, 64, 128 or 256, got %d", D);
  TSL_REQUIRE(op, block_size > 0 && max_blocks > 0 && max_context_len > 0, "block_size, max_blocks, max_context_len must be positive");
  KvSegs segs;
  TSL_TRY(make_segs(op, h_k_segs, h_v_segs, h_seg_blocks, num_segs, &segs));
  if (T == 0) return TSL_OK;
  // Split long contexts only while the grid is too small to fill the GPU (about 4 blocks per SM).
  const int64_t base_blocks = T * Hkv;
  int splits = 1;
  if (max_context_len > kSplitTokens && base_blocks < 4LL * sm_count()) {
    const int64_t want = (4LL * sm_count() + base_blocks - 1) / base_blocks;
    splits = (int)std::min<int64_t>(want, (max_context_len + kSplitTokens - 1) / kSplitTokens);
  }
  const int split_len = (max_context_len + splits - 1) / splits;
  float* part_acc = nullptr;
  float* part_ml = nullptr;
  if (splits > 1) {
    TSL_TRY(scratch_alloc(op, (uint64_t)splits * T * Hq * D * 4, reinterpret_cast<void**>(&part_acc)));
    tsl_status st = scratch_alloc(op, (uint64_t)splits * T * Hq * 2 * 4, reinterpret_cast<void**>(&part_ml));
    if (st != TSL_OK) { scratch_free(part_acc); return st; }
  }
  dim3 grid((unsigned)T, (unsigned)Hkv, (unsigned)splits);
  switch (D) {
    case 16: launch_attention<16>(grid, d_q, segs, block_size, d_block_tables, max_blocks, d_cu_q, d_context_lens, B, Hq, Hkv, scale, split_len, d_o, part_acc, part_ml, (int)T); break;
    case 32: launch_attention<32>(grid, d_q, segs, block_size, d_block_tables, max_blocks, d_cu_q, d_context_lens, B, Hq, Hkv, scale, split_len, d_o, part_acc, part_ml, (int)T); break;
    case 64: launch_attention<64>(grid, d_q, segs, block_size, d_block_tables, max_blocks, d_cu_q, d_context_lens, B, Hq, Hkv, scale, split_len, d_o, part_acc, part_ml, (int)T); break;
    case 128: launch_attention<128>(grid, d_q, segs, block_size, d_block_tables, max_blocks, d_cu_q, d_context_lens, B, Hq, Hkv, scale, split_len, d_o, part_acc, part_ml, (int)T); break;
    default: launch_attention<256>(grid, d_q, segs, block_size, d_block_tables, max_blocks, d_cu_q, d_context_lens, B, Hq, Hkv, scale, split_len, d_o, part_acc, part_ml, (int)T); break;
  }
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess && splits > 1) {
    merge_splits_kernel<<<dim3((unsigned)T, (unsigned)Hq), D, 0, compute_stream()>>>(part_acc, part_ml, splits, (int)T, Hq, D,
                                                                                      static_cast<__nv_bfloat16*>(d_o));
    e = cudaGetLastError();
  }
  // The allocator is stream-ordered on the compute stream: freeing now is safe for the queued kernels.
  scratch_free(part_acc);
  scratch_free(part_ml);
  if (e != cudaSuccess) return cuda_fail(op, e);
  return TSL_OK;
}
