// Memory over time since the kernel started: what the stacked area plot reads. A fixed-size store
// that, when full, halves its resolution instead of forgetting the start, and keeps the larger of
// each merged pair so peaks survive thinning (a training run's peak is what the user looks for).
import type { MemorySample } from "../plots/vram-plot.js";
import type { VramSnapshot } from "./vram-snapshot.js";

export const DEFAULT_HISTORY_CAPACITY = 2048;

function deviceTotal(s: MemorySample): number {
  let t = 0;
  for (const [c, b] of Object.entries(s.bytes)) if (c !== "offload_host") t += b;
  return t;
}

export class MemoryHistory {
  private samples_: MemorySample[] = [];
  private startTime: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly capacity = DEFAULT_HISTORY_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 4) {
      throw new Error(`tsloth: MemoryHistory capacity must be an integer >= 4; got ${capacity}.`);
    }
  }

  /** Adds one snapshot (its current bytes by category and the device's own "used"). */
  record(snapshot: VramSnapshot): MemorySample {
    this.startTime ??= snapshot.time;
    const bytes: Record<string, number> = {};
    for (const [c, b] of Object.entries(snapshot.categories)) bytes[c] = b.current;
    const sample: MemorySample = { t: (snapshot.time - this.startTime) / 1000, bytes };
    if (snapshot.device) sample.deviceUsedBytes = snapshot.device.usedBytes;
    this.samples_.push(sample);
    if (this.samples_.length > this.capacity) this.thin();
    return sample;
  }

  /** Samples in time order (seconds since the first one). */
  samples(): readonly MemorySample[] {
    return this.samples_;
  }

  /** Records take() every intervalMs until stop(); the timer never keeps the process alive. */
  startSampling(take: () => VramSnapshot, intervalMs = 1000): () => void {
    this.stopSampling();
    this.timer = setInterval(() => {
      try {
        this.record(take());
      } catch {
        // A reading that fails (device gone, backend disposed) skips one point, never the kernel.
      }
    }, intervalMs);
    this.timer.unref();
    return () => this.stopSampling();
  }

  stopSampling(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  clear(): void {
    this.samples_ = [];
    this.startTime = undefined;
  }

  private thin(): void {
    const s = this.samples_;
    // The first and newest samples always stay (the plot spans "since start" to "now"); the ones
    // between merge in pairs (1,2), (3,4), ..., each pair keeping its larger device total.
    const kept: MemorySample[] = [s[0]];
    let i = 1;
    for (; i + 1 < s.length - 1; i += 2) kept.push(deviceTotal(s[i + 1]) > deviceTotal(s[i]) ? s[i + 1] : s[i]);
    if (i < s.length - 1) kept.push(s[i]);
    kept.push(s[s.length - 1]);
    this.samples_ = kept;
  }
}

let shared: MemoryHistory | undefined;

/** The process-wide history that %vram plots: one per kernel process, made on first use. */
export function sharedMemoryHistory(): MemoryHistory {
  return (shared ??= new MemoryHistory());
}
