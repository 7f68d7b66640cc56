// mma.sync m16n8k16 (bf16 in, f32 accumulate, sm_80+) and the fragment loads the register-tile
// attention kernels share. Fragment layout (PTX ISA, "Matrix Fragments for mma.m16n8k16"), with
// gid = lane / 4 and tid = lane % 4:
//   A 16×16 row-major: a0 = (gid, 2tid..2tid+1), a1 = (gid+8, same), a2 = (gid, 8+2tid..), a3 = (gid+8, 8+2tid..)
//   B 16×8:            b0 = (k 2tid..2tid+1, n gid), b1 = (k 8+2tid.., n gid)
//   C 16×8 f32:        c0,c1 = (gid, 2tid..2tid+1), c2,c3 = (gid+8, same)
// so two C tiles side by side re-pack as one A operand of the next product (FlashAttention-2's P·V).
#pragma once
#include "attention.cuh"

namespace tsl {
namespace attn {

__device__ __forceinline__ void mma_bf16(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t ld32(const __nv_bfloat16* p) { return *reinterpret_cast<const uint32_t*>(p); }

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ uint32_t pack_raw(__nv_bfloat16 lo, __nv_bfloat16 hi) {
  __nv_bfloat162 v;
  v.x = lo;
  v.y = hi;
  return *reinterpret_cast<uint32_t*>(&v);
}

// A fragment (16 rows × 16 columns starting at col) of a row-major bf16 tile with row stride ld.
__device__ __forceinline__ void load_a(uint32_t* a, const __nv_bfloat16* tile, int ld, int col, int gid, int tid) {
  a[0] = ld32(tile + gid * ld + col + tid * 2);
  a[1] = ld32(tile + (gid + 8) * ld + col + tid * 2);
  a[2] = ld32(tile + gid * ld + col + 8 + tid * 2);
  a[3] = ld32(tile + (gid + 8) * ld + col + 8 + tid * 2);
}

// B fragment for X·Yᵀ where Y is row-major [n][k] in shared memory: rows n0.., columns k0...
__device__ __forceinline__ void load_b_t(uint32_t* b, const __nv_bfloat16* y, int ld, int n0, int k0, int gid, int tid) {
  const __nv_bfloat16* p = y + (n0 + gid) * ld + k0 + tid * 2;
  b[0] = ld32(p);
  b[1] = ld32(p + 8);
}

// B fragment for X·Y where Y is row-major [k][n]: rows k0.., columns n0.. (two 16-bit loads each).
__device__ __forceinline__ void load_b_n(uint32_t* b, const __nv_bfloat16* y, int ld, int k0, int n0, int gid, int tid) {
  const __nv_bfloat16* p = y + (k0 + tid * 2) * ld + n0 + gid;
  b[0] = pack_raw(p[0], p[ld]);
  b[1] = pack_raw(p[8 * ld], p[9 * ld]);
}

// ldmatrix (sm_75+): one instruction loads four 8×8 bf16 matrices, lane l giving the row address
// of matrix l / 8, and hands every lane its mma fragment pieces; .trans transposes on the way, so
// a row-major [k][n] tile gives B fragments directly. Replaces 2–4 scalar shared loads per fragment.
__device__ __forceinline__ uint32_t smem_addr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void ldsm_x4(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldsm_x4_t(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// A fragment of rows 0..15, columns col..col+15 of a row-major tile (ld elements per row).
__device__ __forceinline__ void ldsm_a(uint32_t* a, const __nv_bfloat16* tile, int ld, int col, int lane) {
  ldsm_x4(a, tile + (lane & 15) * ld + col + (lane >> 4) * 8);
}

// B fragments of X·Yᵀ for two 8-wide n tiles (rows n0..n0+15 of row-major Y[n][k]), k0..k0+15:
// b[0], b[1] for rows n0..n0+7 and b[2], b[3] for n0+8..n0+15.
__device__ __forceinline__ void ldsm_bt2(uint32_t* b, const __nv_bfloat16* y, int ld, int n0, int k0, int lane) {
  ldsm_x4(b, y + (n0 + (lane & 7) + ((lane >> 4) << 3)) * ld + k0 + ((lane >> 3) & 1) * 8);
}

// B fragments of X·Y for two 8-wide n tiles (columns n0..n0+15 of row-major Y[k][n]), rows k0..k0+15.
__device__ __forceinline__ void ldsm_bn2(uint32_t* b, const __nv_bfloat16* y, int ld, int k0, int n0, int lane) {
  ldsm_x4_t(b, y + (k0 + (lane & 15)) * ld + n0 + (lane >> 4) * 8);
}

// cp.async (sm_80+): global → shared without passing through registers, so the next tile's loads
// overlap this tile's math (FlashAttention-2's pipelining). src_bytes 0 zero-fills the destination.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes));
}

__device__ __forceinline__ void cp_async4(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Asynchronous load_tile for a block of kThreads threads: kRows rows of head `head` from packed token
// tok0 into a padded tile; rows at or past `valid` are zero-filled (their source address is the
// tensor's start, never read). Compile-time counts let the loop unroll with constant strides: the
// per-chunk index and 64-bit address arithmetic of a runtime loop cost as much as the copies.
template <int D, int kRows, int kThreads>
__device__ __forceinline__ void cp_tile(__nv_bfloat16* s, const __nv_bfloat16* __restrict__ g, int64_t tok0, int valid,
                                        int64_t stride, int head) {
  constexpr int vecs = D / 8, rows_per_pass = kThreads / vecs;
  static_assert(kThreads % vecs == 0 && kRows % rows_per_pass == 0, "tile must split evenly over the block");
  const int r0 = threadIdx.x / vecs, c = threadIdx.x % vecs;
  const __nv_bfloat16* src = g + (tok0 + r0) * stride + (int64_t)head * D + c * 8;
  __nv_bfloat16* dst = s + r0 * kRow<D> + c * 8;
#pragma unroll
  for (int i = 0; i < kRows / rows_per_pass; i++) {
    const bool ok = r0 + i * rows_per_pass < valid;
    cp_async16(dst + i * rows_per_pass * kRow<D>, ok ? src + (int64_t)i * rows_per_pass * stride : g, ok ? 16 : 0);
  }
}

// 2^x on the special-function unit, denormals flushed (p below 2^-126 is 0 for softmax purposes);
// exp2f without fast-math adds a denormal-scaling sequence around the same instruction.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Adds four consecutive floats (16-byte aligned) in one L2 reduction where sm_90 has the vector form.
__device__ __forceinline__ void red_add4(float* p, float a, float b, float c, float d) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"l"(p), "f"(a), "f"(b), "f"(c), "f"(d) : "memory");
#else
  atomicAdd(p, a);
  atomicAdd(p + 1, b);
  atomicAdd(p + 2, c);
  atomicAdd(p + 3, d);
#endif
}

}  // namespace attn
}  // namespace tsl
