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
