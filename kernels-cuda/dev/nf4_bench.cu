// NF4 dequantize variants (kernels-cuda/dev/nf4_dequant_variants.cuh) timed side by side on one card,
// Llama-3.1-8B MLP weight 14336x4096, blocksize 64, double-quantized absmax (nested blocks of 256).
// Each variant's output must equal v1's bit for bit (same float math, different work split), on the
// full size and on a size that ends mid-tile (values past the end must stay untouched).
//
// Timing: N back-to-back launches between two events, divided by N (median of 7), each launch on the
// next of R copies of the inputs and output (R x 147 MB, several times L2, so every launch reads its
// weights from HBM as in a training step, where other kernels ran in between). One launch between two
// events (the old method) is printed too for v6 and the best: it adds launch latency and event overhead.
// Ceilings for this traffic mix, timed the same way: a 1 GiB cudaMemcpy (the reference of "% of
// copy"), a copy kernel of the same total bytes, the 1:4 read:write mix with no decode ("expand",
// reads the 29 MB of codes, writes 117 MB), write-only 117 MB, read-only 117 MB.
//   nvcc -O3 -std=c++17 -arch=sm_90 -o /tmp/nb kernels-cuda/dev/nf4_bench.cu && /tmp/nb [N]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "nf4_dequant_variants.cuh"

#define CK(x)                                                                            \
  do {                                                                                   \
    cudaError_t e = (x);                                                                 \
    if (e != cudaSuccess) {                                                              \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e)); \
      exit(1);                                                                           \
    }                                                                                    \
  } while (0)

struct Set {
  uint8_t* packed;
  uint8_t* q;
  uint4* out;
};

static int N = 40;
constexpr int R = 4;

// Launch i goes to set i % R; returns ms per launch.
template <typename F>
float time_n(F launch, int n = N) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int i = 0; i < R; i++) launch(i);
  CK(cudaDeviceSynchronize());
  std::vector<float> ts;
  for (int rep = 0; rep < 7; rep++) {
    CK(cudaEventRecord(a));
    for (int i = 0; i < n; i++) launch(i);
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    ts.push_back(ms / n);
  }
  CK(cudaGetLastError());
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

