// A caching allocator with per-category accounting, what the VRAM plots and the estimator read.
// cudaMalloc/cudaFree synchronize the device and cost tens of microseconds to milliseconds, and
// a training step frees and re-asks for the same activation sizes every layer, so freed blocks
// are kept in size-keyed free lists and handed out again (the scheme PyTorch's caching allocator
// uses). Sizes are rounded (512 B below 1 MiB, 2 MiB above) so that near sizes share blocks.
#include <map>
#include <mutex>
#include <unordered_map>

#include "allocator.h"
#include "common.cuh"

namespace tsl {
namespace {

constexpr uint64_t kSmallLimit = 1ull << 20;
constexpr uint64_t kSmallRound = 512;
constexpr uint64_t kLargeRound = 2ull << 20;

struct Block {
  void* ptr = nullptr;
  uint64_t size = 0;
  int32_t category = 0;
  cudaEvent_t pending = nullptr;  // work that still reads/writes the block after its free
};

struct Pool {
  bool host = false;
  std::unordered_map<void*, Block> live;
  std::multimap<uint64_t, Block> cached;
  uint64_t cached_bytes = 0;
};

std::mutex g_mutex;
Pool g_device_pool;
Pool g_host_pool = [] { Pool p; p.host = true; return p; }();
// Blocks that captured graphs read and write when replayed (graph.cu). While a capture runs, device
// allocations come from here, and the blocks stay reserved for the graphs until the last one is
// destroyed: a replay writes to the addresses the capture saw, so nobody else may hold them. One
// pool serves every graph because graphs replay one at a time on the compute stream, and a tensor
// that outlives its step (a graph's output) stays live here, never cached for another graph.
Pool g_graph_pool;
bool g_capturing = false;
int g_graphs = 0;
uint64_t g_graph_accounted = 0;  // graph-pool cache bytes shown under workspace while graphs exist
uint64_t g_current[TSL_NUM_CATEGORIES] = {0};
uint64_t g_peak[TSL_NUM_CATEGORIES] = {0};
uint64_t g_peak_device_total = 0;
tsl_oom_info g_last_oom = {};

uint64_t round_size(uint64_t n) {
  if (n == 0) n = 1;
  uint64_t r = n < kSmallLimit ? kSmallRound : kLargeRound;
  return (n + r - 1) / r * r;
}

uint64_t device_total_current() {
  uint64_t s = 0;
  for (int c = 0; c < TSL_NUM_CATEGORIES; c++)
    if (c != TSL_CAT_OFFLOAD_HOST) s += g_current[c];
  return s;
}

void account(int32_t category, int64_t delta) {
  g_current[category] += delta;
  if (g_current[category] > g_peak[category]) g_peak[category] = g_current[category];
  uint64_t dev = device_total_current();
  if (dev > g_peak_device_total) g_peak_device_total = dev;
}

// A cached block is reused only if it wastes at most a quarter of itself: a huge freed buffer
// must not be spent on a small request while a large one later has to hit cudaMalloc.
bool take_cached(Pool& pool, uint64_t size, Block* out) {
  auto it = pool.cached.lower_bound(size);
  if (it == pool.cached.end() || it->first > size + size / 4) return false;
  *out = it->second;
  pool.cached_bytes -= it->first;
  pool.cached.erase(it);
  return true;
}

void release_cached(Pool& pool) {
  for (auto& kv : pool.cached) {
    if (kv.second.pending) cudaEventDestroy(kv.second.pending);
    if (pool.host) cudaFreeHost(kv.second.ptr);
    else cudaFree(kv.second.ptr);
  }
  pool.cached.clear();
  pool.cached_bytes = 0;
}

tsl_status out_of_memory(const char* op, uint64_t asked, int32_t category, bool host) {
  size_t fr = 0, tot = 0;
  cudaMemGetInfo(&fr, &tot);
  cudaGetLastError();
  g_last_oom = {};
  g_last_oom.asked = asked;
  g_last_oom.free_bytes = fr;
  g_last_oom.total_bytes = tot;
  g_last_oom.category = category;
  for (int c = 0; c < TSL_NUM_CATEGORIES; c++) g_last_oom.in_use[c] = g_current[c];
  return fail(TSL_ERR_OOM, op, "out of %s memory: asked for %llu bytes, %llu free of %llu",
              host ? "pinned host" : "device", (unsigned long long)asked, (unsigned long long)fr,
              (unsigned long long)tot);
}

void account_graph_reserve();

tsl_status pool_alloc(const char* op, Pool& pool, uint64_t bytes, int32_t category, void** out) {
  uint64_t size = round_size(bytes);
  Block b;
  if (take_cached(pool, size, &b)) {
    if (b.pending) {
      // Device blocks: later compute work waits on the GPU; host blocks: the host waits.
      cudaError_t e = pool.host ? cudaEventSynchronize(b.pending) : cudaStreamWaitEvent(compute_stream(), b.pending, 0);
      cudaEventDestroy(b.pending);
      b.pending = nullptr;
      if (e != cudaSuccess) return cuda_fail(op, e);
    }
  } else {
    void* p = nullptr;
    cudaError_t e = pool.host ? cudaHostAlloc(&p, size, cudaHostAllocDefault) : cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cached(pool);
      e = pool.host ? cudaHostAlloc(&p, size, cudaHostAllocDefault) : cudaMalloc(&p, size);
      if (e == cudaErrorMemoryAllocation) return out_of_memory(op, size, category, pool.host);
    }
    if (e != cudaSuccess) return cuda_fail(op, e);
    b.ptr = p;
    b.size = size;
  }
  b.category = category;
  pool.live[b.ptr] = b;
  account(category, (int64_t)b.size);
  if (&pool == &g_graph_pool) account_graph_reserve();
  *out = b.ptr;
  return TSL_OK;
}

Pool& device_pool() { return g_capturing ? g_graph_pool : g_device_pool; }

// The graph pool's cached (reserved, not live) bytes count as workspace while graphs own them.
void account_graph_reserve() {
  const uint64_t want = (g_capturing || g_graphs > 0) ? g_graph_pool.cached_bytes : 0;
  account(TSL_CAT_WORKSPACE, (int64_t)want - (int64_t)g_graph_accounted);
  g_graph_accounted = want;
}

// With no capture running and no graph alive, the graph pool's cache goes back to the general one.
void dissolve_graph_pool() {
  if (g_capturing || g_graphs > 0) return;
  for (auto& kv : g_graph_pool.cached) g_device_pool.cached.emplace(kv.first, kv.second);
  g_device_pool.cached_bytes += g_graph_pool.cached_bytes;
  g_graph_pool.cached.clear();
  g_graph_pool.cached_bytes = 0;
  account_graph_reserve();
}

tsl_status pool_free(const char* op, Pool& pool, void* ptr) {
  auto it = pool.live.find(ptr);
  if (it == pool.live.end()) return fail(TSL_ERR_INVALID, op, "pointer %p was not allocated here or was already freed", ptr);
  Block b = it->second;
  pool.live.erase(it);
  account(b.category, -(int64_t)b.size);
  pool.cached.emplace(b.size, b);
  pool.cached_bytes += b.size;
  if (&pool == &g_graph_pool) account_graph_reserve();
  return TSL_OK;
}

// Frees a device block wherever it lives. A block allocated before a capture and freed during it
// joins the graph pool: later captured work may reuse it, so eager work must not get it back.
tsl_status device_free(const char* op, void* ptr) {
  if (g_graph_pool.live.count(ptr)) {
    TSL_TRY(pool_free(op, g_graph_pool, ptr));
    dissolve_graph_pool();
    return TSL_OK;
  }
  if (g_capturing && g_device_pool.live.count(ptr)) {
    Block b = g_device_pool.live[ptr];
    g_device_pool.live.erase(ptr);
    g_graph_pool.live[ptr] = b;
    return pool_free(op, g_graph_pool, ptr);
  }
  return pool_free(op, g_device_pool, ptr);
}

}  // namespace

