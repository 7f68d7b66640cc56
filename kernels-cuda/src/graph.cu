// Step graphs: the kernels one decode step launches, captured once on the compute stream and
// replayed with a single launch (CUDA graphs). A decode step of an 8B model is a few hundred small
// launches whose host-side cost (argument marshalling from JS, cudaLaunchKernel) exceeds their GPU
// time; a replay costs one call. What a graph may depend on is fixed at capture: buffer addresses
// (the allocator's graph pool keeps them reserved, allocator.cu) and launch shapes; what changes
// between replays must live in device memory that the caller rewrites before each launch.
#include "allocator.h"
#include "common.cuh"

using namespace tsl;

extern "C" {

tsl_status tsl_graph_capture_begin(void) {
  const char* op = "tsl_graph_capture_begin";
  TSL_TRY(ensure_init(op));
  TSL_TRY(allocator_capture_begin(op));
  // Relaxed: the allocator may call cudaMalloc while the capture runs (a new block for the pool).
  cudaError_t e = cudaStreamBeginCapture(compute_stream(), cudaStreamCaptureModeRelaxed);
  if (e != cudaSuccess) {
    allocator_capture_end(false);
    return cuda_fail(op, e);
  }
  return TSL_OK;
}

tsl_status tsl_graph_capture_end(uint64_t* graph_out) {
  const char* op = "tsl_graph_capture_end";
  TSL_TRY(ensure_init(op));
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  cudaError_t e = cudaStreamEndCapture(compute_stream(), &graph);
  if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, graph, 0);
  if (graph) cudaGraphDestroy(graph);
  allocator_capture_end(e == cudaSuccess);
  if (e != cudaSuccess) return cuda_fail(op, e);
  *graph_out = (uint64_t)(uintptr_t)exec;
  return TSL_OK;
}

// Ends a capture that failed part way (an op returned an error): the partial graph is dropped and
// the stream is usable again, so the caller can run the same step without a graph.
tsl_status tsl_graph_capture_abort(void) {
  const char* op = "tsl_graph_capture_abort";
  TSL_TRY(ensure_init(op));
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  cudaStreamIsCapturing(compute_stream(), &status);
  if (status != cudaStreamCaptureStatusNone) {
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(compute_stream(), &graph);
    if (graph) cudaGraphDestroy(graph);
  }
  cudaGetLastError();
  allocator_capture_end(false);
  return TSL_OK;
}

tsl_status tsl_graph_launch(uint64_t graph) {
  const char* op = "tsl_graph_launch";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, graph != 0, "no graph (capture it first)");
  TSL_CUDA(op, cudaGraphLaunch((cudaGraphExec_t)(uintptr_t)graph, compute_stream()));
  return TSL_OK;
}

tsl_status tsl_graph_destroy(uint64_t graph) {
  const char* op = "tsl_graph_destroy";
  if (!graph) return TSL_OK;
  TSL_TRY(ensure_init(op));
  // Work already queued may still be replaying it: the pool's blocks are released only after it.
  TSL_CUDA(op, cudaStreamSynchronize(compute_stream()));
  TSL_CUDA(op, cudaGraphExecDestroy((cudaGraphExec_t)(uintptr_t)graph));
  allocator_graph_destroyed();
  return TSL_OK;
}

}  // extern "C"
