// Batch-1 decode's matrix-vector product straight from 4-bit NF4 weights (bitsandbytes layout,
// QLoRA, Dettmers et al. 2023): y = W x with W never dequantized to memory, so each weight byte is
// read once and decode runs at the weight stream's bandwidth (the 16-bit alternative moves 4× the
// bytes). The optional bias and LoRA term (scale · (x·aᵀ)·bᵀ, Hu et al. 2021) are added in the
// epilogue.
// Work split: variant "v10w_autoc_pdl" of kernels-cuda/dev/nf4_gemv_bench.cu, which holds the earlier
// kernels (v1, v9m_u8) and the variants that lost, with predictions and measurements. A warp computes
// 2 adjacent rows (1 when that leaves fewer than 8 warps per SM) over the same x; lane l reads 4-byte
// code words l, l+32, ... (8 weights each), so a warp's code load is 128 contiguous bytes and its x
// load (8 bf16 per word) 512 contiguous bytes, shared by both rows. An iteration covers 32·kWords
// words; lane j decodes the absmax of the iteration's j-th block once (block indices by shifts: block
// sizes must be powers of two, as bitsandbytes' are) and each word takes its absmax with one shuffle.
// Each code byte (two weights) is looked up once in a 256-entry table of bf16 pairs in shared memory,
// replicated so that lane l always reads bank l (one wavefront per warp lookup whatever the codes);
// one PRMT makes the entry's offset (code byte in byte 1, 4·lane in byte 0: 256-byte rows, half used)
// and one HFMA2 multiplies the pair with x's pair: ~3.3 issued instructions per weight in the SASS of
// the 2-row main loop (427 per 128 weights on sm_90) against ~6.3 for v9m_u8 (a 16-entry table and
// prmt lookups). The grid is capped at the blocks resident at once (occupancy x SMs) and blocks
// stride over groups of 8 warps x rows, so each block fills its 64 KB table once; of the 8B shapes
// only gate/up (896 groups of 16 rows on 264 slots of an H100) has more groups than slots. Launched
// with programmatic dependent launch on sm_90+: the table fill (and, for one matrix, the first code
// words) overlaps the previous kernel's tail, and the kernel waits for that kernel
// (griddepcontrol.wait) before it reads x or anything else a kernel writes.
// tsl_nf4_gemv_group computes up to 3 matrices that share x (a layer's q/k/v, gate/up) in one grid
// (nf4_gemv_group_kernel: the same loop, each row's weights, absmax and epilogue picked from its
// own matrix), so a layer is 4 launches instead of 7: one kernel ramp and tail fewer per merge.
// The kernels live in nf4_gemv_kernels.cuh (the bench times them from there).
// Measured with GPU time (kernels-cuda/dev/nf4_gemv_bench.cu: a CUDA graph of calls over more weight
// copies than L2 holds), % of the card's copy rate, one 8B layer = 7 projections back to back:
//   H100 80GB HBM3 (copy 2.98 TB/s, one run): the bench's v10w_autoc_pdl (this grid and loop, no
//   bias/LoRA epilogue) q/o 55, k/v 23, gate/up 67, down 77, layer 60.4 us = 62.5%; the uncapped grid
//   (v10w_auto_pdl, this file's previous form) 65.4 us = 57.7% (gate/up 57), v9m_u8 83.6 us = 45.2%,
//   the loads alone (probe_words) 48.4 us = 78.0%.
//   H200 (copy 4.2 TB/s, one run): v10w_autoc_pdl layer 56.1 us = 47.8%, v10w_auto_pdl 61.0-61.1 us
//   (two runs), v9m_u8 82.0-82.9 us.
//   H200, these kernels as launched here (bench variant src_shipped, same run as v10w_autoc_pdl at
//   56.1 us): q/o 5.1 us = 40%, k/v 4.1 = 13%, gate/up 14.6 = 49%, down 12.6 = 57%; layer of 7
//   launches 62.1 us = 43.0%, of 4 (q/k/v and gate/up grouped) 57.0 us = 46.9%. Through the C ABI
//   (bench/infer/nf4_gemv_bench.py, same run): q/k/v 10.2 us grouped against 13.1 us as 3 calls,
//   gate/up 29.3 against 29.5 us.
//   H100, an earlier form of the group kernel (parameters behind __grid_constant__): layer of 7
//   67.4 us, of 4 60.4 us (v10w_autoc_pdl 60.5 in the same run).
// Round five (H100, one run, copy 3.00 TB/s): each lane's absmax read made branch-free (lanes past
// an iteration's last block read it again; probes had shown the shipped loop's generality costing
// ~4 points of the layer) took the layer of 4 launches from 58.6 to 54.6 us (64.2 -> 68.7% of copy)
// and the single-matrix kernel from 126 to 118 registers; 1 row per warp where 2 rows' groups fill
// the last round of resident blocks poorly (q/k/v) took it to 54.0 us = 69.5%. Through the C ABI:
// gate/up grouped 27.6 us = 72.8%, down 13.5 us = 74.3%, q/k/v grouped 8.4 us = 51.5% (was 10.2-10.6).
// Round six (H100, three calls, two runs each, against the previous build in the same calls): the
// single-matrix kernel loads its block's first iteration of code words before griddepcontrol.wait
// (frozen weights; only x comes from the previous kernel), so the weight stream starts while the
// previous kernel drains, and both kernels take every row's warp sum before lane 0's epilogue (the
// shuffle chains overlap; the warp diverges once): q/o 5.29-5.33 -> 5.02-5.05 us, k/v 4.05-4.08 ->
// 3.00-3.02, down 13.11-13.15 -> 12.70-12.78, gate/up 14.84-14.91 -> 14.75-14.79; the layer of 4
// launches 54.07-54.18 -> 53.25-53.50 us = 70.6-70.9% of copy (69.6-70.1% before). The group
// kernel keeps its loads after the wait (early loads cost its 2-row form ~2% on gate/up).
// Round seven (H200 and H100, one call each, three runs alternating with the previous build): a
// warp's two row sums finish together (rows_sum: one exchange, then 4 butterfly steps; lanes 0 and
// 16 run both rows' epilogues side by side), 5 shuffles instead of 10 per row group. Layer of 4
// launches: H200 50.5-50.8 -> 49.1-49.3 us (52.8 -> 54.4% of copy), H100 53.3-53.4 -> 51.6-51.9 us
// (70.6 -> 72.7-72.8%); through the C ABI gate/up grouped 26.6 -> 25.2 us on the H200, 73.4 ->
// 76.7-76.9% of copy on the H100. On the H200 the kernel is bound by the SM, not the memory: with
// its weights in L2 it runs only 5% faster (kernels-cuda/dev/nf4_gemv_wide.cuh has the probes).
// This file's kernel itself through the C ABI (bench/infer/nf4_gemv_bench.py, one shape repeated,
// same H100, two runs alternating with the previous form): gate/up 15.5-15.6 us = 64.6-64.8% of copy
// (previous 17.7-17.9 us), q/o 5.9 us = 48.4-48.9% (previous 5.8 us), down 13.9 us = 72.2-72.5%
// (previous 13.6-13.7 us). Where the grid is unchanged (q/o, down) the 2-row loop costs ~1-2%:
// 123-126 registers under the __launch_bounds__ cap and 427 instead of 401 instructions per
// iteration. The 70% target on the layer was then not met on either card (the loads alone reach 78% on
// the H100, 69-71% on the H200): with 16 warps per SM (64 KB table, ~125 registers) latency, not
// issue, bounds it. Streaming the weights into shared memory with Hopper bulk copies (one producer
// warp, a 128 KB ring per SM; kernels-cuda/dev/nf4_gemv_ring.cuh) reached only 77% loads-only and
// 41-52% with the math on an H100, and L2 bulk prefetches ahead of the loads made every shape slower.
#include "dependent_launch.cuh"
#include "nf4_gemv_kernels.cuh"

