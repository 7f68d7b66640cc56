// When an estimate does not fit: the nearest settings that do. "Nearest" ranks changes by what
// they cost the user: stronger checkpointing costs only speed (recompute, PCIe copies); a smaller
// batch with more gradient accumulation keeps the effective batch (DESIGN.md "batch tuning":
// start at batch 1, raise accumulation) and costs throughput; a shorter sequence changes what the
// model learns from, so it comes last.
import type { CheckpointMode, ModelShape } from "./estimator-terms.js";
// estimator.ts imports this file too; the cycle is safe because both only call each other at run time.
import { type EstimateOptions, type EstimateSettings, estimateBytes } from "./estimator.js";

export interface FitSuggestion {
  batch: number;
  gradAccum: number;
  seq: number;
  checkpoint: CheckpointMode;
  deviceBytes: number;
  /** What changed, in words: "checkpoint unsloth", "batch 4 -> 1 with gradAccum 1 -> 4". */
  change: string;
}

const MODES: CheckpointMode[] = ["off", "true", "unsloth"];
const MIN_SEQ = 128;
// Weights of each kind of change in the ranking (one step = one mode stronger / one halving).
const COST_CHECKPOINT_STEP = 1;
const COST_BATCH_HALVING = 1.5;
const COST_SEQ_HALVING = 4;

function halvings(from: number, min: number): number[] {
  const out = [from];
  for (let v = Math.floor(from / 2); v >= min; v = Math.floor(v / 2)) out.push(v);
  if (out[out.length - 1] > min && from > min) out.push(min);
  return out;
}

function describe(from: EstimateSettings, to: Omit<FitSuggestion, "deviceBytes" | "change">): string {
  const parts: string[] = [];
  if (to.checkpoint !== from.checkpoint) parts.push(`checkpoint ${from.checkpoint} -> ${to.checkpoint}`);
  if (to.batch !== from.batch) parts.push(`batch ${from.batch} -> ${to.batch} with gradAccum ${from.gradAccum} -> ${to.gradAccum} (same effective batch)`);
  if (to.seq !== from.seq) parts.push(`seq ${from.seq} -> ${to.seq}`);
  return parts.join(", ");
}

/** Up to `limit` fitting settings, nearest first (ties: the one that uses more of the GPU). */
export function suggestFittingSettings(config: ModelShape, opts: EstimateOptions, from: EstimateSettings, limit = 3): FitSuggestion[] {
  const gpu = opts.gpuBytes!;
  const found: (FitSuggestion & { cost: number })[] = [];
  const modeIndex = MODES.indexOf(from.checkpoint);
  for (const checkpoint of MODES.slice(modeIndex)) {
    for (const batch of halvings(from.batch, 1)) {
      for (const seq of halvings(from.seq, Math.min(MIN_SEQ, from.seq))) {
        if (checkpoint === from.checkpoint && batch === from.batch && seq === from.seq) continue;
        const e = estimateBytes(config, { ...opts, checkpoint, batch, seq, gradAccum: from.gradAccum, targets: from.targets });
        if (e.deviceBytes > gpu) continue;
        const gradAccum = Math.ceil((from.gradAccum * from.batch) / batch);
        const s = { batch, gradAccum, seq, checkpoint };
        const cost =
          (MODES.indexOf(checkpoint) - modeIndex) * COST_CHECKPOINT_STEP +
          Math.log2(from.batch / batch) * COST_BATCH_HALVING +
          Math.log2(from.seq / seq) * COST_SEQ_HALVING;
        found.push({ ...s, deviceBytes: e.deviceBytes, change: describe(from, s), cost });
      }
    }
  }
  found.sort((a, b) => a.cost - b.cost || b.deviceBytes - a.deviceBytes);
  return found.slice(0, limit).map(({ cost: _cost, ...s }) => s);
}
