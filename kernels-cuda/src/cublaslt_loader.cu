// Opens cuBLASLt at run time. Search order: $TSLOTH_CUBLASLT, then the sonames of CUDA 13 and 12
// (dlopen also finds a copy already loaded by the process, e.g. by PyTorch).
#include <dlfcn.h>
#include <stdlib.h>

#include <mutex>

#include "cublaslt.h"

namespace tsl {
namespace lt {
namespace {

std::once_flag g_once;
Api g_api;
bool g_ok = false;
const char* g_why = "cuBLASLt not loaded";

template <typename F>
bool sym(void* lib, const char* name, F* out) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  return *out != nullptr;
}

void load() {
  const char* candidates[] = {getenv("TSLOTH_CUBLASLT"),
                              "libcublasLt.so.13",
                              "libcublasLt.so.12",
                              "libcublasLt.so",
                              "/usr/local/cuda/lib64/libcublasLt.so.13",
                              "/usr/local/cuda/lib64/libcublasLt.so.12"};
  void* lib = nullptr;
  for (const char* c : candidates)
    if (c && *c && (lib = dlopen(c, RTLD_NOW | RTLD_LOCAL))) break;
  if (!lib) {
    g_why = "cannot open libcublasLt.so.13/.so.12/.so (install the CUDA toolkit's cuBLAS or set TSLOTH_CUBLASLT to its path)";
    return;
  }
  bool ok = sym(lib, "cublasLtCreate", &g_api.create) && sym(lib, "cublasLtMatmulDescCreate", &g_api.matmulDescCreate) &&
            sym(lib, "cublasLtMatmulDescDestroy", &g_api.matmulDescDestroy) &&
            sym(lib, "cublasLtMatmulDescSetAttribute", &g_api.matmulDescSetAttribute) &&
            sym(lib, "cublasLtMatrixLayoutCreate", &g_api.matrixLayoutCreate) &&
            sym(lib, "cublasLtMatrixLayoutDestroy", &g_api.matrixLayoutDestroy) &&
            sym(lib, "cublasLtMatmulPreferenceCreate", &g_api.preferenceCreate) &&
            sym(lib, "cublasLtMatmulPreferenceDestroy", &g_api.preferenceDestroy) &&
            sym(lib, "cublasLtMatmulPreferenceSetAttribute", &g_api.preferenceSetAttribute) &&
            sym(lib, "cublasLtMatmulAlgoGetHeuristic", &g_api.algoGetHeuristic) && sym(lib, "cublasLtMatmul", &g_api.matmul);
  if (!sym(lib, "cublasLtGetStatusString", &g_api.getStatusString)) g_api.getStatusString = nullptr;
  if (!ok) {
    g_why = "libcublasLt was found but lacks a cublasLt function this library needs (too old?)";
    return;
  }
  g_ok = true;
}

}  // namespace

const Api* api(const char** why) {
  std::call_once(g_once, load);
  if (why) *why = g_why;
  return g_ok ? &g_api : nullptr;
}

}  // namespace lt
}  // namespace tsl
