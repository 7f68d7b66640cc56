// Device selection, the compute and copy streams, the thread-local error message, copies and
// events (the `unsloth` checkpointing offload moves layer inputs on the copy stream).
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <mutex>

#include "allocator.h"
#include "common.cuh"

namespace tsl {

static thread_local char g_error[1024] = "";
static std::mutex g_any_error_mutex;
static char g_any_error[1024] = "";
static std::mutex g_init_mutex;
static bool g_initialized = false;
static int g_device = 0;
static cudaStream_t g_compute = nullptr;
static cudaStream_t g_copy = nullptr;
static cudaStream_t g_own_compute = nullptr;
static thread_local int g_thread_device = -1;

tsl_status fail(tsl_status code, const char* op, const char* fmt, ...) {
  int n = snprintf(g_error, sizeof g_error, "%s: ", op);
  if (n < 0 || n >= (int)sizeof g_error) n = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_error + n, sizeof g_error - n, fmt, ap);
  va_end(ap);
  std::lock_guard<std::mutex> lock(g_any_error_mutex);
  memcpy(g_any_error, g_error, sizeof g_error);
  return code;
}

tsl_status cuda_fail(const char* op, cudaError_t err) {
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  tsl_status code = err == cudaErrorMemoryAllocation ? TSL_ERR_OOM
                    : (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) ? TSL_ERR_NO_DEVICE
                                                                                          : TSL_ERR_CUDA;
  return fail(code, op, "CUDA error %s (%s)", cudaGetErrorName(err), cudaGetErrorString(err));
}

cudaStream_t compute_stream() { return g_compute; }
cudaStream_t copy_stream() { return g_copy; }

tsl_status ensure_init(const char* op) {
  if (!g_initialized) {
    tsl_status s = tsl_init(0);
    if (s != TSL_OK) return s;
  }
  // The runtime's current device is per thread; koffi's async calls arrive on worker threads.
  if (g_thread_device != g_device) {
    cudaError_t e = cudaSetDevice(g_device);
    if (e != cudaSuccess) return cuda_fail(op, e);
    g_thread_device = g_device;
  }
  return TSL_OK;
}

}  // namespace tsl

using namespace tsl;

