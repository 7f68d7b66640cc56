// The tensors of a merged checkpoint, in the order transformers writes a Llama-family model:
// embedding, then per layer its norms and projections, then the final norm and (untied) LM head.
// Each entry says where its values come from, so the merge can walk the plan one tensor at a time.
import type { TensorDtype } from "../formats/dtype.js";
import type { ModelConfig } from "../formats/hf-config.js";
import { hasBias, hfLinearKey, LINEAR_NAMES, linearShape, type LinearName } from "../model/weights.js";

export type PlannedSource =
  /** A projection: base weight (+ LoRA delta when adapted). */
  | { kind: "linear"; layer: number; target: LinearName }
  /** Copied as it is (norms, embedding, biases, LM head), cast to the output dtype. */
  | { kind: "copy" };

export interface MergePlanEntry {
  name: string;
  shape: [number, number] | [number];
  source: PlannedSource;
}

export function mergePlan(config: ModelConfig): MergePlanEntry[] {
  const { hiddenSize: h, vocabSize: v, headDim: d } = config;
  const out: MergePlanEntry[] = [{ name: "model.embed_tokens.weight", shape: [v, h], source: { kind: "copy" } }];
  for (let layer = 0; layer < config.numLayers; layer++) {
    const p = `model.layers.${layer}`;
    out.push({ name: `${p}.input_layernorm.weight`, shape: [h], source: { kind: "copy" } });
    for (const target of LINEAR_NAMES) {
      const key = hfLinearKey(layer, target);
      const shape = linearShape(config, target);
      out.push({ name: `${key}.weight`, shape, source: { kind: "linear", layer, target } });
      if (hasBias(config, target)) out.push({ name: `${key}.bias`, shape: [shape[0]], source: { kind: "copy" } });
    }
    out.push({ name: `${p}.post_attention_layernorm.weight`, shape: [h], source: { kind: "copy" } });
    if (config.qkNorm) {
      out.push({ name: `${p}.self_attn.q_norm.weight`, shape: [d], source: { kind: "copy" } });
      out.push({ name: `${p}.self_attn.k_norm.weight`, shape: [d], source: { kind: "copy" } });
    }
  }
  out.push({ name: "model.norm.weight", shape: [h], source: { kind: "copy" } });
  // transformers drops the tied LM head from saved checkpoints; the config re-ties it on load.
  if (!config.tieWordEmbeddings) out.push({ name: "lm_head.weight", shape: [v, h], source: { kind: "copy" } });
  return out;
}

export function planBytes(plan: readonly MergePlanEntry[], dtypeBytes: number): number {
  return plan.reduce((s, e) => s + e.shape.reduce((a, b) => a * b, 1) * dtypeBytes, 0);
}

/** Size in bytes of one element of an output dtype. */
export function outputDtypeBytes(dtype: TensorDtype): number {
  return dtype === "F32" ? 4 : 2;
}
