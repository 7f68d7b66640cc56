// Device-time profile. With it on, a timing event is recorded on the compute stream after every
// library call (the binding marks each call by name) and at named points inside composite calls
// (profile_mark), so the time between two consecutive marks is the device time of the work queued
// between them: exact per-op GPU time while the host stays ahead of the device (the usual case in
// training, where kernels are long), host gaps otherwise (they land on the next mark). Nothing is
// synchronized until tsl_profile_collect. Marks are skipped while a stream capture records a graph.
// Off by default: one branch per mark.
#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common.cuh"
#include "profile.h"

namespace tsl {
namespace {

struct Totals {
  int64_t calls = 0;
  double ms = 0;
};

std::mutex g_mutex;
bool g_on = false;
std::vector<cudaEvent_t> g_pool;               // reused across collects
std::vector<int> g_marks;                      // label id of mark i (event g_pool[i])
std::map<std::string, int> g_ids;              // label -> id
std::vector<std::string> g_labels;             // id -> label
std::vector<Totals> g_totals;                  // id -> accumulated device time
std::vector<std::pair<std::string, Totals>> g_report;  // sorted snapshot for tsl_profile_entry

bool capturing() {
  cudaStreamCaptureStatus s = cudaStreamCaptureStatusNone;
  return cudaStreamIsCapturing(compute_stream(), &s) == cudaSuccess && s != cudaStreamCaptureStatusNone;
}

int id_of(const char* label) {
  auto it = g_ids.find(label);
  if (it != g_ids.end()) return it->second;
  const int id = (int)g_labels.size();
  g_ids.emplace(label, id);
  g_labels.emplace_back(label);
  g_totals.emplace_back();
  return id;
}

// Charges the time between consecutive marks to the later one's label; keeps the last mark as
// the start of the next interval. Called with g_mutex held.
cudaError_t drain() {
  if (g_marks.empty()) return cudaSuccess;
  cudaError_t e = cudaEventSynchronize(g_pool[g_marks.size() - 1]);
  if (e != cudaSuccess) return e;
  for (size_t i = 1; i < g_marks.size(); i++) {
    float ms = 0.f;
    e = cudaEventElapsedTime(&ms, g_pool[i - 1], g_pool[i]);
    if (e != cudaSuccess) return e;
    Totals& t = g_totals[g_marks[i]];
    t.calls++;
    t.ms += ms;
  }
  std::swap(g_pool[0], g_pool[g_marks.size() - 1]);
  g_marks.erase(g_marks.begin(), g_marks.end() - 1);
  return cudaSuccess;
}

}  // namespace

bool profile_enabled() { return g_on; }

tsl_status profile_mark(const char* label) {
  if (!g_on) return TSL_OK;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (capturing()) return TSL_OK;
  if (g_marks.size() == g_pool.size()) {
    cudaEvent_t ev;
    cudaError_t e = cudaEventCreate(&ev);
    if (e != cudaSuccess) return cuda_fail("tsl_profile_mark", e);
    g_pool.push_back(ev);
  }
  cudaError_t e = cudaEventRecord(g_pool[g_marks.size()], compute_stream());
  if (e != cudaSuccess) return cuda_fail("tsl_profile_mark", e);
  g_marks.push_back(id_of(label));
  // Bounded memory over long runs: fold the finished part in now and then.
  if (g_marks.size() >= 8192) {
    e = drain();
    if (e != cudaSuccess) return cuda_fail("tsl_profile_mark", e);
  }
  return TSL_OK;
}

}  // namespace tsl

using namespace tsl;

extern "C" {

tsl_status tsl_profile_enable(int32_t on) {
  TSL_TRY(ensure_init("tsl_profile_enable"));
  std::lock_guard<std::mutex> lock(g_mutex);
  g_on = on != 0;
  return TSL_OK;
}

tsl_status tsl_profile_mark(const char* label) {
  TSL_REQUIRE("tsl_profile_mark", label != nullptr, "label is required");
  return profile_mark(label);
}

tsl_status tsl_profile_collect(int32_t* count_out) {
  TSL_REQUIRE("tsl_profile_collect", count_out != nullptr, "count_out is required");
  std::lock_guard<std::mutex> lock(g_mutex);
  cudaError_t e = drain();
  if (e != cudaSuccess) return cuda_fail("tsl_profile_collect", e);
  g_report.clear();
  for (size_t i = 0; i < g_labels.size(); i++)
    if (g_totals[i].calls) g_report.emplace_back(g_labels[i], g_totals[i]);
  std::sort(g_report.begin(), g_report.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  *count_out = (int32_t)g_report.size();
  return TSL_OK;
}

tsl_status tsl_profile_entry(int32_t i, char* label_buf, int32_t size, int64_t* calls, double* ms) {
  std::lock_guard<std::mutex> lock(g_mutex);
  TSL_REQUIRE("tsl_profile_entry", i >= 0 && i < (int32_t)g_report.size(), "entry %d of %d", i, (int32_t)g_report.size());
  TSL_REQUIRE("tsl_profile_entry", label_buf && size > 0 && calls && ms, "label_buf, calls and ms are required");
  snprintf(label_buf, (size_t)size, "%s", g_report[i].first.c_str());
  *calls = g_report[i].second.calls;
  *ms = g_report[i].second.ms;
  return TSL_OK;
}

tsl_status tsl_profile_reset(void) {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (Totals& t : g_totals) t = Totals{};
  g_report.clear();
  // Restart the intervals at the next mark: without a start, nothing is charged for the gap.
  g_marks.clear();
  return TSL_OK;
}

}  // extern "C"
