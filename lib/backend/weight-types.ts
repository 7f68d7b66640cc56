// The frozen weights and the LoRA adapters the Backend's linear ops take (re-exported by types.ts).
import type { Tensor } from "./types.js";

/**
 * A frozen 4-bit NF4 weight in the bitsandbytes layout (QLoRA, Dettmers et al. 2023): W is
 * [outFeatures, inFeatures], flattened row-major and cut into blocks of `blocksize` (64) values;
 * each value is the index of its nearest NF4 code (DESIGN.md's 16 values) after division by the
 * block's absmax; two indices per byte, the even element in the high nibble.
 *   W[i] = NF4_CODE[nibble(i)] * absmax[i / blocksize]
 * With double quantization the absmax are themselves 8-bit: absmax[j] =
 *   nestedCode[absmaxQ[j]] * nestedAbsmax[j / nestedBlocksize] + nestedOffset.
 */
export interface Nf4Weight {
  readonly kind: "nf4";
  readonly outFeatures: number;
  readonly inFeatures: number;
  readonly blocksize: number;
  /** u8 [out * in / 2] */
  readonly packed: Tensor;
  /** f32 [nBlocks] without double quantization, u8 [nBlocks] with it. */
  readonly absmax: Tensor;
  readonly nested: null | {
    /** f32 [ceil(nBlocks / nestedBlocksize)] */
    readonly absmax: Tensor;
    /** f32 [256]: the 8-bit dynamic code bitsandbytes stores as nested_quant_map. */
    readonly code: Tensor;
    readonly blocksize: number;
    readonly offset: number;
  };
}

/** A frozen dense weight [out, in] in f32, bf16 or f16 (16-bit loading, LM heads, parity tests). */
export interface DenseWeight {
  readonly kind: "dense";
  readonly outFeatures: number;
  readonly inFeatures: number;
  readonly weight: Tensor;
}

/** A frozen linear layer: its weight plus an optional bias [out] (Qwen2's q/k/v). */
export interface FrozenLinear {
  readonly weight: Nf4Weight | DenseWeight;
  readonly bias: Tensor | null;
}

/** A LoRA adapter (Hu et al. 2021): a f32 [r, in], b f32 [out, r], scale = alpha/r (rsLoRA: alpha/sqrt(r)). */
export interface LoraAdapter {
  readonly a: Tensor;
  readonly b: Tensor;
  readonly scale: number;
}

/** Where LoRA gradients accumulate (same shapes as the adapter's a and b). */
export interface LoraGrads {
  readonly a: Tensor;
  readonly b: Tensor;
}
