// The terms of tsloth's peak-memory estimate for 4-bit LoRA training, as data: each term says
// which category it lands in and where its formula comes from. DESIGN.md gives the starting
// formula (weights ~ params x 0.5 byte; activations ~ batch x seq x hidden x 2 bytes per kept
// tensor; optimizer ~ LoRA params x 4 bytes x 2; plus 1-2 GB overhead); the terms below refine it
// with how the engine allocates (lib/backend/types.ts, lib/model).
import type { ModelConfig } from "../formats/hf-config.js";

/** The shape fields the estimate (and the engine's plan) need: a ModelConfig, or just these fields. */
export type ModelShape = Pick<ModelConfig, "hiddenSize" | "intermediateSize" | "numLayers" | "numHeads" | "numKvHeads" | "headDim" | "vocabSize" | "tieWordEmbeddings">
  & Partial<Pick<ModelConfig, "attentionBias" | "qkNorm">>;

export const LORA_TARGETS = ["q", "k", "v", "o", "gate", "up", "down"] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];
export type CheckpointMode = "off" | "true" | "unsloth";

/** [in, out] features of each linear in one decoder layer (HF Llama: weight is [out, in]). */
export function linearShapes(m: ModelShape): Record<LoraTarget, [number, number]> {
  const q = m.numHeads * m.headDim;
  const kv = m.numKvHeads * m.headDim;
  return {
    q: [m.hiddenSize, q],
    k: [m.hiddenSize, kv],
    v: [m.hiddenSize, kv],
    o: [q, m.hiddenSize],
    gate: [m.hiddenSize, m.intermediateSize],
    up: [m.hiddenSize, m.intermediateSize],
    down: [m.intermediateSize, m.hiddenSize],
  };
}

// NF4 storage per weight (bitsandbytes layout, DESIGN.md "Facts"): 4 bits per value, one 8-bit
// absmax per 64-value block, one fp32 nested absmax per 256 absmax values (double quantization,
// Dettmers et al., "QLoRA", 2023, sec. 3: 0.127 bit/param of constants instead of 0.5), plus
// per tensor the 16-entry fp32 NF4 code table, the 256-entry fp32 dynamic map of the nested
// quantization and its fp32 offset.
export const NF4_BLOCK = 64;
export const NF4_NESTED_BLOCK = 256;
export const NF4_BYTES_PER_PARAM = 0.5 + 1 / NF4_BLOCK + 4 / (NF4_BLOCK * NF4_NESTED_BLOCK);
export const NF4_BYTES_PER_TENSOR = 16 * 4 + 256 * 4 + 4;

// LoRA adapters and their gradients are fp32, AdamW keeps two fp32 moments per adapter value
// (DESIGN.md "LoRA": fp32 adapters and AdamW state; Loshchilov & Hutter, "Decoupled Weight Decay
// Regularization", 2019).
export const ADAPTER_BYTES_PER_PARAM = 4 + 4; // weight + gradient
export const ADAMW_BYTES_PER_PARAM = 4 * 2; // exp_avg + exp_avg_sq

// Chunked cross-entropy (Unsloth / Liger-Kernel): logits exist for one chunk of tokens at a time.
export const CE_CHUNK_TOKENS = 1024;
// cuBLASLt workspace NVIDIA recommends for Hopper GEMMs (cuBLAS docs, cublasSetWorkspace: 32 MiB).
export const CUBLAS_WORKSPACE_BYTES = 32 * 1024 ** 2;
// CUDA context, loaded kernels and allocator rounding: DESIGN.md's "plus 1-2 GB overhead"; a CUDA 12
// context with cuBLASLt loaded measures 0.5-0.7 GiB on H100, the rest is fragmentation headroom.
export const CUDA_OVERHEAD_BYTES = 1024 ** 3;

/** Bytes per token that one decoder layer keeps from its forward for its backward. */
export function layerKeptBytesPerToken(m: ModelShape, r: number, targets: readonly LoraTarget[], b: number): number {
  const H = m.hiddenSize;
  const qd = m.numHeads * m.headDim;
  const kvd = m.numKvHeads * m.headDim;
  const I = m.intermediateSize;
  return (
    H * b + // layer input (needed by the attention RMSNorm backward)
    H * b + 4 + // attention RMSNorm output (input of q/k/v and of their LoRA dA) + fp32 rstd
    (qd + 2 * kvd) * b + // q, k after RoPE and v (attention backward)
    qd * b + m.numHeads * 4 + // attention output (o_proj input) + fp32 logsumexp per head (FlashAttention-2 style bwd)
    H * b + // residual after attention (MLP RMSNorm backward)
    H * b + 4 + // MLP RMSNorm output + rstd
    2 * I * b + // gate and up projections (SwiGLU backward)
    I * b + // silu(gate) * up (down_proj input)
    targets.length * r * b // x·Aᵀ of every LoRA target (its dB needs it)
  );
}

/** Bytes per token of gradients alive at once in one layer's backward (the MLP's: d of down input, d gate, d up, dx twice). */
export function layerBackwardBytesPerToken(m: ModelShape, b: number): number {
  return (3 * m.intermediateSize + 2 * m.hiddenSize) * b;
}
