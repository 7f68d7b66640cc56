// Internal interface of the caching allocator (allocator.cu) for the other translation units.
#pragma once
#include <cuda_runtime.h>

#include "../include/tsloth_cuda.h"

namespace tsl {
// If `ptr` is a live block (device or pinned host), keep it from being handed out again after a
// free until the work queued on `stream` so far has finished (an in-flight async copy reads it).
tsl_status allocator_hold_until(const char* op, const void* ptr, cudaStream_t stream);
cudaStream_t copy_stream();
// Graph capture (graph.cu): between begin and end, device allocations come from the graph pool,
// whose blocks stay reserved while any captured graph exists.
tsl_status allocator_capture_begin(const char* op);
void allocator_capture_end(bool graph_kept);
void allocator_graph_destroyed();
}  // namespace tsl