namespace tsl {
namespace {

// xa[j] = Σ_i x[i] a[j, i]: one block per LoRA rank row.
__global__ void lora_down_kernel(const __nv_bfloat16* __restrict__ x, const float* __restrict__ a, int64_t in_f,
                                 float* __restrict__ xa) {
  __shared__ float red[32];
  float s = 0.f;
  for (int64_t i = threadIdx.x; i < in_f; i += blockDim.x) s += __bfloat162float(x[i]) * a[blockIdx.x * in_f + i];
  s = block_sum(s, red);
  if (threadIdx.x == 0) xa[blockIdx.x] = s;
}

bool is_pow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

template <typename Args>
cudaError_t launch_with(const void* kernel, const Args& args, unsigned grid, int threads, int smem, bool dependent,
                        cudaStream_t st) {
  void* params[] = {const_cast<Args*>(&args)};
  return launch_dependent(kernel, params, dim3(grid), threads, smem, dependent, st);
}

// The kernels for one matrix (nf4_gemv_kernel over GemvArgs) and several (nf4_gemv_group_kernel),
// set up once per instantiation.
template <int kRows, int kWords, bool kDoubleQuant>
const void* gemv_kernel(bool group) {
  return group ? (const void*)nf4_gemv_group_kernel<kRows, kWords, kDoubleQuant, true>
               : (const void*)nf4_gemv_kernel<kRows, kWords, kDoubleQuant>;
}

template <int kRows, int kWords, bool kDoubleQuant>
const KernelSetup& gemv_setup(bool group) {
  static const KernelSetup setups[2] = {setup_kernel(gemv_kernel<kRows, kWords, kDoubleQuant>(false), kWarps * 32, kTableBytes),
                                        setup_kernel(gemv_kernel<kRows, kWords, kDoubleQuant>(true), kWarps * 32, kTableBytes)};
  return setups[group];
}

// The resident block slots (blocks_per_sm x SMs) and how full the last round of row groups leaves them.
struct Rounds {
  int64_t groups, slots;
  double fill() const { return (double)groups / (double)(((groups + slots - 1) / slots) * slots); }
};

Rounds rounds_of(int64_t rows, int group_rows, const KernelSetup& setup, int sms) {
  return {(rows + group_rows - 1) / group_rows, (int64_t)(setup.blocks_per_sm > 0 ? setup.blocks_per_sm : 1) * sms};
}

// Grid: at most the resident blocks, evened so that every block takes the same number of row groups
// (the last possibly one fewer), so no block waits for a free slot and refills its table.
template <int kRows, int kWords, bool kDoubleQuant>
cudaError_t launch_gemv(const Nf4GemvGroup& g, const GemvArgs& single, int sms, cudaStream_t st) {
  const bool group = g.count > 1;
  const KernelSetup& setup = gemv_setup<kRows, kWords, kDoubleQuant>(group);
  if (setup.error != cudaSuccess) return setup.error;
  const Rounds r = rounds_of(g.rows, kWarps * kRows, setup, sms);
  const int64_t per_block = (r.groups + r.slots - 1) / r.slots;
  const unsigned grid = (unsigned)((r.groups + per_block - 1) / per_block);
  const void* kernel = gemv_kernel<kRows, kWords, kDoubleQuant>(group);
  return group ? launch_with(kernel, g, grid, kWarps * 32, kTableBytes, setup.dependent_launch, st)
               : launch_with(kernel, single, grid, kWarps * 32, kTableBytes, setup.dependent_launch, st);
}

template <int kWords, bool kDoubleQuant>
cudaError_t launch_gemv_rows(const Nf4GemvGroup& g, const GemvArgs& single, int sms, cudaStream_t st) {
  // 2 rows per warp halves the x loads and the table fill per row, but halves the warps: keep 1 row
  // where 2 would leave fewer than kWarps warps per SM (k/v's 1024 rows on 132 SMs), or where 2 rows'
  // groups fill the last round of resident blocks poorly and 1 row's fill it well (q/k/v's 6144 rows
  // on an H100: 384 groups of 16 rows on 264 slots, 73% of the second round, against 768 of 8, 97%;
  // the bench's src_balanced: layer 54.6 -> 54.0 us). (Two warps per row pair, each taking half of
  // each row and adding in shared memory, lost there: q/k/v 8.4 -> 9.9 us on an H100; the block's
  // syncs per group stop warps running ahead into the next group's loads.)
  const bool group = g.count > 1;
  const KernelSetup &two = gemv_setup<2, kWords, kDoubleQuant>(group), &one = gemv_setup<1, kWords, kDoubleQuant>(group);
  if (two.error != cudaSuccess) return two.error;
  if (one.error != cudaSuccess) return one.error;
  const bool balanced = !(rounds_of(g.rows, kWarps * 2, two, sms).fill() < 0.8 && rounds_of(g.rows, kWarps, one, sms).fill() > 0.9);
  if (g.rows / 2 >= (int64_t)kWarps * sms && balanced) return launch_gemv<2, kWords, kDoubleQuant>(g, single, sms, st);
  return launch_gemv<1, kWords, kDoubleQuant>(g, single, sms, st);
}

int log2_of(int64_t v) {
  int l = 0;
  while ((int64_t(1) << l) < v) l++;
  return l;
}

// One matrix of a call, as the C ABI passes it.
struct GemvOperand {
  const void* packed;
  int64_t out_f;
  const float* absmax_f32;
  const uint8_t* absmax_q;
  const float* nested_absmax;
  const float* nested_code;
  int32_t nested_blocksize;
  float nested_offset;
  const void* bias;
  const float* a;
  const float* b;
  float scale;
  int32_t r;
  void* y;
};

// Checks and launches count (1..kMaxGroup) matrices sharing x in one grid.
tsl_status gemv_group(const char* op, int count, const GemvOperand* w, int64_t in_f, int32_t blocksize, const void* d_x,
                      int32_t bias_dtype) {
  TSL_TRY(ensure_init(op));
  TSL_REQUIRE(op, count >= 1 && count <= kMaxGroup, "count must be 1..%d matrices, got %d", kMaxGroup, count);
  TSL_REQUIRE(op, in_f > 0 && in_f % 64 == 0, "in_f must be a positive multiple of 64, got %lld", (long long)in_f);
  TSL_REQUIRE(op, in_f / 8 <= INT32_MAX, "in_f must be below 2^34, got %lld", (long long)in_f);
  TSL_REQUIRE(op, blocksize >= 32 && is_pow2(blocksize),
              "blocksize must be a power of two of at least 32 (bitsandbytes uses 64), got %d", blocksize);
  TSL_REQUIRE(op, (uintptr_t)d_x % 16 == 0, "x must be 16-byte aligned");
  const bool dq = w[0].absmax_q != nullptr;
  int lora_rank = 0;
  for (int i = 0; i < count; i++) {
    const GemvOperand& m = w[i];
    TSL_REQUIRE(op, m.out_f > 0, "out_f must be positive, got %lld (matrix %d)", (long long)m.out_f, i);
    TSL_REQUIRE(op, (m.absmax_q != nullptr) == dq, "the matrices of a group must all be double-quantized or none (matrix %d)", i);
    TSL_REQUIRE(op, m.absmax_q ? (m.nested_absmax && m.nested_code && m.nested_blocksize > 0) : m.absmax_f32 != nullptr,
                "absmax: give f32 absmax, or the double-quantized absmax with nested absmax, code and blocksize (matrix %d)", i);
    TSL_REQUIRE(op, !m.absmax_q || is_pow2(m.nested_blocksize),
                "nested_blocksize must be a power of two (bitsandbytes uses 256), got %d (matrix %d)", m.nested_blocksize, i);
    TSL_REQUIRE(op, (uintptr_t)m.packed % 16 == 0, "packed weights must be 16-byte aligned (matrix %d)", i);
    TSL_REQUIRE(op, !m.bias || is_float_dtype(bias_dtype), "bias dtype must be f32, bf16 or f16");
    TSL_REQUIRE(op, !m.a || (m.b && m.r > 0), "LoRA needs both a and b and r > 0 (matrix %d)", i);
    if (m.a) lora_rank += m.r;
  }
  Scratch xa;
  if (lora_rank) TSL_TRY(scratch_alloc(op, (uint64_t)lora_rank * 4, &xa.p));
  cudaStream_t st = compute_stream();
  Nf4GemvGroup g = {};
  g.count = count;
  g.in_f = in_f;
  g.log2_blocksize = log2_of(blocksize);
  g.bias_dtype = bias_dtype;
  g.x = static_cast<const __nv_bfloat16*>(d_x);
  float* xa_at = static_cast<float*>(xa.p);
  for (int i = 0; i < count; i++) {
    const GemvOperand& m = w[i];
    if (m.a) lora_down_kernel<<<m.r, 256, 0, st>>>(g.x, m.a, in_f, xa_at);
    g.m[i] = Nf4GemvMatrix{static_cast<const uint32_t*>(m.packed),
                           Nf4Absmax{m.absmax_f32, m.absmax_q, m.nested_absmax, m.nested_code, m.nested_blocksize, m.nested_offset},
                           m.absmax_q ? log2_of(m.nested_blocksize) : 0,
                           g.rows,
                           m.out_f,
                           m.bias,
                           m.a ? xa_at : nullptr,
                           m.b,
                           m.scale,
                           m.r,
                           static_cast<__nv_bfloat16*>(m.y)};
    g.rows += m.out_f;
    if (m.a) xa_at += m.r;
  }
  int dev = 0, sms = 1;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  const Nf4GemvMatrix& m0 = g.m[0];
  const GemvArgs single{m0.packed, m0.out_f, in_f, g.log2_blocksize, m0.log2_nested_blocksize, m0.scales, g.x, m0.bias,
                        bias_dtype, m0.xa, m0.lora_b, m0.lora_scale, m0.r, m0.y};
  cudaError_t e;
  if (g.log2_blocksize >= 6)
    e = dq ? launch_gemv_rows<8, true>(g, single, sms, st) : launch_gemv_rows<8, false>(g, single, sms, st);
  else
    e = dq ? launch_gemv_rows<4, true>(g, single, sms, st) : launch_gemv_rows<4, false>(g, single, sms, st);
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_fail(op, e);
  return TSL_OK;
}

}  // namespace
}  // namespace tsl

