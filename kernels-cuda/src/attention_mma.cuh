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

}  // namespace attn
}  // namespace tsl