tsl_status allocator_hold_until(const char* op, const void* ptr, cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (Pool* pool : {&g_device_pool, &g_graph_pool, &g_host_pool}) {
    auto it = pool->live.find(const_cast<void*>(ptr));
    if (it == pool->live.end()) continue;
    Block& b = it->second;
    if (b.pending) cudaEventDestroy(b.pending);
    TSL_CUDA(op, cudaEventCreateWithFlags(&b.pending, cudaEventDisableTiming));
    TSL_CUDA(op, cudaEventRecord(b.pending, stream));
  }
  return TSL_OK;
}

tsl_status scratch_alloc(const char* op, uint64_t bytes, void** out) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return pool_alloc(op, device_pool(), bytes, TSL_CAT_WORKSPACE, out);
}

void scratch_free(void* p) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  device_free("scratch_free", p);
}

tsl_status allocator_capture_begin(const char* op) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_capturing) return fail(TSL_ERR_INVALID, op, "a graph capture is already running");
  // A captured wait on an event recorded outside the capture is not allowed: settle the pending
  // uses of cached blocks now, so that taking one during the capture needs no wait.
  for (Pool* pool : {&g_device_pool, &g_graph_pool}) {
    for (auto& kv : pool->cached) {
      Block& b = kv.second;
      if (!b.pending) continue;
      cudaError_t e = cudaEventSynchronize(b.pending);
      cudaEventDestroy(b.pending);
      b.pending = nullptr;
      if (e != cudaSuccess) return cuda_fail(op, e);
    }
  }
  g_capturing = true;
  return TSL_OK;
}

