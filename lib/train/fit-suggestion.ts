// After an out-of-memory error: the nearest training settings that would fit the device, found by
// planning each candidate with the engine's own allocation plan (lib/memory/estimate-plan.ts).
import { formatBytes, MEMORY_CATEGORIES, type BackendTraits, type MemoryReport } from "../backend/types.js";
import type { ModelConfig } from "../formats/hf-config.js";
import { planTrainingStep } from "../memory/estimate-plan.js";
import type { CheckpointPolicy } from "../model/checkpoint-policy.js";

export interface FitSettings {
  batchSize: number;
  gradAccum: number;
  maxSeqLength: number;
  checkpoint: CheckpointPolicy;
  r: number;
  targets: readonly string[];
  /** Longest sequence seen in the data (rows are planned at min(this, maxSeqLength) tokens). */
  longestSequence: number;
}

function deviceBytes(peaks: Record<string, number>): number {
  let n = 0;
  for (const c of MEMORY_CATEGORIES) if (c !== "offload_host") n += peaks[c] ?? 0;
  return n;
}

/** Device capacity implied by an allocation failure: what was in use plus what was free. */
export function capacityAtFailure(memory: MemoryReport, freeBytes: number): number {
  let inUse = 0;
  for (const c of MEMORY_CATEGORIES) if (c !== "offload_host") inUse += memory.current[c];
  return inUse + freeBytes;
}

function candidates(s: FitSettings): { label: string; settings: FitSettings }[] {
  const out: { label: string; settings: FitSettings }[] = [];
  const base = { ...s, checkpoint: "unsloth" as CheckpointPolicy };
  if (s.checkpoint !== "unsloth") out.push({ label: "--checkpoint unsloth", settings: base });
  for (let b = Math.floor(s.batchSize / 2); b >= 1; b = Math.floor(b / 2)) {
    const accum = s.gradAccum * Math.ceil(s.batchSize / b);
    out.push({ label: `--batch ${b} --grad_accum ${accum} --checkpoint unsloth`, settings: { ...base, batchSize: b, gradAccum: accum } });
  }
  for (let L = Math.floor(Math.min(s.maxSeqLength, s.longestSequence) / 2); L >= 64; L = Math.floor(L / 2))
    out.push({ label: `--batch 1 --max_seq_length ${L} --checkpoint unsloth`, settings: { ...base, batchSize: 1, maxSeqLength: L } });
  return out;
}

/** A sentence naming the first candidate whose planned peak fits `capacity` bytes. */
export function suggestFittingSettings(config: ModelConfig, s: FitSettings, capacity: number, traits: BackendTraits): string {
  let smallest = Infinity;
  for (const c of candidates(s)) {
    const need = deviceBytes(planTrainingStep(config, {
      batch: c.settings.batchSize, seq: Math.min(c.settings.maxSeqLength, s.longestSequence), r: c.settings.r, targets: c.settings.targets, checkpoint: c.settings.checkpoint,
    }, traits));
    if (need <= capacity) return `${c.label} would fit (planned peak ${formatBytes(need)} of ${formatBytes(capacity)}).`;
    smallest = Math.min(smallest, need);
  }
  return `No smaller batch, sequence length or checkpointing fits ${formatBytes(capacity)} (the smallest needs ${formatBytes(smallest)}); use a smaller LoRA rank or fewer targets, or a larger GPU.`;
}
