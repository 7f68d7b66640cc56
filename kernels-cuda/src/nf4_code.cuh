// What every NF4 kernel reads: the NF4 code (QLoRA, Dettmers et al. 2023), index 0..15, as in
// DESIGN.md "Facts to stay compatible with" and bitsandbytes (one copy per translation unit), and a
// block's absmax, plain f32 or double-quantized (8-bit codes of absmax - offset, blocks of 256).
#pragma once

namespace tsl {
namespace {
__constant__ float kNf4Code[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                                   -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                                   0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
                                   0.44070982933044006f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

struct Nf4Absmax {
  const float* f32;  // per block, when not double-quantized
  const uint8_t* q;  // 8-bit codes of absmax - offset, when double-quantized
  const float* nested_absmax;
  const float* nested_code;
  int nested_blocksize;
  float nested_offset;
  __device__ __forceinline__ float operator()(int64_t block) const {
    if (!q) return __ldg(f32 + block);
    return __ldg(nested_code + __ldg(q + block)) * __ldg(nested_absmax + block / nested_blocksize) + nested_offset;
  }
};
}  // namespace
}  // namespace tsl