void allocator_capture_end(bool graph_kept) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_capturing = false;
  if (graph_kept) g_graphs++;
  dissolve_graph_pool();
  account_graph_reserve();
}

void allocator_graph_destroyed() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_graphs > 0) g_graphs--;
  dissolve_graph_pool();
  account_graph_reserve();
}

}  // namespace tsl

using namespace tsl;

extern "C" {

tsl_status tsl_malloc(uint64_t bytes, int32_t category, void** d_out) {
  TSL_TRY(ensure_init("tsl_malloc"));
  TSL_REQUIRE("tsl_malloc", category >= 0 && category < TSL_NUM_CATEGORIES && category != TSL_CAT_OFFLOAD_HOST,
              "category must be a device category 0..6 other than offload_host (4), got %d", category);
  std::lock_guard<std::mutex> lock(g_mutex);
  return pool_alloc("tsl_malloc", device_pool(), bytes, category, d_out);
}

tsl_status tsl_free(void* d_ptr) {
  if (!d_ptr) return TSL_OK;
  std::lock_guard<std::mutex> lock(g_mutex);
  return device_free("tsl_free", d_ptr);
}

tsl_status tsl_host_alloc(uint64_t bytes, void** h_out) {
  TSL_TRY(ensure_init("tsl_host_alloc"));
  std::lock_guard<std::mutex> lock(g_mutex);
  return pool_alloc("tsl_host_alloc", g_host_pool, bytes, TSL_CAT_OFFLOAD_HOST, h_out);
}

tsl_status tsl_host_free(void* h_ptr) {
  if (!h_ptr) return TSL_OK;
  std::lock_guard<std::mutex> lock(g_mutex);
  return pool_free("tsl_host_free", g_host_pool, h_ptr);
}

tsl_status tsl_memory_stats(uint64_t* current, uint64_t* peak, uint64_t* cached, uint64_t* peak_device_total) {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (int c = 0; c < TSL_NUM_CATEGORIES; c++) {
    if (current) current[c] = g_current[c];
    if (peak) peak[c] = g_peak[c];
  }
  if (cached) *cached = g_device_pool.cached_bytes + g_graph_pool.cached_bytes;
  if (peak_device_total) *peak_device_total = g_peak_device_total;
  return TSL_OK;
}

tsl_status tsl_reset_peak(void) {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (int c = 0; c < TSL_NUM_CATEGORIES; c++) g_peak[c] = g_current[c];
  g_peak_device_total = device_total_current();
  return TSL_OK;
}

tsl_status tsl_empty_cache(void) {
  TSL_TRY(ensure_init("tsl_empty_cache"));
  std::lock_guard<std::mutex> lock(g_mutex);
  release_cached(g_device_pool);
  release_cached(g_host_pool);
  return TSL_OK;
}

void tsl_last_oom(tsl_oom_info* out) {
  std::lock_guard<std::mutex> lock(g_mutex);
  *out = g_last_oom;
}

}  // extern "C"
