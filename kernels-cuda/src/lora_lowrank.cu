// The LoRA update of an output (Hu et al. 2021), y[T, N] += s · u[T, r] · f[N, r]ᵀ at rank r ≤ 16:
// the forward's y += s·(x·aᵀ)·bᵀ and the backward's dx += s·(dy·b)·a. It is a read-modify-write
// pass over y, not arithmetic; cuBLASLt's general kernels (K = r = 16) ran it at ~60% of the copy
// rate (the device-time profile of the 8B 1 × 8192 step on an H100 put 66 ms of 960 in these
// products). Here one mma.sync m16n8k16 covers the whole rank of a 16 × 8 tile, y moves in 16-byte
// accesses, and the pass runs at ~87% of the copy rate on the 8B MLP width (bench_lora_lowrank.py).
// Operands are bf16 as cuBLASLt's were (f32 adapters cast once per call), the product accumulates
// in f32, and y is rounded once. (A twin for the skinny x·aᵀ, one mma per 16 × 8 tile reading x in
// 16-byte rows, reached 69-73% of the copy rate where cuBLASLt reached 84-95%: not kept.)
#include <stdlib.h>
#include <string.h>

#include "attention_mma.cuh"
#include "lora_lowrank.h"

namespace tsl {
namespace {

using attn::mma_bf16;
using attn::pack_bf16;

constexpr int kUpWarps = 4;     // warps per block, each over its own 64 columns
constexpr int kUpRowTiles = 4;  // 16-row tiles per warp
// Floats per row of a warp's staged 16 × 64 tile: rows 72 apart put a half-warp's float2 stores
// (8·gid + 2·tid) on all 32 banks.
constexpr int kUpStride = 72;

__device__ __forceinline__ uint4 ld16(const __nv_bfloat16* p) { return *reinterpret_cast<const uint4*>(p); }

// Elements k and k + 1 of a column (stride ld), zero from `limit` on.
__device__ __forceinline__ uint32_t ld_column_pair(const __nv_bfloat16* col, int64_t ld, int k, int limit) {
  const __nv_bfloat16 z = __float2bfloat16(0.f);
  __nv_bfloat162 v;
  v.x = k < limit ? col[k * ld] : z;
  v.y = k + 1 < limit ? col[(k + 1) * ld] : z;
  return *reinterpret_cast<uint32_t*>(&v);
}

// Two bf16 of a row (elements k and k + 1), zero where the column is at or past `limit`.
__device__ __forceinline__ uint32_t ld_pair_checked(const __nv_bfloat16* row, int k, int limit) {
  const __nv_bfloat16 z = __float2bfloat16(0.f);
  __nv_bfloat162 v;
  v.x = k < limit ? row[k] : z;
  v.y = k + 1 < limit ? row[k + 1] : z;
  return *reinterpret_cast<uint32_t*>(&v);
}

// y[T, N] += s · u[T, r] · f[N, r]ᵀ, u row-major (u(t, k) = u[t·ldu + k]) or, kUT, transposed
// (u(t, k) = u[k·ldu + t], as grouped linears keep x·aᵀ). A warp owns 64 columns (8 B tiles held in registers for the
// whole kernel) and kUpRowTiles 16-row tiles. Per tile it issues the loads of y's 16 × 64 values
// (16 bytes per lane per row, whole rows of 128 bytes per 8 lanes), meanwhile forms s · u·fᵀ with 8
// mma and stages it in shared memory, then adds and writes y back with the same 16-byte accesses.
// `vec`: N % 8 == 0 and y 16-byte aligned; otherwise element by element.
template <bool kVec, bool kUT>
__global__ void __launch_bounds__(kUpWarps * 32) lora_up_acc_kernel(__nv_bfloat16* __restrict__ y, int64_t T, int64_t N,
                                                                    const __nv_bfloat16* __restrict__ u, int64_t ldu,
                                                                    const __nv_bfloat16* __restrict__ f, int r, float s) {
  __shared__ __align__(16) float staged[kUpWarps][16 * kUpStride];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2, tid = lane & 3;
  const int64_t n0 = ((int64_t)blockIdx.x * kUpWarps + warp) * 64;
  if (n0 >= N) return;
  float* tile = staged[warp];
  uint32_t b[8][2];
#pragma unroll
  for (int t = 0; t < 8; t++) {
    const int64_t n = n0 + t * 8 + gid;
    const __nv_bfloat16* fr = f + (n < N ? n : 0) * r;
    b[t][0] = n < N ? ld_pair_checked(fr, tid * 2, r) : 0u;
    b[t][1] = n < N ? ld_pair_checked(fr, 8 + tid * 2, r) : 0u;
  }
  const int vrow = lane >> 3, vcol = (lane & 7) * 8;  // this lane's 8 columns in rows vrow + 4i
  const bool vcol_ok = n0 + vcol < N;
  for (int rt = 0; rt < kUpRowTiles; rt++) {
    const int64_t row0 = ((int64_t)blockIdx.y * kUpRowTiles + rt) * 16;
    if (row0 >= T) break;
    uint4 yv[4];
    if (kVec)
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const int64_t row = row0 + vrow + 4 * i;
        yv[i] = row < T && vcol_ok ? ld16(y + row * N + n0 + vcol) : make_uint4(0, 0, 0, 0);
      }
    uint32_t a[4];
    const bool lo_ok = row0 + gid < T, hi_ok = row0 + gid + 8 < T;
    if (kUT) {
      const __nv_bfloat16* ulo = u + (lo_ok ? row0 + gid : 0);
      const __nv_bfloat16* uhi = u + (hi_ok ? row0 + gid + 8 : 0);
      a[0] = lo_ok ? ld_column_pair(ulo, ldu, tid * 2, r) : 0u;
      a[1] = hi_ok ? ld_column_pair(uhi, ldu, tid * 2, r) : 0u;
      a[2] = lo_ok ? ld_column_pair(ulo, ldu, 8 + tid * 2, r) : 0u;
      a[3] = hi_ok ? ld_column_pair(uhi, ldu, 8 + tid * 2, r) : 0u;
    } else {
      const __nv_bfloat16* ulo = u + (lo_ok ? row0 + gid : 0) * ldu;
      const __nv_bfloat16* uhi = u + (hi_ok ? row0 + gid + 8 : 0) * ldu;
      a[0] = lo_ok ? ld_pair_checked(ulo, tid * 2, r) : 0u;
      a[1] = hi_ok ? ld_pair_checked(uhi, tid * 2, r) : 0u;
      a[2] = lo_ok ? ld_pair_checked(ulo, 8 + tid * 2, r) : 0u;
      a[3] = hi_ok ? ld_pair_checked(uhi, 8 + tid * 2, r) : 0u;
    }
    __syncwarp();  // the previous tile's reads of `tile` are done
#pragma unroll
    for (int t = 0; t < 8; t++) {
      float c[4] = {0.f, 0.f, 0.f, 0.f};
      mma_bf16(c, a, b[t][0], b[t][1]);
      *reinterpret_cast<float2*>(tile + gid * kUpStride + t * 8 + tid * 2) = make_float2(s * c[0], s * c[1]);
      *reinterpret_cast<float2*>(tile + (gid + 8) * kUpStride + t * 8 + tid * 2) = make_float2(s * c[2], s * c[3]);
    }
    __syncwarp();
    if (kVec) {
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const int64_t row = row0 + vrow + 4 * i;
        if (row >= T || !vcol_ok) continue;
        const float* d = tile + (vrow + 4 * i) * kUpStride + vcol;
        const float4 d0 = *reinterpret_cast<const float4*>(d), d1 = *reinterpret_cast<const float4*>(d + 4);
        const float dv[8] = {d0.x, d0.y, d0.z, d0.w, d1.x, d1.y, d1.z, d1.w};
        uint32_t w[4] = {yv[i].x, yv[i].y, yv[i].z, yv[i].w};
#pragma unroll
        for (int j = 0; j < 4; j++) {
          const float2 old = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&w[j]));
          w[j] = pack_bf16(old.x + dv[2 * j], old.y + dv[2 * j + 1]);
        }
        *reinterpret_cast<uint4*>(y + row * N + n0 + vcol) = make_uint4(w[0], w[1], w[2], w[3]);
      }
    } else {
      for (int e = lane; e < 16 * 64; e += 32) {
        const int64_t row = row0 + (e >> 6), col = n0 + (e & 63);
        if (row >= T || col >= N) continue;
        __nv_bfloat16* p = y + row * N + col;
        *p = __float2bfloat16(__bfloat162float(*p) + tile[(e >> 6) * kUpStride + (e & 63)]);
      }
    }
  }
}

