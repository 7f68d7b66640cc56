// The LoRA training loop: micro-batches with gradient accumulation, the token-weighted mean loss
// over the whole accumulated step (as transformers does with num_items_in_batch), global-norm
// clipping, AdamW, a warmup schedule, progress events, and interruption at step boundaries.
import { DTYPE_BYTES, formatBytes, OutOfMemoryError } from "../backend/types.js";
import { capacityAtFailure, suggestFittingSettings } from "./fit-suggestion.js";
import { countTargets } from "../model/batch.js";
import { keepAttentionFits, type CheckpointPolicy } from "../model/checkpoint-policy.js";
import { hostMemory } from "../memory/host-memory.js";
import type { LlamaModel } from "../model/llama.js";
import { loraParams } from "../model/lora.js";
import { MicroBatchStream } from "./micro-batches.js";
import { AdamWState } from "./optimizer.js";
import type { TrainProgress, TrainSummary } from "./progress.js";
import { learningRate, type ScheduleName } from "./schedule.js";
import type { TokenSample } from "./tokenize-records.js";

export interface TrainLoopOptions {
  steps?: number;
  epochs?: number;
  batchSize: number;
  gradAccum: number;
  lr: number;
  schedule: ScheduleName;
  warmup: number;
  checkpoint: CheckpointPolicy;
  packing: boolean;
  maxSeqLength: number;
  seed: number;
  /** Max global gradient norm; 0 disables clipping. */
  clip: number;
  weightDecay: number;
}

export interface TrainHooks {
  onProgress?: (p: TrainProgress) => void;
  signal?: AbortSignal;
}

/** Optimizer and position in the schedule: kept on the model between calls, saved for resume. */
export interface TrainingState {
  optimizer: AdamWState;
  completedSteps: number;
  /** Total steps of the run in progress (null before the first run). */
  runSteps: number | null;
}

export function createTrainingState(model: LlamaModel, weightDecay: number): TrainingState {
  if (!model.lora) throw new Error("tsloth: attach LoRA adapters before training (%lora or attachLora(model, {...}))");
  const { params, grads } = loraParams(model.lora);
  return { optimizer: new AdamWState(model.be, params, grads, { weightDecay }), completedSteps: 0, runSteps: null };
}

function longestSequence(samples: readonly TokenSample[]): number {
  let n = 0;
  for (const s of samples) n = Math.max(n, s.ids.length);
  return n;
}

export function plannedSteps(stream: MicroBatchStream, o: TrainLoopOptions): number {
  if (o.steps !== undefined) return o.steps;
  const epochs = o.epochs ?? 1;
  let micro = 0;
  for (let e = 0; e < Math.floor(epochs); e++) micro += stream.count(e);
  micro += Math.round((epochs % 1) * stream.count(Math.floor(epochs)));
  return Math.max(1, Math.ceil(micro / o.gradAccum));
}

/** Runs optimizer steps from state.completedSteps up to the planned total. */
export async function trainLoop(model: LlamaModel, samples: readonly TokenSample[], state: TrainingState, o: TrainLoopOptions, hooks: TrainHooks = {}): Promise<TrainSummary> {
  const be = model.be;
  const stream = new MicroBatchStream(samples, { batchSize: o.batchSize, packing: o.packing, maxSeqLength: o.maxSeqLength, seed: o.seed });
  const total = plannedSteps(stream, o);
  // An interrupted or resumed run of the same length continues where it stopped; otherwise a new
  // schedule starts (the optimizer moments are kept, as a second trainer.train() call would).
  if (state.completedSteps >= total || state.runSteps !== total) state.completedSteps = 0;
  state.runSteps = total;
  const losses: number[] = [];
  const start = performance.now();
  let tokens = 0, interrupted = false, stepsRun = 0;
  // Host RAM before this run's offloads, for the rule that keeps attention outputs there.
  const hostAvailable = hostMemory().availableBytes;
  be.resetPeak();
  while (state.completedSteps < total) {
    if (hooks.signal?.aborted) {
      interrupted = true;
      break;
    }
    const step = state.completedSteps;
    const mbs = Array.from({ length: o.gradAccum }, (_, j) => stream.at(step * o.gradAccum + j));
    const targets = mbs.reduce((n, m) => n + countTargets(m.batch.labels), 0);
    for (const g of state.optimizer.grads) be.zeroInPlace(g);
    let lossSum = 0, stepTokens = 0;
    for (const { batch } of mbs) {
      try {
        const keepAttention = o.checkpoint === "unsloth" && keepAttentionFits(model.config, batch.ids.length, DTYPE_BYTES[be.computeDtype], hostAvailable);
        lossSum += (await model.forwardBackward(batch, o.checkpoint, 1 / Math.max(1, targets), { keepAttention })).lossSum;
      } catch (e) {
        if (!(e instanceof OutOfMemoryError) || !model.lora) throw e;
        const lora = model.lora.options;
        const advice = suggestFittingSettings(model.config, { ...o, r: lora.r, targets: lora.targets, longestSequence: longestSequence(samples) }, capacityAtFailure(be.memory(), e.freeBytes), be);
        throw new Error(
          `tsloth: out of memory while training a micro-batch of ${batch.ids.length} tokens (--batch ${o.batchSize}, --max_seq_length ${o.maxSeqLength}, ` +
            `--checkpoint ${o.checkpoint}): asked for ${formatBytes(e.requestedBytes)} of ${e.category} with ${formatBytes(e.freeBytes)} free. ${advice}`,
          { cause: e },
        );
      }
      stepTokens += batch.ids.length;
    }
    const gradNorm = state.optimizer.clip(o.clip);
    const lr = learningRate(o.schedule, o.lr, step, total, o.warmup);
    state.optimizer.apply(lr);
    state.completedSteps++;
    stepsRun++;
    tokens += stepTokens;
    const loss = lossSum / Math.max(1, targets);
    losses.push(loss);
    const elapsed = (performance.now() - start) / 1000;
    hooks.onProgress?.({
      step: state.completedSteps, totalSteps: total, epoch: mbs[mbs.length - 1].epoch, loss, lr, gradNorm,
      tokens: stepTokens, tokensPerSecond: tokens / Math.max(elapsed, 1e-9), elapsedSeconds: elapsed,
      etaSeconds: (elapsed / stepsRun) * (total - state.completedSteps), memory: be.memory(),
    });
    // Let timers, interrupts and outputs run between steps.
    await new Promise<void>((r) => setImmediate(r));
  }
  return {
    steps: state.completedSteps, totalSteps: total, losses, firstLoss: losses[0] ?? NaN, finalLoss: losses[losses.length - 1] ?? NaN,
    interrupted, tokens, seconds: (performance.now() - start) / 1000, memory: be.memory(),
  };
}
