// The LoRA update of an output on tensor cores at rank ≤ 16 (lora_lowrank.cu); other cases take
// cuBLASLt as before.
#pragma once
#include "common.cuh"

namespace tsl {

constexpr int kLoraLowRankMax = 16;

// Whether a LoRA update of an output [T, N] at rank r takes lora_up_acc: r ≤ 16, the output big
// enough to stream from memory (≥ 48 MB; smaller ones stay in L2, where cuBLASLt was as fast or
// faster), and TSLOTH_LORA_KERNELS not 0.
bool lora_up_acc_applies(int64_t T, int64_t N, int r);

// y[T, N] (bf16, contiguous) += s · u · f[N, r]ᵀ (f bf16 [N, r]); u bf16 [T, r] with row stride
// ldu, or transposed ([r, T] with row stride ldu) when u_transposed.
tsl_status lora_up_acc(const char* op, void* y, int64_t T, int64_t N, const void* u, int64_t ldu, bool u_transposed,
                       const void* f, int r, float s);

// A bf16 copy of an f32 adapter matrix [rows, cols] in scratch, transposed to [cols, rows] when asked.
tsl_status lora_cast_bf16(const char* op, const float* src, int64_t rows, int64_t cols, bool transpose, Scratch* out);

}  // namespace tsl
