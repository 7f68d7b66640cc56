// What the training benchmarks share: a random batch of token ids for a shape, and the median time
// of full QLoRA steps (forward, backward, AdamW, gradients zeroed, device drained) over it.
import type { Backend } from "../../lib/backend/types.js";
import type { ModelConfig } from "../../lib/formats/hf-config.js";
import { packSamples, type PackedBatch } from "../../lib/model/batch.js";
import type { CheckpointPolicy } from "../../lib/model/checkpoint-policy.js";
import type { LlamaModel, StepOptions } from "../../lib/model/llama.js";
import type { TrainingState } from "../../lib/train/trainer.js";
import { randomValues } from "../random-llama.js";

/** `batch` sequences of `seq` random ids, every token a loss target. */
export function randomBatch(config: ModelConfig, batch: number, seq: number): PackedBatch {
  return packSamples(Array.from({ length: batch }, (_, b) => ({ ids: Int32Array.from(randomValues(seq, 0.5, 99 + b), (x) => Math.floor((x + 0.5) * (config.vocabSize - 1))) })));
}

/**
 * Runs `warmup` untimed steps (cuBLASLt plans, allocator cache, koffi pools), then `steps` timed
 * ones; `afterWarmup` runs in between (e.g. to reset peaks). Returns the median step in seconds.
 */
export async function medianStepSeconds(
  be: Backend, model: LlamaModel, state: TrainingState, packed: PackedBatch, policy: CheckpointPolicy,
  warmup: number, steps: number, afterWarmup: () => void = () => {}, stepOptions: StepOptions = {},
): Promise<number> {
  const targets = packed.labels.filter((l) => l >= 0).length;
  const step = async () => {
    await model.forwardBackward(packed, policy, 1 / targets, stepOptions);
    state.optimizer.apply(1e-4);
    for (const g of state.optimizer.grads) be.zeroInPlace(g);
    await be.synchronize();
  };
  for (let w = 0; w < warmup; w++) await step();
  afterWarmup();
  const times: number[] = [];
  for (let s = 0; s < steps; s++) {
    const a = performance.now();
    await step();
    times.push(performance.now() - a);
  }
  times.sort((x, y) => x - y);
  return times[Math.floor(times.length / 2)] / 1000;
}
