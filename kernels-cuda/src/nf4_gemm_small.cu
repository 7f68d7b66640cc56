// Y[T, out] = X[T, in] · Wᵀ (+ bias) (+ LoRA) for 1 <= T <= 16 rows (batched decode) straight from
// 4-bit NF4 weights (bitsandbytes layout, QLoRA, Dettmers et al. 2023) on tensor cores: each weight
// byte is read from memory once, where dequantize + GEMM writes and re-reads W in bf16 (5x the bytes).
//
// Tiles: mma.sync m16n8k16 (bf16, f32 accumulate, sm_80+) with W as the A operand (16 output rows x
// 16 k) and Xᵀ as B (16 k x 8 tokens; two n-tiles for T > 8), so T <= 8 wastes nothing on padding.
// A block owns 64 output rows (4 m-tiles) and streams stages of 256 k (64 rows x 128 code bytes, the
// X columns and the absmax of the stage) into shared memory with cp.async, kStages deep; warp w
// takes k slab [64w, 64w+64) of every stage for all 64 rows, so each X fragment is read once per
// block and reused by 4 m-tiles. The k order inside an mma is free as long as A and B agree: lane
// (g = lane/4, t = lane%4) takes the 8 code bytes of k 16t..16t+15 of rows g and g+8 (one 8-byte
// load each) and X[token g][16t..16t+15] (two 16-byte loads); mma j uses code bytes 2j, 2j+1 and X
// words 2j, 2j+1, i.e. k 16t+4j..16t+4j+3. A code byte becomes its bf16 pair (code[hi], code[lo])
// with one PRMT (byte in bits 8-15, 4·lane in bits 0-7) and one conflict-free LDS from a 256-entry
// table replicated per bank (lane l reads bank l), as in nf4_gemv.cu; the table's 256-byte rows use
// only their first 128 bytes, and the other halves hold the W stages (64 rows x 128 bytes x 4 stages
// fill them exactly). A 64-k slab lies inside one absmax block (blocksize >= 64, a power of two), so
// the scale multiplies the slab's f32 partial (4 raw mmas, then 4 FFMAs) instead of every weight.
// Split-K: when 64-row tiles alone leave SMs idle (k/v: 16 tiles), blocks split the stages, write
// f32 partials [split][T][out], and the last split to finish a row tile (a counter per tile) adds
// them up; the bias and LoRA (scale · (X·Aᵀ)·Bᵀ, Hu et al. 2021; X·Aᵀ from a small kernel launched
// first) join in that epilogue. On sm_90 the GEMM uses programmatic dependent launch: its table fill
// and first weight stages overlap the previous kernel, which only X has to wait for.
//
// PREDICTION (written before measuring; T = 8, double-quantized absmax, blocksize 64, H100 SXM with
// ~3.0 TB/s copy): 4096x4096 4.5 us, 14336x4096 15.5 us, 4096x14336 15.5 us (~65% of copy on the
// 4-bit stream), 1024x4096 3.5 us (launch and table fill bound: ~20%); dequantize + cuBLASLt GEMM on
// the same shapes ~5-6x slower.
// MEASURED (kernels-cuda/dev/bench_nf4_small_batch.py: graphs of calls over weight copies > 2x L2,
// GPU time per call, % of a 1 GiB device copy on codes + absmax), T = 8, dq, blocksize 64, NVIDIA
// H200 (copy 4.15 TB/s): q/o 9.7 us (21.5%), k/v 6.1 us (8.6%), gate/up 20.5 us (35.7%), down
// 20.0 us (36.5%); one layer's 7 projections 92.5 us, against 287.2 us for dequantize + GEMM and
// 129.7 us for torch's bf16 matmul on bf16 weights (bench/NOTES.md has T = 1..16, the H100 numbers
// of the first form, the split sweep). The 65% prediction is NOT met. Not profiled; the SASS issues
// ~300 instructions per warp and stage (64 PRMT + 64 LDS table lookups, 16 HMMA, 16 FFMA, ~90 for
// cp.async and addresses) with 8 warps per SM (the 64 KB table allows 2 blocks), 3 stages in flight
// per block; q/o and k/v blocks get 4 and 2 stages after the split, so table fill, pipeline fill and
// epilogue stay exposed. Tried and slower on the H200: an sm_90 bulk L2 prefetch of each row 4 or 8
// stages ahead (512-byte DRAM runs), 2-13% on the large shapes.
#include <stdlib.h>
#include <string.h>