// dst[cols, rows] = bf16(src[rows, cols])ᵀ, or dst = bf16(src) when not transposing.
__global__ void cast_bf16_kernel(const float* __restrict__ src, int64_t rows, int64_t cols, bool transpose,
                                 __nv_bfloat16* __restrict__ dst) {
  const uint64_t n = (uint64_t)rows * cols;
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x) {
    const uint64_t r = i / cols, c = i % cols;
    dst[transpose ? c * rows + r : i] = __float2bfloat16(src[i]);
  }
}

}  // namespace

bool lora_up_acc_applies(int64_t T, int64_t N, int r) {
  static const bool off = [] {
    const char* e = getenv("TSLOTH_LORA_KERNELS");
    return e && strcmp(e, "0") == 0;
  }();
  return !off && r >= 1 && r <= kLoraLowRankMax && (double)T * (double)N * 2 >= 48e6;
}

tsl_status lora_cast_bf16(const char* op, const float* src, int64_t rows, int64_t cols, bool transpose, Scratch* out) {
  TSL_TRY(scratch_alloc(op, (uint64_t)rows * cols * 2, &out->p));
  cast_bf16_kernel<<<blocks_for((uint64_t)rows * cols, 256), 256, 0, compute_stream()>>>(
      src, rows, cols, transpose, static_cast<__nv_bfloat16*>(out->p));
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

tsl_status lora_up_acc(const char* op, void* y, int64_t T, int64_t N, const void* u, int64_t ldu, bool u_transposed,
                       const void* f, int r, float s) {
  TSL_REQUIRE(op, r >= 1 && r <= kLoraLowRankMax, "lora_up_acc: r %d", r);
  if (T == 0 || N == 0) return TSL_OK;
  const int64_t row_blocks = (T + 16 * kUpRowTiles - 1) / (16 * kUpRowTiles);
  TSL_REQUIRE(op, row_blocks <= 65535, "lora_up_acc: T %lld is above %d rows", (long long)T, 65535 * 16 * kUpRowTiles);
  const dim3 grid((unsigned)((N + 64 * kUpWarps - 1) / (64 * kUpWarps)), (unsigned)row_blocks);
  const bool vec = N % 8 == 0 && ((uintptr_t)y & 15) == 0;
  const auto kernel = vec ? (u_transposed ? lora_up_acc_kernel<true, true> : lora_up_acc_kernel<true, false>)
                         : (u_transposed ? lora_up_acc_kernel<false, true> : lora_up_acc_kernel<false, false>);
  kernel<<<grid, kUpWarps * 32, 0, compute_stream()>>>(
      static_cast<__nv_bfloat16*>(y), T, N, static_cast<const __nv_bfloat16*>(u), ldu, static_cast<const __nv_bfloat16*>(f), r, s);
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}

}  // namespace tsl

using namespace tsl;

extern "C" {

tsl_status tsl_lora_up_acc(void* d_y, int64_t T, int64_t N, const void* d_u, int64_t ldu, int32_t u_transposed,
                           const void* d_f, int32_t r, float scale) {
  const char* op = "tsl_lora_up_acc";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, T >= 0 && N >= 0, "T and N must be >= 0, got %lld, %lld", (long long)T, (long long)N);
  TSL_REQUIRE(op, r >= 1 && r <= kLoraLowRankMax, "needs 1 <= r <= %d, got %d", kLoraLowRankMax, r);
  TSL_REQUIRE(op, ldu >= (u_transposed ? T : r), "ldu %lld is below the %s (%lld)", (long long)ldu,
              u_transposed ? "row count T" : "rank r", (long long)(u_transposed ? T : r));
  return lora_up_acc(op, d_y, T, N, d_u, ldu, u_transposed != 0, d_f, r, scale);
}

}  // extern "C"
