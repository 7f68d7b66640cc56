// Gradient checkpointing as a policy of the graph (Chen et al. 2016, "Training Deep Nets with
// Sublinear Memory Cost"; Unsloth's offloaded variant):
//   off      keep every layer's activations for backward: most memory, no recompute;
//   true     keep only each layer's input on the device, recompute the layer in backward;
//   unsloth  copy each layer's input to host memory during forward, free it on the device, and
//            bring it back (prefetched one layer ahead) for the recompute.
export type CheckpointPolicy = "off" | "true" | "unsloth";

export const CHECKPOINT_POLICIES: readonly CheckpointPolicy[] = ["off", "true", "unsloth"];

export function parseCheckpointPolicy(v: string | boolean | undefined): CheckpointPolicy {
  if (v === undefined) return "unsloth";
  if (v === true) return "true";
  if (v === false) return "off";
  const s = v.toLowerCase();
  if (s === "false" || s === "none" || s === "off") return "off";
  if (s === "true" || s === "on") return "true";
  if (s === "unsloth") return "unsloth";
  throw new Error(`tsloth: checkpoint policy "${v}" is not known; expected one of unsloth, true, off`);
}

/** The config fields the attention-keeping rule reads. */
export interface AttentionKeepShape {
  numLayers: number;
  hiddenSize: number;
  numHeads: number;
  headDim: number;
}

/**
 * Below this much layer input a micro-batch does not keep its attention outputs: the attention
 * forward is then a small part of a short step, copies cost what the unsloth offload threshold
 * measured (CUDA_OFFLOAD_MIN_BYTES, bench/NOTES.md), and the outputs in flight would outweigh
 * the inputs the offload moves off the device in a model of few layers.
 */
export const KEEP_ATTENTION_MIN_LAYER_INPUT_BYTES = 8 * 1024 * 1024;

/**
 * Whether `unsloth` checkpointing should also keep each layer's attention output and log-sum-exp
 * in host RAM so the recompute skips the attention forward (LlamaModel's StepOptions): only from
 * KEEP_ATTENTION_MIN_LAYER_INPUT_BYTES of layer input up, and only while the layer inputs and those
 * outputs of a `tokens`-token micro-batch together take at most half of `hostAvailableBytes`, so
 * that long sequences keep the reach that offloading the inputs alone gives.
 * TSLOTH_KEEP_ATTENTION=0 or 1 overrides the rule.
 */
export function keepAttentionFits(c: AttentionKeepShape, tokens: number, computeBytes: number, hostAvailableBytes: number): boolean {
  const forced = process.env.TSLOTH_KEEP_ATTENTION;
  if (forced === "0" || forced === "1") return forced === "1";
  if (tokens * c.hiddenSize * computeBytes < KEEP_ATTENTION_MIN_LAYER_INPUT_BYTES) return false;
  const perToken = c.numLayers * (c.hiddenSize * computeBytes + c.numHeads * (c.headDim * computeBytes + 4));
  return perToken * tokens <= hostAvailableBytes / 2;
}