extern "C" {

int32_t tsl_abi_version(void) { return TSL_ABI_VERSION; }

const char* tsl_last_error(void) { return g_error; }

int32_t tsl_last_error_any(char* buf, int32_t size) {
  std::lock_guard<std::mutex> lock(g_any_error_mutex);
  if (size <= 0) return 0;
  strncpy(buf, g_any_error, size - 1);
  buf[size - 1] = 0;
  return (int32_t)strlen(buf);
}

int32_t tsl_device_count(void) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

tsl_status tsl_init(int32_t device) {
  std::lock_guard<std::mutex> lock(g_init_mutex);
  if (g_initialized) {
    if (device != g_device) return fail(TSL_ERR_INVALID, "tsl_init", "already initialized on device %d, asked for %d", g_device, device);
    return TSL_OK;
  }
  int n = tsl_device_count();
  if (n == 0) return fail(TSL_ERR_NO_DEVICE, "tsl_init", "no CUDA device found (driver missing or no GPU visible)");
  if (device < 0 || device >= n) return fail(TSL_ERR_INVALID, "tsl_init", "device %d out of range (found %d)", device, n);
  TSL_CUDA("tsl_init", cudaSetDevice(device));
  // Non-blocking streams: neither synchronizes with the legacy default stream, so the copy stream
  // can overlap with compute (the whole point of the offload).
  TSL_CUDA("tsl_init", cudaStreamCreateWithFlags(&g_own_compute, cudaStreamNonBlocking));
  g_compute = g_own_compute;
  TSL_CUDA("tsl_init", cudaStreamCreateWithFlags(&g_copy, cudaStreamNonBlocking));
  g_device = device;
  g_thread_device = device;
  g_initialized = true;
  return TSL_OK;
}

tsl_status tsl_get_device_info(tsl_device_info* out) {
  TSL_TRY(ensure_init("tsl_get_device_info"));
  cudaDeviceProp p;
  TSL_CUDA("tsl_get_device_info", cudaGetDeviceProperties(&p, g_device));
  memset(out, 0, sizeof *out);
  strncpy(out->name, p.name, sizeof out->name - 1);
  out->major = p.major;
  out->minor = p.minor;
  out->multiprocessors = p.multiProcessorCount;
  size_t fr = 0, tot = 0;
  TSL_CUDA("tsl_get_device_info", cudaMemGetInfo(&fr, &tot));
  out->free_bytes = fr;
  out->total_bytes = tot;
  cudaRuntimeGetVersion(&out->runtime_version);
  cudaDriverGetVersion(&out->driver_version);
  return TSL_OK;
}

tsl_status tsl_synchronize(void) {
  TSL_TRY(ensure_init("tsl_synchronize"));
  TSL_CUDA("tsl_synchronize", cudaStreamSynchronize(g_compute));
  return TSL_OK;
}

tsl_status tsl_set_compute_stream(uint64_t stream) {
  TSL_TRY(ensure_init("tsl_set_compute_stream"));
  TSL_CUDA("tsl_set_compute_stream", cudaStreamSynchronize(g_compute));
  g_compute = stream ? (cudaStream_t)(uintptr_t)stream : g_own_compute;
  return TSL_OK;
}

tsl_status tsl_upload(void* d_dst, const void* h_src, uint64_t bytes) {
  TSL_TRY(ensure_init("tsl_upload"));
  if (bytes == 0) return TSL_OK;
  TSL_CUDA("tsl_upload", cudaMemcpyAsync(d_dst, h_src, bytes, cudaMemcpyHostToDevice, g_compute));
  TSL_CUDA("tsl_upload", cudaStreamSynchronize(g_compute));
  return TSL_OK;
}

tsl_status tsl_download(void* h_dst, const void* d_src, uint64_t bytes) {
  TSL_TRY(ensure_init("tsl_download"));
  if (bytes == 0) return TSL_OK;
  TSL_CUDA("tsl_download", cudaMemcpyAsync(h_dst, d_src, bytes, cudaMemcpyDeviceToHost, g_compute));
  TSL_CUDA("tsl_download", cudaStreamSynchronize(g_compute));
  return TSL_OK;
}

tsl_status tsl_copy_d2d(void* d_dst, const void* d_src, uint64_t bytes) {
  TSL_TRY(ensure_init("tsl_copy_d2d"));
  if (bytes == 0) return TSL_OK;
  TSL_CUDA("tsl_copy_d2d", cudaMemcpyAsync(d_dst, d_src, bytes, cudaMemcpyDeviceToDevice, g_compute));
  return TSL_OK;
}

tsl_status tsl_memset_zero(void* d_dst, uint64_t bytes) {
  TSL_TRY(ensure_init("tsl_memset_zero"));
  if (bytes == 0) return TSL_OK;
  TSL_CUDA("tsl_memset_zero", cudaMemsetAsync(d_dst, 0, bytes, g_compute));
  return TSL_OK;
}

// Both directions: the copy stream first waits for the compute stream's work so far (the source
// was written there, or the destination block was last used there), then copies, then records.
static tsl_status copy_async(const char* op, void* dst, const void* src, uint64_t bytes, cudaMemcpyKind kind,
                             const void* keep_alive, uint64_t* event_out) {
  TSL_TRY(ensure_init(op));
  cudaEvent_t ready, done;
  TSL_CUDA(op, cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
  TSL_CUDA(op, cudaEventRecord(ready, g_compute));
  TSL_CUDA(op, cudaStreamWaitEvent(g_copy, ready, 0));
  cudaEventDestroy(ready);
  if (bytes) TSL_CUDA(op, cudaMemcpyAsync(dst, src, bytes, kind, g_copy));
  TSL_CUDA(op, cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  TSL_CUDA(op, cudaEventRecord(done, g_copy));
  TSL_TRY(allocator_hold_until(op, keep_alive, g_copy));
  *event_out = (uint64_t)(uintptr_t)done;
  return TSL_OK;
}

tsl_status tsl_copy_d2h_async(void* h_dst, const void* d_src, uint64_t bytes, uint64_t* event_out) {
  return copy_async("tsl_copy_d2h_async", h_dst, d_src, bytes, cudaMemcpyDeviceToHost, d_src, event_out);
}

tsl_status tsl_copy_h2d_async(void* d_dst, const void* h_src, uint64_t bytes, uint64_t* event_out) {
  return copy_async("tsl_copy_h2d_async", d_dst, h_src, bytes, cudaMemcpyHostToDevice, h_src, event_out);
}

tsl_status tsl_event_wait(uint64_t event) {
  TSL_TRY(ensure_init("tsl_event_wait"));
  TSL_CUDA("tsl_event_wait", cudaStreamWaitEvent(g_compute, (cudaEvent_t)(uintptr_t)event, 0));
  return TSL_OK;
}

tsl_status tsl_event_sync(uint64_t event) {
  TSL_TRY(ensure_init("tsl_event_sync"));
  TSL_CUDA("tsl_event_sync", cudaEventSynchronize((cudaEvent_t)(uintptr_t)event));
  return TSL_OK;
}

tsl_status tsl_event_query(uint64_t event, int32_t* done) {
  TSL_TRY(ensure_init("tsl_event_query"));
  cudaError_t e = cudaEventQuery((cudaEvent_t)(uintptr_t)event);
  if (e == cudaErrorNotReady) {
    cudaGetLastError();
    *done = 0;
    return TSL_OK;
  }
  if (e != cudaSuccess) return cuda_fail("tsl_event_query", e);
  *done = 1;
  return TSL_OK;
}

tsl_status tsl_event_destroy(uint64_t event) {
  TSL_TRY(ensure_init("tsl_event_destroy"));
  TSL_CUDA("tsl_event_destroy", cudaEventDestroy((cudaEvent_t)(uintptr_t)event));
  return TSL_OK;
}

}  // extern "C"
