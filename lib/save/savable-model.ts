// What saving reads from a loaded model, in one place: the config, where the base model came
// from (its original shards are more exact than dequantized NF4), the frozen base on the backend
// and the LoRA adapters. The shape is structural so both the public `Model` and a bare engine
// (tests, benchmarks) can be saved.
import type { Backend, FrozenLinear, Tensor } from "../backend/types.js";
import type { ModelConfig, TorchDtype } from "../formats/hf-config.js";
import { bf16ToF32, f16ToF32, type TensorDtype } from "../formats/dtype.js";
import type { LoraState } from "../model/lora.js";
import type { LlamaWeights, LinearName } from "../model/weights.js";
import { dequantizeNestedAbsmax, NF4_CODE } from "../quant/nf4.js";

export interface SavableModel {
  /** The base model's directory (local dir or hub cache snapshot); absent for models built in memory. */
  readonly dir?: string;
  /** What the user loaded ("org/name", a path, "tsloth-tiny"); written as PEFT's base_model_name_or_path. */
  readonly name?: string;
  readonly config: ModelConfig;
  readonly engine: { readonly be: Backend; readonly weights: LlamaWeights; readonly lora: LoraState | null };
}

export const SAFETENSORS_DTYPE_OF: Record<TorchDtype, TensorDtype> = { bfloat16: "BF16", float16: "F16", float32: "F32" };

/** The dtype a merged checkpoint is written in: the base model's own (config torch_dtype). */
export function modelDtype(model: SavableModel): TensorDtype {
  return SAFETENSORS_DTYPE_OF[model.config.torchDtype];
}

export interface HostLora {
  /** f32 [r, in] */
  a: Float32Array;
  /** f32 [out, r] */
  b: Float32Array;
  r: number;
  scale: number;
}

/** A projection's adapter copied to the host, or null when the projection is not adapted. */
export function hostLora(model: SavableModel, layer: number, target: LinearName): HostLora | null {
  const slot = model.engine.lora?.byLayer[layer]?.[target];
  if (!slot) return null;
  const be = model.engine.be;
  return { a: be.download(slot.adapter.a), b: be.download(slot.adapter.b), r: slot.adapter.a.shape[0]!, scale: slot.adapter.scale };
}

/** The frozen weight on the host: dequantizable NF4 pieces, or dense f32 values. */
export type HostBaseWeight =
  | { kind: "nf4"; packed: Uint8Array; absmax: Float32Array; code: Float32Array; blocksize: number }
  | { kind: "dense"; values: Float32Array };

/**
 * A tensor's values as f32 on the host. 16-bit tensors come down as raw bits and widen on the host:
 * a backend's own f32 download may stage an f32 copy on the device (a 1 GB embedding on a GPU).
 */
export function downloadToHostF32(be: Backend, t: Tensor): Float32Array {
  if (t.dtype === "bf16") return bf16ToF32(be.downloadRaw(t) as Uint16Array);
  if (t.dtype === "f16") return f16ToF32(be.downloadRaw(t) as Uint16Array);
  return be.download(t);
}

export function hostBaseWeight(be: Backend, linear: FrozenLinear): HostBaseWeight {
  const w = linear.weight;
  if (w.kind === "dense") return { kind: "dense", values: downloadToHostF32(be, w.weight) };
  const packed = be.downloadRaw(w.packed) as Uint8Array;
  let absmax: Float32Array;
  if (w.nested) {
    absmax = dequantizeNestedAbsmax({
      quantizedAbsmax: be.downloadRaw(w.absmax) as Uint8Array,
      nestedAbsmax: be.download(w.nested.absmax),
      nestedQuantMap: be.download(w.nested.code),
      nestedBlocksize: w.nested.blocksize,
      offset: w.nested.offset,
    });
  } else absmax = be.download(w.absmax);
  return { kind: "nf4", packed, absmax, code: NF4_CODE, blocksize: w.blocksize };
}

/** Bytes hostBaseWeight holds for a linear (counted in the merge's working set). */
export function hostBaseWeightBytes(linear: FrozenLinear): number {
  const w = linear.weight;
  if (w.kind === "dense") return w.outFeatures * w.inFeatures * 4;
  const n = w.outFeatures * w.inFeatures;
  return Math.ceil(n / 2) + Math.ceil(n / w.blocksize) * (4 + 1);
}

/** f32 values of elements [start, end) of a host weight, into `out`. */
export function hostBaseRange(w: HostBaseWeight, start: number, end: number, out: Float32Array): void {
  if (w.kind === "dense") {
    out.set(w.values.subarray(start, end));
    return;
  }
  const { packed, absmax, code, blocksize } = w;
  for (let i = start; i < end; i++) {
    const byte = packed[i >> 1]!;
    out[i - start] = Math.fround(code[i & 1 ? byte & 15 : byte >> 4]! * absmax[Math.floor(i / blocksize)]!);
  }
}

/** A non-linear tensor (embedding, norms, biases, LM head) of the loaded model by HF name. */
export function backendTensorByName(model: SavableModel, name: string): Tensor | undefined {
  const w = model.engine.weights;
  if (name === "model.embed_tokens.weight") return w.embed;
  if (name === "model.norm.weight") return w.finalNorm;
  if (name === "lm_head.weight") return w.lmHead;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  if (!m) return undefined;
  const layer = w.layers[Number(m[1])];
  if (!layer) return undefined;
  switch (m[2]) {
    case "input_layernorm.weight": return layer.inputNorm;
    case "post_attention_layernorm.weight": return layer.postAttentionNorm;
    case "self_attn.q_norm.weight": return layer.qNorm ?? undefined;
    case "self_attn.k_norm.weight": return layer.kNorm ?? undefined;
  }
  const bias = /^(?:self_attn|mlp)\.(\w+)_proj\.bias$/.exec(m[2]!);
  if (bias) return layer.linears[bias[1] as LinearName]?.bias ?? undefined;
  return undefined;
}
