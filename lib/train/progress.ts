// What the trainer reports after every optimizer step; the kernel turns it into a progress bar
// with ETA and live loss / memory plots.
import type { MemoryReport } from "../backend/types.js";

export interface TrainProgress {
  /** Completed optimizer steps (1-based) and the total planned. */
  step: number;
  totalSteps: number;
  epoch: number;
  /** Mean loss per target token over the step's micro-batches. */
  loss: number;
  /** Learning rate used for this step. */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Tokens (all positions, not only targets) processed this step, and the rate since the start. */
  tokens: number;
  tokensPerSecond: number;
  elapsedSeconds: number;
  etaSeconds: number;
  /** Bytes by memory category, current and peak (since training started). */
  memory: MemoryReport;
}

export interface TrainSummary {
  steps: number;
  totalSteps: number;
  losses: number[];
  firstLoss: number;
  finalLoss: number;
  /** True when the AbortSignal stopped training at a step boundary. */
  interrupted: boolean;
  tokens: number;
  seconds: number;
  memory: MemoryReport;
}
