// Kernel setup and programmatic dependent launch, shared by the kernels that let the next kernel
// start early (nf4_gemv.cu, nf4_gemm_small.cu): once per instantiation, the dynamic shared memory is
// opted in, the blocks that fit on an SM at once are counted (registers and shared memory; the one
// GPU a process drives), and the code that runs is checked to be built for sm_90+ (so it holds the
// griddepcontrol.wait; PTX of an older target JIT-compiled on a newer GPU does not, and must not get
// the programmatic-dependent-launch attribute).
#pragma once

#include <cuda_runtime.h>

namespace tsl {
namespace {

struct KernelSetup {
  cudaError_t error;
  int blocks_per_sm;
  bool dependent_launch;
};

template <typename Kernel>
KernelSetup setup_kernel(Kernel kernel, int threads, int smem) {
  KernelSetup s{cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem), 0, false};
  if (s.error == cudaSuccess) s.error = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&s.blocks_per_sm, kernel, threads, smem);
  cudaFuncAttributes fa;
  if (s.error == cudaSuccess) s.error = cudaFuncGetAttributes(&fa, kernel);
  s.dependent_launch = s.error == cudaSuccess && fa.binaryVersion >= 90;
  return s;
}

// Launches `kernel` with `params` (pointers to each argument); with `dependent`, it may start while
// the previous kernel on the stream is still running (it must wait with griddepcontrol.wait).
inline cudaError_t launch_dependent(const void* kernel, void** params, dim3 grid, int threads, int smem, bool dependent,
                                    cudaStream_t st) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {grid, dim3(threads), (size_t)smem, st, attr, dependent ? 1u : 0u};
  return cudaLaunchKernelExC(&cfg, kernel, params);
}

}  // namespace
}  // namespace tsl
