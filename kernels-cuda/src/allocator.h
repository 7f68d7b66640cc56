// Internal interface of the caching allocator (allocator.cu) for the other translation units.
#pragma once
#include <cuda_runtime.h>

#include "../include/tsloth_cuda.h"

namespace tsl {
// If `ptr` is a live block (device or pinned host), keep it from being handed out again after a
// free until the work queued on `stream` so far has finished (an in-flight async copy reads it).
tsl_status allocator_hold_until(const char* op, const void* ptr, cudaStream_t stream);
cudaStream_t copy_stream();
}  // namespace tsl
