// Turns host tensors (from a checkpoint or built in memory) into the backend's frozen base, one
// tensor at a time: each 16-bit linear weight is quantized to NF4 as it arrives (or taken
// pre-quantized from a bitsandbytes checkpoint), so the full 16-bit model is never resident.
import type { Backend, DenseWeight, FrozenLinear, MemoryCategory, Nf4Weight, Tensor } from "../backend/types.js";
import { f32ToBf16, f32ToF16 } from "../formats/dtype.js";
import type { ModelConfig } from "../formats/hf-config.js";
import { nf4Quantize, NF4_BLOCKSIZE, type Nf4Tensor } from "../quant/nf4.js";
import { hasBias, hfLinearKey, LINEAR_NAMES, linearShape, type LayerWeights, type LinearName, type LlamaWeights } from "./weights.js";

/** Where weights come from, by Hugging Face name. */
export interface WeightSource {
  has(name: string): boolean;
  readF32(name: string): Float32Array;
  /** A pre-quantized NF4 weight (bitsandbytes checkpoints), or null when stored in 16/32-bit. */
  readNf4(name: string): Nf4Tensor | null;
}

export interface UploadOptions {
  /** "nf4": frozen linears in 4-bit (QLoRA); "dense": in the compute dtype (parity checks, 16-bit LoRA). */
  linears: "nf4" | "dense";
  /** Called after each tensor, e.g. to report load progress. */
  onTensor?: (name: string) => void;
}

/** Host f32 values into a tensor of the backend's compute dtype (bf16/f16 on the GPU). */
export function uploadInComputeDtype(be: Backend, values: Float32Array, shape: readonly number[], category: MemoryCategory): Tensor {
  const dt = be.computeDtype;
  if (dt === "f32") return be.upload(values, shape, "f32", category);
  return be.upload(dt === "bf16" ? f32ToBf16(values) : f32ToF16(values), shape, dt, category);
}

function uploadFloat(be: Backend, values: Float32Array, shape: number[]): Tensor {
  return uploadInComputeDtype(be, values, shape, "base_weights");
}

export function uploadNf4(be: Backend, q: Nf4Tensor): Nf4Weight {
  const [out, inF] = q.shape;
  const nested = q.nested
    ? {
        absmax: be.upload(q.nested.nestedAbsmax, [q.nested.nestedAbsmax.length], "f32", "base_weights"),
        code: be.upload(q.nested.nestedQuantMap, [q.nested.nestedQuantMap.length], "f32", "base_weights"),
        blocksize: q.nested.nestedBlocksize,
        offset: Math.fround(q.nested.offset),
      }
    : null;
  const absmax = q.nested
    ? be.upload(q.nested.quantizedAbsmax, [q.nested.quantizedAbsmax.length], "u8", "base_weights")
    : be.upload(q.absmax, [q.absmax.length], "f32", "base_weights");
  return {
    kind: "nf4", outFeatures: out, inFeatures: inF, blocksize: q.blocksize,
    packed: be.upload(q.packed, [q.packed.length], "u8", "base_weights"), absmax, nested,
  };
}

/**
 * Where the token embedding lives. An untied table is frozen and only ever gathered by row, so where
 * the backend's kernels read pinned host memory in place it stays in host RAM: on Llama-3.1-8B that
 * keeps 1 GiB off the device for ~16 MB read over PCIe per 2048-token step (one row per token). A
 * tied table is also the LM head's weight, which a GEMM reads whole every step: it stays on the device.
 */
export function embeddingCategory(be: Pick<Backend, "kernelsReadHostMemory">, config: Pick<ModelConfig, "tieWordEmbeddings">): MemoryCategory {
  return be.kernelsReadHostMemory && !config.tieWordEmbeddings ? "offload_host" : "base_weights";
}

function need(src: WeightSource, name: string, why: string): Float32Array {
  if (!src.has(name)) throw new Error(`tsloth: the checkpoint has no tensor "${name}" (${why}); is it a complete Llama-family model?`);
  return src.readF32(name);
}

function loadLinear(be: Backend, config: ModelConfig, src: WeightSource, layer: number, name: LinearName, opts: UploadOptions): FrozenLinear {
  const key = hfLinearKey(layer, name);
  const shape = linearShape(config, name);
  let weight: Nf4Weight | DenseWeight;
  const pre = src.readNf4(`${key}.weight`);
  if (pre) {
    if (pre.shape[0] !== shape[0] || pre.shape[1] !== shape[1]) throw new Error(`tsloth: "${key}.weight" has shape [${pre.shape}], the config implies [${shape}]`);
    weight = uploadNf4(be, pre);
  } else {
    const values = need(src, `${key}.weight`, `layer ${layer} ${name} projection`);
    if (values.length !== shape[0] * shape[1]) throw new Error(`tsloth: "${key}.weight" has ${values.length} values, the config implies [${shape}]`);
    weight = opts.linears === "nf4"
      ? uploadNf4(be, nf4Quantize(values, shape, { blocksize: NF4_BLOCKSIZE, doubleQuant: true }))
      : { kind: "dense", outFeatures: shape[0], inFeatures: shape[1], weight: uploadFloat(be, values, shape) };
  }
  const bias = hasBias(config, name) ? uploadFloat(be, need(src, `${key}.bias`, "the config says the projection has a bias"), [shape[0]]) : null;
  opts.onTensor?.(key);
  return { weight, bias };
}

export function uploadLlamaWeights(be: Backend, config: ModelConfig, src: WeightSource, opts: UploadOptions): LlamaWeights {
  const { hiddenSize: h, vocabSize: vocab, headDim: d } = config;
  const embed = uploadInComputeDtype(be, need(src, "model.embed_tokens.weight", "token embedding"), [vocab, h], embeddingCategory(be, config));
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}`;
    const linears = {} as Record<LinearName, FrozenLinear>;
    for (const n of LINEAR_NAMES) linears[n] = loadLinear(be, config, src, l, n, opts);
    layers.push({
      inputNorm: uploadFloat(be, need(src, `${p}.input_layernorm.weight`, "norm"), [h]),
      postAttentionNorm: uploadFloat(be, need(src, `${p}.post_attention_layernorm.weight`, "norm"), [h]),
      qNorm: config.qkNorm ? uploadFloat(be, need(src, `${p}.self_attn.q_norm.weight`, "Qwen3 q norm"), [d]) : null,
      kNorm: config.qkNorm ? uploadFloat(be, need(src, `${p}.self_attn.k_norm.weight`, "Qwen3 k norm"), [d]) : null,
      linears,
    });
  }
  const finalNorm = uploadFloat(be, need(src, "model.norm.weight", "final norm"), [h]);
  // Tied models may still ship lm_head.weight (a copy); the config decides.
  const lmHead = config.tieWordEmbeddings || !src.has("lm_head.weight") ? embed : uploadFloat(be, src.readF32("lm_head.weight"), [vocab, h]);
  if (!config.tieWordEmbeddings && lmHead === embed) throw new Error(`tsloth: the config says embeddings are not tied but the checkpoint has no "lm_head.weight"`);
  return { embed, layers, finalNorm, lmHead };
}
