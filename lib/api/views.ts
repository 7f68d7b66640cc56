// The API twins of %vram, %env and %estimate: each returns a plain report object that also knows
// its own mime bundle (Symbol.for("tsloth.mimeBundle")), so a cell shows it richly by returning it
// and code can still read its numbers.
import { CUDA_TRAITS } from "../backend/cuda/traits.js";
import { CPU_TRAITS } from "../backend/types.js";
import { envBundle, envReport, type EnvReport } from "../env/env-report.js";
import { usableGpuBytes } from "../env/gpu-info.js";
import { readHfConfig } from "../formats/hf-config.js";
import { resolveModelDir } from "../formats/resolve-model.js";
import { estimateBundle } from "../memory/estimate-view.js";
import { hostMemory } from "../memory/host-memory.js";
import { keepAttentionFits } from "../model/checkpoint-policy.js";
import { engineAllocationPlan } from "../memory/estimate-plan.js";
import { estimatePeakMemory, type MemoryEstimate } from "../memory/estimator.js";
import { sharedMemoryHistory } from "../memory/memory-history.js";
import { vramBundle } from "../memory/vram-view.js";
import { vramSnapshot, type VramSnapshot } from "../memory/vram-snapshot.js";
import type { MimeBundle } from "../plots/mime-bundle.js";
import type { Backend } from "../backend/types.js";

/** The key under which lib objects hand the kernel their mime bundle (no import of kernel/ needed). */
export const MIME_BUNDLE = Symbol.for("tsloth.mimeBundle");

export type Displayable<T> = T & { [MIME_BUNDLE](): MimeBundle };

function displayable<T extends object>(value: T, bundle: () => MimeBundle): Displayable<T> {
  Object.defineProperty(value, MIME_BUNDLE, { value: bundle, enumerable: false });
  return value as Displayable<T>;
}

/** Anything holding a backend: a loaded model, or the backend itself. */
export interface HasBackend {
  backend: Backend;
}

let trackedBackend: Backend | undefined;
let stopSampling: (() => void) | undefined;

function snapshot(): VramSnapshot {
  return vramSnapshot({ engine: trackedBackend?.memory(), backend: trackedBackend?.name });
}

/**
 * Records memory once a second from now on (the history %vram plots). The backend given becomes
 * the one whose accounting is read; the sampling timer never keeps the process alive.
 */
export function trackMemory(source?: HasBackend, intervalMs = 1000): void {
  if (source) trackedBackend = source.backend;
  sharedMemoryHistory().record(snapshot());
  stopSampling ??= sharedMemoryHistory().startSampling(snapshot, intervalMs);
}

/** Adds one reading to the history now (the trainer calls this at each step). */
export function recordMemory(): VramSnapshot {
  const s = snapshot();
  sharedMemoryHistory().record(s);
  return s;
}

/** %vram: device memory now, the engine's breakdown by category, host RAM, and the history since start. */
export function vram(source?: HasBackend): Displayable<VramSnapshot> {
  if (source) trackedBackend = source.backend;
  const s = recordMemory();
  return displayable(s, () => vramBundle(s, sharedMemoryHistory().samples()));
}

/** %env: platform (Colab, Kaggle), GPU, driver and CUDA, CPUs, RAM, free disk, active backend. */
export async function env(opts: { backend?: string; diskPaths?: string[] } = {}): Promise<Displayable<EnvReport>> {
  const r = await envReport({ backend: opts.backend ?? trackedBackend?.name, diskPaths: opts.diskPaths ?? [process.cwd()] });
  return displayable(r, () => envBundle(r));
}

export interface EstimateApiOptions {
  batch?: number;
  seq?: number;
  r?: number;
  targets?: string[];
  checkpoint?: "off" | "true" | "unsloth" | boolean;
  gradAccum?: number;
  /** GPU memory to fit in; default: the detected GPU's total, none on a machine without a GPU. */
  gpuBytes?: number;
}

/** %estimate MODEL: predicted peak memory by category from the config alone, and what fits. */
export function estimate(model: string, opts: EstimateApiOptions = {}): Displayable<MemoryEstimate> {
  const config = readHfConfig(resolveModelDir(model));
  const gpuBytes = opts.gpuBytes ?? usableGpuBytes();
  // Without a GPU the model would train on the CPU reference backend, which computes in f32.
  const onGpu = gpuBytes !== undefined;
  const e = estimatePeakMemory(config, {
    batch: opts.batch ?? 1, seq: opts.seq ?? 2048, r: opts.r ?? 16, targets: opts.targets,
    checkpoint: opts.checkpoint ?? "unsloth", gradAccum: opts.gradAccum, gpuBytes,
    // As the trainer decides it: attention outputs kept in host RAM where they fit.
    keepAttention: (opts.checkpoint ?? "unsloth") === "unsloth" &&
      keepAttentionFits(config, (opts.batch ?? 1) * (opts.seq ?? 2048), onGpu ? 2 : 4, hostMemory().availableBytes),
    backend: onGpu ? "cuda" : "cpu", computeBytes: onGpu ? 2 : 4, plan: engineAllocationPlan(onGpu ? CUDA_TRAITS : CPU_TRAITS),
  });
  return displayable(e, () => estimateBundle(e));
}