using namespace tsl;

extern "C" tsl_status tsl_nf4_gemv(const uint8_t* d_packed, int64_t out_f, int64_t in_f, int32_t blocksize,
                                   const float* d_absmax_f32, const uint8_t* d_absmax_q, const float* d_nested_absmax,
                                   const float* d_nested_code, int32_t nested_blocksize, float nested_offset,
                                   const void* d_x, const void* d_bias, int32_t bias_dtype, const float* d_a,
                                   const float* d_b, float scale, int32_t r, void* d_y) {
  const GemvOperand w{d_packed, out_f, d_absmax_f32, d_absmax_q, d_nested_absmax, d_nested_code, nested_blocksize,
                      nested_offset, d_bias, d_a, d_b, scale, r, d_y};
  return gemv_group("tsl_nf4_gemv", 1, &w, in_f, blocksize, d_x, bias_dtype);
}

extern "C" tsl_status tsl_nf4_gemv_group(int32_t count, const uint64_t* h_packed, const int64_t* h_out_f, int64_t in_f,
                                         int32_t blocksize, const uint64_t* h_absmax_f32, const uint64_t* h_absmax_q,
                                         const uint64_t* h_nested_absmax, const uint64_t* h_nested_code,
                                         const int32_t* h_nested_blocksize, const float* h_nested_offset, const void* d_x,
                                         const uint64_t* h_bias, int32_t bias_dtype, const uint64_t* h_a, const uint64_t* h_b,
                                         const float* h_scale, const int32_t* h_r, const uint64_t* h_y) {
  const char* op = "tsl_nf4_gemv_group";
  TSL_REQUIRE(op, count >= 1 && count <= kMaxGroup, "count must be 1..%d matrices, got %d", kMaxGroup, count);
  TSL_REQUIRE(op, h_packed && h_out_f && h_y, "packed, out_f and y arrays are required");
  const auto at = [](const uint64_t* arr, int i) { return arr ? reinterpret_cast<void*>(arr[i]) : nullptr; };
  GemvOperand w[kMaxGroup];
  for (int i = 0; i < count; i++)
    w[i] = GemvOperand{at(h_packed, i), h_out_f[i], static_cast<const float*>(at(h_absmax_f32, i)),
                       static_cast<const uint8_t*>(at(h_absmax_q, i)), static_cast<const float*>(at(h_nested_absmax, i)),
                       static_cast<const float*>(at(h_nested_code, i)), h_nested_blocksize ? h_nested_blocksize[i] : 0,
                       h_nested_offset ? h_nested_offset[i] : 0.f, at(h_bias, i), static_cast<const float*>(at(h_a, i)),
                       static_cast<const float*>(at(h_b, i)), h_scale ? h_scale[i] : 0.f, h_r ? h_r[i] : 0, at(h_y, i)};
  return gemv_group(op, count, w, in_f, blocksize, d_x, bias_dtype);
}
