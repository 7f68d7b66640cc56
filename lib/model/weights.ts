// The frozen base of a Llama-family model as backend tensors, and the names Hugging Face uses for them.
import type { Backend, FrozenLinear, Tensor } from "../backend/types.js";
import type { ModelConfig } from "../formats/hf-config.js";

/** The seven projections LoRA may target, in PEFT's short names. */
export const LINEAR_NAMES = ["q", "k", "v", "o", "gate", "up", "down"] as const;
export type LinearName = (typeof LINEAR_NAMES)[number];

export interface LayerWeights {
  inputNorm: Tensor;
  postAttentionNorm: Tensor;
  /** Qwen3's per-head RMSNorm weights [headDim] on q and k. */
  qNorm: Tensor | null;
  kNorm: Tensor | null;
  linears: Record<LinearName, FrozenLinear>;
}

export interface LlamaWeights {
  embed: Tensor;
  layers: LayerWeights[];
  finalNorm: Tensor;
  /** The LM head [vocab, hidden]: the embedding itself when tied. */
  lmHead: Tensor;
}

/** Hugging Face module path of a projection: "self_attn.q_proj", "mlp.down_proj". */
export function hfModulePath(name: LinearName): string {
  return name === "q" || name === "k" || name === "v" || name === "o" ? `self_attn.${name}_proj` : `mlp.${name}_proj`;
}

export function hfLinearKey(layer: number, name: LinearName): string {
  return `model.layers.${layer}.${hfModulePath(name)}`;
}

/** [out, in] of each projection. */
export function linearShape(config: ModelConfig, name: LinearName): [number, number] {
  const { hiddenSize: h, intermediateSize: i, numHeads, numKvHeads, headDim: d } = config;
  switch (name) {
    case "q": return [numHeads * d, h];
    case "k":
    case "v": return [numKvHeads * d, h];
    case "o": return [h, numHeads * d];
    case "gate":
    case "up": return [i, h];
    case "down": return [h, i];
  }
}

export function hasBias(config: ModelConfig, name: LinearName): boolean {
  if (name === "q" || name === "k" || name === "v") return config.attentionBias;
  if (name === "o") return config.outputBias;
  return false;
}

function freeLinear(be: Backend, l: FrozenLinear): void {
  const w = l.weight;
  if (w.kind === "dense") be.free(w.weight);
  else {
    be.free(w.packed);
    be.free(w.absmax);
    if (w.nested) {
      be.free(w.nested.absmax);
      be.free(w.nested.code);
    }
  }
  if (l.bias) be.free(l.bias);
}

export function freeLlamaWeights(be: Backend, w: LlamaWeights): void {
  for (const layer of w.layers) {
    be.free(layer.inputNorm);
    be.free(layer.postAttentionNorm);
    if (layer.qNorm) be.free(layer.qNorm);
    if (layer.kNorm) be.free(layer.kNorm);
    for (const n of LINEAR_NAMES) freeLinear(be, layer.linears[n]);
  }
  be.free(w.finalNorm);
  if (w.lmHead !== w.embed) be.free(w.lmHead);
  be.free(w.embed);
}
