// NF4 matrix-vector v2, kept for the record (not built): measured slower than the version in
// kernels-cuda/src/nf4_gemv.cu on an H200 (9–11% vs 12–16% of copy bandwidth; bench/NOTES.md,
// "Generation"). Each warp takes two rows, its lanes read consecutive 4-byte words (8 codes) so
// the x loads that go with them are coalesced and serve both rows, and codes are decoded through a
// byte → half2 table replicated once per lane in shared memory (32 KiB per block), so the 32 lanes
// of a lookup hit 32 different banks. ptxas: 120 registers per thread, so only two blocks (16
// warps) fit per SM, too few loads in flight; launched with 256 threads and 32 KiB dynamic shared
// memory, min(rows / 16, 7 × SMs) blocks. Drops into nf4_gemv.cu's namespace (Scales, kCode).
constexpr int kV2Warps = 8;
constexpr int kV2Rows = 2;    // rows per warp, sharing each x load
constexpr int kV2Unroll = 8;  // 4-byte words per lane and row loaded before use
constexpr int kLutCopies = 32;

__device__ __forceinline__ float lora_bias_epilogue(float acc, int64_t row, const void* bias, int bias_dtype, const float* xa,
                                                    const float* lora_b, float lora_scale, int r) {
  if (bias) acc += load_as_float(bias, bias_dtype, row);
  if (xa) {
    float l = 0.f;
    for (int j = 0; j < r; j++) l += xa[j] * lora_b[row * r + j];
    acc += lora_scale * l;
  }
  return acc;
}

__global__ void __launch_bounds__(kV2Warps * 32) nf4_gemv_v2_kernel(
    const uint32_t* __restrict__ packed, int64_t out_f, int64_t in_f, int blocksize, Scales scales,
    const __nv_bfloat16* __restrict__ x, const void* __restrict__ bias, int bias_dtype, const float* __restrict__ xa,
    const float* __restrict__ lora_b, float lora_scale, int r, __nv_bfloat16* __restrict__ y) {
  // lut[byte * 32 + lane] = (code[byte >> 4], code[byte & 15]): lane l always reads bank l.
  extern __shared__ __half2 lut[];
  for (int i = threadIdx.x; i < 256 * kLutCopies; i += blockDim.x) {
    const int e = i / kLutCopies;
    lut[i] = __floats2half2_rn(kCode[e >> 4], kCode[e & 15]);
  }
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t words = in_f / 8;
  const uint4* __restrict__ x8 = reinterpret_cast<const uint4*>(x);  // 8 bf16 per word of codes
  const int64_t row_step = (int64_t)gridDim.x * kV2Warps * kV2Rows;
  for (int64_t row0 = ((int64_t)blockIdx.x * kV2Warps + warp) * kV2Rows; row0 < out_f; row0 += row_step) {
    float acc[kV2Rows];
#pragma unroll
    for (int rr = 0; rr < kV2Rows; rr++) acc[rr] = 0.f;
    for (int64_t w0 = lane; w0 < words; w0 += 32 * kV2Unroll) {
      uint32_t code[kV2Rows][kV2Unroll];
      float sc[kV2Rows][kV2Unroll];
      uint4 xv[kV2Unroll];
#pragma unroll
      for (int u = 0; u < kV2Unroll; u++) {
        const int64_t w = w0 + 32 * u;
        const bool in_row = w < words;
        xv[u] = in_row ? __ldg(x8 + w) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int rr = 0; rr < kV2Rows; rr++) {
          const int64_t row = row0 + rr;
          const bool ok = in_row && row < out_f;
          code[rr][u] = ok ? __ldcs(packed + row * words + w) : 0u;
          sc[rr][u] = ok ? scales((row * in_f + w * 8) / blocksize) : 0.f;
        }
      }
#pragma unroll
      for (int u = 0; u < kV2Unroll; u++) {
        const __nv_bfloat162* xp = reinterpret_cast<const __nv_bfloat162*>(&xv[u]);
        float2 xf[4];
#pragma unroll
        for (int j = 0; j < 4; j++) xf[j] = __bfloat1622float2(xp[j]);
#pragma unroll
        for (int rr = 0; rr < kV2Rows; rr++) {
          float s = 0.f;
#pragma unroll
          for (int j = 0; j < 4; j++) {
            const float2 c = __half22float2(lut[((code[rr][u] >> (8 * j)) & 0xffu) * kLutCopies + lane]);
            s += c.x * xf[j].x + c.y * xf[j].y;
          }
          acc[rr] += s * sc[rr][u];
        }
      }
    }
#pragma unroll
    for (int rr = 0; rr < kV2Rows; rr++) {
      const float total = warp_sum(acc[rr]);
      const int64_t row = row0 + rr;
      if (lane == 0 && row < out_f) y[row] = __float2bfloat16(lora_bias_epilogue(total, row, bias, bias_dtype, xa, lora_b, lora_scale, r));
    }
  }
}

int multiprocessors() {
  static int n = 0;
  if (!n) {
    int dev = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
    if (n <= 0) n = 100;
  }
  return n;
}