#include <algorithm>

#include "dependent_launch.cuh"
#include "nf4_gemm_small_kernels.cuh"

namespace tsl {
namespace {

constexpr int smem_bytes(int nt, bool dq) {
  return kTableBytes + kStages * 8 * nt * kStageK * 2 + kStages * kScaleEntries * 4 * (dq ? 2 : 1);
}

// Splits of the k stages: the fewest that give at least 3/4 of the resident block slots work (more
// splits cost partial traffic and per-block table fills; fewer leave SMs idle), evened so that no
// split is empty. TSLOTH_NF4_SMALL_SPLITS=n forces n (benchmarks).
int choose_splits(int64_t row_tiles, int stages, int64_t slots) {
  int s = 1;
  const char* force = getenv("TSLOTH_NF4_SMALL_SPLITS");
  if (force && atoi(force) > 0) s = std::min(atoi(force), stages);
  else
    while (row_tiles * s * 4 < slots * 3 && s < stages) s++;
  const int per = (stages + s - 1) / s;
  return (stages + per - 1) / per;
}

// The GEMM kernel of one instantiation, its shared memory and resident blocks per SM (set up once).
template <int kNT, bool kDQ>
const KernelSetup& gemm_setup() {
  static const KernelSetup setup = setup_kernel(nf4_gemm_small_kernel<kNT, kDQ>, kThreads, smem_bytes(kNT, kDQ));
  return setup;
}

template <int kNT, bool kDQ>
cudaError_t launch_gemm(SmallArgs& args, int splits, cudaStream_t st) {
  void* params[] = {&args};
  return launch_dependent((const void*)nf4_gemm_small_kernel<kNT, kDQ>, params,
                     dim3((unsigned)((args.out_f + kRows - 1) / kRows), (unsigned)splits), kThreads, smem_bytes(kNT, kDQ),
                     gemm_setup<kNT, kDQ>().dependent_launch, st);
}

// Per-row-tile counters of the split-K reduction: allocated and zeroed once, outside any graph
// capture (each call leaves them zero again). Null while that is not possible yet (the first call
// runs inside a capture): the calls then sum their partials with nf4_gemm_small_finish.
constexpr int64_t kMaxCounterTiles = 4096;  // output rows up to 4096 x 64 (a 128K-vocabulary LM head fits)

unsigned* split_counters(const char* op, cudaStream_t st) {
  static unsigned* counters = nullptr;
  if (counters) return counters;
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(st, &capturing) != cudaSuccess || capturing != cudaStreamCaptureStatusNone) return nullptr;
  void* p = nullptr;
  if (scratch_alloc(op, kMaxCounterTiles * sizeof(unsigned), &p) != TSL_OK) return nullptr;
  if (cudaMemsetAsync(p, 0, kMaxCounterTiles * sizeof(unsigned), st) != cudaSuccess) {
    scratch_free(p);
    return nullptr;
  }
  counters = static_cast<unsigned*>(p);
  return counters;
}

bool is_pow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

int log2_of(int64_t v) {
  int l = 0;
  while ((int64_t(1) << l) < v) l++;
  return l;
}

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" tsl_status tsl_nf4_gemm_small(const uint8_t* d_packed, int64_t out_f, int64_t in_f, int32_t blocksize,
                                         const float* d_absmax_f32, const uint8_t* d_absmax_q,
                                         const float* d_nested_absmax, const float* d_nested_code,
                                         int32_t nested_blocksize, float nested_offset, const void* d_x, int64_t T,
                                         const void* d_bias, int32_t bias_dtype, const float* d_a, const float* d_b,
                                         float scale, int32_t r, void* d_y) {
  const char* op = "tsl_nf4_gemm_small";
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, T >= 1 && T <= 16, "T (rows of x) must be 1..16, got %lld: use dequantize + GEMM for more", (long long)T);
  TSL_REQUIRE(op, out_f > 0 && out_f <= (int64_t)65535 * kRows, "out_f must be 1..%lld, got %lld", (long long)65535 * kRows,
              (long long)out_f);
  TSL_REQUIRE(op, in_f > 0 && in_f % 64 == 0 && in_f <= ((int64_t)1 << 30), "in_f must be a positive multiple of 64 below 2^30, got %lld",
              (long long)in_f);
  TSL_REQUIRE(op, blocksize >= 64 && is_pow2(blocksize),
              "blocksize must be a power of two of at least 64 (bitsandbytes' default is 64), got %d", blocksize);
  TSL_REQUIRE(op, d_absmax_q ? (d_nested_absmax && d_nested_code && nested_blocksize > 0) : d_absmax_f32 != nullptr,
              "absmax: give f32 absmax, or the double-quantized absmax with nested absmax, code and blocksize");
  TSL_REQUIRE(op, !d_absmax_q || is_pow2(nested_blocksize),
              "nested_blocksize must be a power of two (bitsandbytes uses 256), got %d", nested_blocksize);
  TSL_REQUIRE(op, (uintptr_t)d_packed % 16 == 0 && (uintptr_t)d_x % 16 == 0, "packed weights and x must be 16-byte aligned");
  TSL_REQUIRE(op, (uintptr_t)d_absmax_f32 % 4 == 0 && (uintptr_t)d_absmax_q % 4 == 0 && (uintptr_t)d_nested_absmax % 4 == 0,
              "absmax arrays must be 4-byte aligned");
  TSL_REQUIRE(op, !d_bias || is_float_dtype(bias_dtype), "bias dtype must be f32, bf16 or f16");
  TSL_REQUIRE(op, !d_a == !d_b && (!d_a || r > 0), "LoRA needs both a and b and r > 0");
  cudaStream_t st = compute_stream();
  Scratch xa, partial;
  if (d_a) {
    TSL_TRY(scratch_alloc(op, (uint64_t)T * r * 4, &xa.p));
    lora_down_rows<<<r, 256, 0, st>>>(static_cast<const __nv_bfloat16*>(d_x), d_a, in_f, (int)T, r, static_cast<float*>(xa.p));
    TSL_CHECK_LAUNCH(op);
  }
  int dev = 0, sms = 1;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  const bool dq = d_absmax_q != nullptr;
  const KernelSetup& setup = T > 8 ? (dq ? gemm_setup<2, true>() : gemm_setup<2, false>())
                                   : (dq ? gemm_setup<1, true>() : gemm_setup<1, false>());
  if (setup.error != cudaSuccess) return cuda_fail(op, setup.error);
  const int stages = (int)((in_f + kStageK - 1) / kStageK);
  const int64_t row_tiles = (out_f + kRows - 1) / kRows;
  int splits = choose_splits(row_tiles, stages, (int64_t)std::max(setup.blocks_per_sm, 1) * sms);
  // TSLOTH_NF4_SMALL_REDUCE=kernel sums the splits with the separate kernel (to test that path).
  const char* reduce = getenv("TSLOTH_NF4_SMALL_REDUCE");
  const bool by_kernel = reduce && !strcmp(reduce, "kernel");
  unsigned* counters = splits > 1 && row_tiles <= kMaxCounterTiles && !by_kernel ? split_counters(op, st) : nullptr;
  if (splits > 1) TSL_TRY(scratch_alloc(op, (uint64_t)splits * T * out_f * 4, &partial.p));
  SmallArgs args{static_cast<const uint8_t*>(d_packed), out_f, in_f, (int)T, log2_of(blocksize),
                 dq ? log2_of(nested_blocksize) : 0, (out_f * in_f + blocksize - 1) / blocksize, d_absmax_f32, d_absmax_q,
                 d_nested_absmax, d_nested_code, nested_offset, static_cast<const __nv_bfloat16*>(d_x), stages,
                 (stages + splits - 1) / splits, splits, static_cast<float*>(partial.p), counters, d_bias, bias_dtype,
                 static_cast<const float*>(xa.p), d_b, scale, r, static_cast<__nv_bfloat16*>(d_y)};
  cudaError_t e = T > 8 ? (dq ? launch_gemm<2, true>(args, splits, st) : launch_gemm<2, false>(args, splits, st))
                        : (dq ? launch_gemm<1, true>(args, splits, st) : launch_gemm<1, false>(args, splits, st));
  if (e != cudaSuccess) return cuda_fail(op, e);
  if (splits > 1 && !counters) {
    static const KernelSetup finish = setup_kernel(nf4_gemm_small_finish, 256, 0);
    if (finish.error != cudaSuccess) return cuda_fail(op, finish.error);
    void* params[] = {&args};
    e = launch_dependent((const void*)nf4_gemm_small_finish, params, dim3(blocks_for((uint64_t)T * out_f, 256, 4096)), 256, 0,
                    finish.dependent_launch, st);
    if (e != cudaSuccess) return cuda_fail(op, e);
  }
  TSL_CHECK_LAUNCH(op);
  return TSL_OK;
}
