// The few cuBLASLt declarations the GEMM uses, written out here so the build needs no cuBLAS
// headers or libraries: the library is opened with dlopen at the first GEMM (DESIGN.md: "GEMM:
// cuBLASLt, loaded at run time"). Values follow the cuBLASLt API reference (cublasLt.h, CUDA 12/13).
#pragma once
#include <library_types.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

namespace tsl {
namespace lt {

typedef int cublasStatus_t;  // 0 = CUBLAS_STATUS_SUCCESS
typedef void* Handle;
typedef void* MatmulDesc;
typedef void* MatrixLayout;
typedef void* Preference;

struct MatmulAlgo {
  uint64_t data[8];
};

struct HeuristicResult {
  MatmulAlgo algo;
  size_t workspaceSize;
  cublasStatus_t state;
  float wavesCount;
  int reserved[4];
};

enum : int { COMPUTE_32F = 68 };                                   // cublasComputeType_t
enum : int { OP_N = 0, OP_T = 1 };                                 // cublasOperation_t
enum : int { DESC_TRANSA = 3, DESC_TRANSB = 4, DESC_EPILOGUE = 7, DESC_BIAS_POINTER = 8 };
enum : uint32_t { EPILOGUE_DEFAULT = 1, EPILOGUE_BIAS = 4 };
enum : int { PREF_MAX_WORKSPACE_BYTES = 1 };

struct Api {
  cublasStatus_t (*create)(Handle*);
  cublasStatus_t (*matmulDescCreate)(MatmulDesc*, int computeType, cudaDataType_t scaleType);
  cublasStatus_t (*matmulDescDestroy)(MatmulDesc);
  cublasStatus_t (*matmulDescSetAttribute)(MatmulDesc, int attr, const void* buf, size_t size);
  cublasStatus_t (*matrixLayoutCreate)(MatrixLayout*, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld);
  cublasStatus_t (*matrixLayoutDestroy)(MatrixLayout);
  cublasStatus_t (*preferenceCreate)(Preference*);
  cublasStatus_t (*preferenceDestroy)(Preference);
  cublasStatus_t (*preferenceSetAttribute)(Preference, int attr, const void* buf, size_t size);
  cublasStatus_t (*algoGetHeuristic)(Handle, MatmulDesc, MatrixLayout a, MatrixLayout b, MatrixLayout c, MatrixLayout d,
                                     Preference, int requested, HeuristicResult* results, int* returned);
  cublasStatus_t (*matmul)(Handle, MatmulDesc, const void* alpha, const void* A, MatrixLayout, const void* B, MatrixLayout,
                           const void* beta, const void* C, MatrixLayout, void* D, MatrixLayout, const MatmulAlgo* algo,
                           void* workspace, size_t workspaceSize, cudaStream_t stream);
  const char* (*getStatusString)(cublasStatus_t);
};

// The loaded API, or null (with the reason in *why) when cuBLASLt cannot be opened.
const Api* api(const char** why);

}  // namespace lt
}  // namespace tsl
