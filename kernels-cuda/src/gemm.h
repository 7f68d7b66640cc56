// Internal GEMM entry for the ops that chain matmuls (linear, cross-entropy).
#pragma once
#include "common.cuh"

namespace tsl {
// Row-major C[M,N] = alpha·op(A)[M,K]·op(B)[K,N] + beta·C (+ bias[N], bias dtype = c_dtype).
// ta: A stored [K,M]; tb: B stored [N,K]. cuBLASLt when it loads, else a plain tiled kernel.
tsl_status gemm(const char* op, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
                const void* B, int ab_dtype, float beta, void* C, int c_dtype, const void* bias);
// As gemm, with the row strides (elements) of the stored A, B and C given: lda >= (ta ? M : K),
// ldb >= (tb ? K : N), ldc >= N, so an operand or the output may be a block of columns of a wider
// matrix (the grouped LoRA linears' [T, Σr] xa and g).
tsl_status gemm_ld(const char* op, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
                   int64_t lda, const void* B, int64_t ldb, int ab_dtype, float beta, void* C, int64_t ldc, int c_dtype,
                   const void* bias);
}  // namespace tsl