// The old method: one launch between two events, median of 30.
template <typename F>
float time_single(F launch) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  std::vector<float> ts;
  for (int i = 0; i < 33; i++) {
    CK(cudaEventRecord(a));
    launch(i);
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    if (i >= 3) ts.push_back(ms);
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

// N launches captured once in a CUDA graph, replayed; ms per launch (median of 7).
template <typename F>
float time_graph(F launch) {
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < N; i++) launch(i, st);
  CK(cudaStreamEndCapture(st, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  CK(cudaGraphLaunch(ge, st));
  CK(cudaStreamSynchronize(st));
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  std::vector<float> ts;
  for (int rep = 0; rep < 7; rep++) {
    CK(cudaEventRecord(a, st));
    CK(cudaGraphLaunch(ge, st));
    CK(cudaEventRecord(b, st));
    CK(cudaEventSynchronize(b));
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    ts.push_back(ms / N);
  }
  CK(cudaGraphExecDestroy(ge));
  CK(cudaGraphDestroy(g));
  CK(cudaStreamDestroy(st));
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

template <typename K>
int resident(K kernel, int threads) {
  int per_sm = 0;
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0));
  return per_sm;
}

template <typename K>
int regs(K kernel) {
  cudaFuncAttributes fa;
  CK(cudaFuncGetAttributes(&fa, kernel));
  return fa.numRegs;
}

int main(int argc, char** argv) {
  if (argc > 1) N = atoi(argv[1]);
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  const int sms = prop.multiProcessorCount;
  printf("%s, %d SMs, L2 %d MB; N=%d launches per timing, R=%d input/output copies\n", prop.name, sms,
         prop.l2CacheSize >> 20, N, R);
  const uint64_t n = 14336ull * 4096, bs = 64, nbs = 256;
  const uint64_t blocks = n / bs, nested = (blocks + nbs - 1) / nbs, chunks = n / 8, groups = n / 16;
  std::vector<uint8_t> hp(n / 2), hq(blocks);
  std::vector<float> hcode(256), hna(nested);
  srand(1234);
  for (auto& x : hp) x = rand() & 255;
  for (auto& x : hq) x = rand() & 255;
  for (auto& x : hcode) x = (rand() / (float)RAND_MAX) * 2 - 1;
  for (auto& x : hna) x = 0.01f + (rand() / (float)RAND_MAX) * 0.05f;
  float *dcode, *dna;
  CK(cudaMalloc(&dcode, 256 * 4));
  CK(cudaMalloc(&dna, nested * 4));
  CK(cudaMemcpy(dcode, hcode.data(), 256 * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dna, hna.data(), nested * 4, cudaMemcpyHostToDevice));
  Set sets[R];
  for (auto& s : sets) {
    CK(cudaMalloc(&s.packed, n / 2));
    CK(cudaMalloc(&s.q, blocks));
    CK(cudaMalloc(&s.out, n * 2));
    CK(cudaMemcpy(s.packed, hp.data(), n / 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(s.q, hq.data(), blocks, cudaMemcpyHostToDevice));
  }
  auto am = [&](int i) { return Absmax{nullptr, sets[i % R].q, dna, dcode, (int)nbs, 0.003f}; };
  const Shape sh{chunks, (int64_t)blocks, 6, 8};
  uint4* ref;
  CK(cudaMalloc(&ref, n * 2));
  v1<<<(groups + 255) / 256, 256>>>((const uint2*)sets[0].packed, groups, bs, am(0), ref);
  CK(cudaDeviceSynchronize());

  // Ceilings.
  const size_t big = 1ull << 30;
  void *c0, *c1;
  CK(cudaMalloc(&c0, big));
  CK(cudaMalloc(&c1, big));
  CK(cudaMemset(c0, 1, big));
  const float tc = time_n([&](int) { CK(cudaMemcpyAsync(c1, c0, big, cudaMemcpyDeviceToDevice)); }, 5);
  CK(cudaFree(c0));
  CK(cudaFree(c1));
  const double copy_bw = 2.0 * big / (tc * 1e-3);
  const double bytes = n / 2 + n * 2 + blocks;
  printf("memcpy 1 GiB D2D                 %8.4f ms  %5.2f TB/s (read + written)\n", tc, copy_bw / 1e12);
  printf("nf4 bytes %.1f MB (codes %.1f, absmax %.2f, out %.1f); floor at memcpy rate %.4f ms\n", bytes / 1e6, n / 2e6,
         blocks / 1e6, n * 2e-6, bytes / copy_bw * 1e3);
  const unsigned g4 = (unsigned)((chunks + 1023) / 1024);  // v6<4>'s grid: 1024 chunks per 256-thread block
  const uint64_t half16 = (uint64_t)(bytes / 2 / 16);
  auto ceiling = [&](const char* name, double nbytes, float t) {
    printf("%-32s %8.4f ms  %5.2f TB/s  %5.1f%% of memcpy rate\n", name, t, nbytes / (t * 1e-3) / 1e12,
           100 * nbytes / (t * 1e-3) / copy_bw);
    return nbytes / (t * 1e-3);
  };
  ceiling("copy kernel, same total bytes", 2.0 * half16 * 16, time_n([&](int i) {
            ceil_copy<<<(unsigned)((half16 + 1023) / 1024), 256>>>(sets[i % R].out, half16, sets[(i + 1) % R].out);
          }));
  const double mix_bw = ceiling("expand: read 29 MB, write 117 MB", n / 2.0 + n * 2.0, time_n([&](int i) {
                                  ceil_expand<<<g4, 256>>>((const uint32_t*)sets[i % R].packed, chunks, sets[i % R].out);
                                }));
  ceiling("expand, CUDA graph of N", n / 2.0 + n * 2.0, time_graph([&](int i, cudaStream_t st) {
            ceil_expand<<<g4, 256, 0, st>>>((const uint32_t*)sets[i % R].packed, chunks, sets[i % R].out);
          }));
  {
    uint32_t* in4;
    uint4* out4;
    CK(cudaMalloc(&in4, 2 * n));
    CK(cudaMalloc(&out4, 8 * n));
    CK(cudaMemset(in4, 7, 2 * n));
    ceiling("expand, 4x size per launch", 4 * (n / 2.0 + n * 2.0), time_n([&](int) {
              ceil_expand<<<4 * g4, 256>>>(in4, 4 * chunks, out4);
            }, N / 4));
    CK(cudaFree(in4));
    CK(cudaFree(out4));
  }
  ceiling("write-only 117 MB (16 B __stcs)", n * 2.0, time_n([&](int i) { ceil_write<<<g4, 256>>>(chunks, sets[i % R].out); }));
  uint32_t* sink;
  CK(cudaMalloc(&sink, 4));
  ceiling("read-only 117 MB", n * 2.0, time_n([&](int i) { ceil_read<<<g4, 256>>>(sets[i % R].out, chunks, sink); }));

  // Variants.
  printf("\n%-30s %4s %5s %6s %8s %7s %8s %9s  %s\n", "variant", "regs", "blk/SM", "grid", "ms", "TB/s", "% memcpy",
         "% expand", "check");
  std::vector<uint16_t> a(n), b(n);
  CK(cudaMemcpy(a.data(), ref, n * 2, cudaMemcpyDeviceToHost));
  auto poison = [&] {
    for (auto& s : sets) CK(cudaMemset(s.out, 0xff, n * 2));
  };
  int failures = 0;
  auto report = [&](const char* name, int nregs, int per_sm, unsigned grid, float t) {
    CK(cudaDeviceSynchronize());
    bool same = true;
    for (auto& s : sets) {
      CK(cudaMemcpy(b.data(), s.out, n * 2, cudaMemcpyDeviceToHost));
      same = same && memcmp(a.data(), b.data(), n * 2) == 0;
    }
    failures += !same;
    const double bw = bytes / (t * 1e-3);
    printf("%-30s %4d %5d %7u %8.4f %7.2f %7.1f%% %8.1f%%  %s\n", name, nregs, per_sm, grid, t, bw / 1e12,
           100 * bw / copy_bw, 100 * bw / mix_bw, same ? "identical to v1" : "MISMATCH");
    poison();
  };
  poison();
  report("v1 (first shipped)", regs(v1), resident(v1, 256), (unsigned)((groups + 255) / 256), time_n([&](int i) {
           v1<<<(groups + 255) / 256, 256>>>((const uint2*)sets[i % R].packed, groups, bs, am(i), sets[i % R].out);
         }));
  auto v6l = [&](int i) { v6<4><<<g4, 256>>>((const uint32_t*)sets[i % R].packed, chunks, bs, am(i), sets[i % R].out); };
  report("v6<4> (shipped before)", regs(v6<4>), resident(v6<4>, 256), g4, time_n(v6l));
  report("v6<4>, one launch (old method)", regs(v6<4>), resident(v6<4>, 256), g4, time_single(v6l));
  {
    const float warm = time_n([&](int) { v6l(0); });
    for (int i = 1; i < R; i++) CK(cudaMemcpy(sets[i].out, sets[0].out, n * 2, cudaMemcpyDeviceToDevice));
    report("v6<4>, same buffers (L2-warm)", regs(v6<4>), resident(v6<4>, 256), g4, warm);
  }
  report("v6s<4> shifts", regs(v6s<4>), resident(v6s<4>, 256), g4, time_n([&](int i) {
           v6s<4><<<g4, 256>>>((const uint32_t*)sets[i % R].packed, sh, am(i), sets[i % R].out);
         }));
  report("v6s<8> shifts", regs(v6s<8>), resident(v6s<8>, 256), (unsigned)((chunks + 2047) / 2048), time_n([&](int i) {
           v6s<8><<<(chunks + 2047) / 2048, 256>>>((const uint32_t*)sets[i % R].packed, sh, am(i), sets[i % R].out);
         }));
  report("v6s<2> shifts", regs(v6s<2>), resident(v6s<2>, 256), (unsigned)((chunks + 511) / 512), time_n([&](int i) {
           v6s<2><<<(chunks + 511) / 512, 256>>>((const uint32_t*)sets[i % R].packed, sh, am(i), sets[i % R].out);
         }));
  report("v6s<4> shifts, 128 thr", regs(v6s<4>), resident(v6s<4>, 128), (unsigned)((chunks + 511) / 512), time_n([&](int i) {
           v6s<4><<<(chunks + 511) / 512, 128>>>((const uint32_t*)sets[i % R].packed, sh, am(i), sets[i % R].out);
         }));
  report("v6s<4> shifts, 512 thr", regs(v6s<4>), resident(v6s<4>, 512), (unsigned)((chunks + 2047) / 2048), time_n([&](int i) {
           v6s<4><<<(chunks + 2047) / 2048, 512>>>((const uint32_t*)sets[i % R].packed, sh, am(i), sets[i % R].out);
         }));
  {
    const float t = time_graph([&](int i, cudaStream_t st) {
      v6s<4><<<g4, 256, 0, st>>>((const uint32_t*)sets[i % R].packed, sh, am(i), sets[i % R].out);
    });
    report("v6s<4>, CUDA graph of N", regs(v6s<4>), resident(v6s<4>, 256), g4, t);
  }
  // Programmatic dependent launch of a v6s-shaped kernel on set i % R.
  auto pdl_launch = [&](auto kernel, int i) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(g4);
    cfg.blockDim = dim3(256);
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    CK(cudaLaunchKernelEx(&cfg, kernel, (const uint32_t*)sets[i % R].packed, sh, am(i), sets[i % R].out));
  };
  report("v6s_pdl<4> (PDL launches)", regs(v6s_pdl<4>), resident(v6s_pdl<4>, 256), g4,
         time_n([&](int i) { pdl_launch(v6s_pdl<4>, i); }));
  report("v6s_pdl_early<4> (shipped)", regs(v6s_pdl_early<4>), resident(v6s_pdl_early<4>, 256), g4,
         time_n([&](int i) { pdl_launch(v6s_pdl_early<4>, i); }));
  report("v10<4> shfl scales, no smem", regs(v10<4>), resident(v10<4>, 256), g4, time_n([&](int i) {
           v10<4><<<g4, 256>>>((const uint32_t*)sets[i % R].packed, sh, am(i), sets[i % R].out);
         }));
  report("v7<4> shfl scales", regs(v7<4>), resident(v7<4>, 256), g4, time_n([&](int i) {
           v7<4><<<g4, 256>>>((const uint32_t*)sets[i % R].packed, sh, am(i), sets[i % R].out);
         }));
  const unsigned g8 = (unsigned)((chunks + 2047) / 2048);
  report("v7<8> shfl scales", regs(v7<8>), resident(v7<8>, 256), g8, time_n([&](int i) {
           v7<8><<<g8, 256>>>((const uint32_t*)sets[i % R].packed, sh, am(i), sets[i % R].out);
         }));
#define PERSISTENT(NAME, KERNEL, THREADS)                                                                     \
  do {                                                                                                        \
    const int per_sm = resident(KERNEL, THREADS);                                                             \
    const unsigned grid = (unsigned)(per_sm * sms);                                                           \
    report(NAME, regs(KERNEL), per_sm, grid, time_n([&](int i) {                                              \
             KERNEL<<<grid, THREADS>>>((const uint32_t*)sets[i % R].packed, sh, am(i), sets[i % R].out);    \
           }));                                                                                               \
  } while (0)
  PERSISTENT("v8<4> persistent, 256 thr", v8<4>, 256);
  PERSISTENT("v8<4> persistent, 512 thr", v8<4>, 512);
  {
    const uint64_t tiles = chunks / 128, slots = (uint64_t)resident(v8<4>, 256) * sms;
    const uint64_t rounds = (tiles + slots * 8 - 1) / (slots * 8);
    const unsigned grid = (unsigned)((tiles + rounds * 8 - 1) / (rounds * 8));
    report("v8<4> persistent, evened", regs(v8<4>), resident(v8<4>, 256), grid, time_n([&](int i) {
             v8<4><<<grid, 256>>>((const uint32_t*)sets[i % R].packed, sh, am(i), sets[i % R].out);
           }));
  }
  PERSISTENT("v8<8> persistent, 256 thr", v8<8>, 256);
  PERSISTENT("v8<2> persistent, 256 thr", v8<2>, 256);
  PERSISTENT("v9<4> bulk stores", (v9<4, false>), 256);
  PERSISTENT("v9<4> bulk + L2 evict_first", (v9<4, true>), 256);
  PERSISTENT("v9<2> bulk stores", (v9<2, false>), 256);
  report("v6s<4>, one launch (old method)", regs(v6s<4>), resident(v6s<4>, 256), g4, time_single([&](int i) {
           v6s<4><<<g4, 256>>>((const uint32_t*)sets[i % R].packed, sh, am(i), sets[i % R].out);
         }));

  // A size that ends mid-tile: 592 values short of the full matrix (not a multiple of any tile).
  const uint64_t n2 = n - 592, chunks2 = n2 / 8;
  const Shape sh2{chunks2, (int64_t)((n2 + bs - 1) / bs), 6, 8};
  auto tail = [&](const char* name, auto launch) {
    CK(cudaMemset(sets[0].out, 0xff, n * 2));
    launch();
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(b.data(), sets[0].out, n * 2, cudaMemcpyDeviceToHost));
    bool ok = memcmp(a.data(), b.data(), n2 * 2) == 0;
    for (uint64_t i = n2; i < n; i++) ok = ok && b[i] == 0xffff;
    failures += !ok;
    printf("tail n-592: %-26s %s\n", name, ok ? "identical to v1, nothing written past the end" : "MISMATCH");
  };
  tail("v8<4>", [&] { v8<4><<<resident(v8<4>, 256) * sms, 256>>>((const uint32_t*)sets[0].packed, sh2, am(0), sets[0].out); });
  tail("v9<4>", [&] {
    v9<4, false><<<resident(v9<4, false>, 256) * sms, 256>>>((const uint32_t*)sets[0].packed, sh2, am(0), sets[0].out);
  });
  tail("v6s<4>", [&] { v6s<4><<<(unsigned)((chunks2 + 1023) / 1024), 256>>>((const uint32_t*)sets[0].packed, sh2, am(0), sets[0].out); });
  tail("v10<4>", [&] { v10<4><<<(unsigned)((chunks2 + 1023) / 1024), 256>>>((const uint32_t*)sets[0].packed, sh2, am(0), sets[0].out); });
  tail("v7<4>", [&] { v7<4><<<(unsigned)((chunks2 + 1023) / 1024), 256>>>((const uint32_t*)sets[0].packed, sh2, am(0), sets[0].out); });
  printf(failures ? "FAILED: %d variant(s) differ from v1\n" : "all variants identical to v1\n", failures);
  return failures ? 1 : 0;
}
