// Bytes held per memory category, current and peak: the numbers %vram, the live plots and the
// estimator read. Backends call `allocate`/`release` for every buffer they create or free.
import { MEMORY_CATEGORIES, OutOfMemoryError, type MemoryCategory, type MemoryReport } from "../backend/types.js";

function emptyCounts(): Record<MemoryCategory, number> {
  const r = {} as Record<MemoryCategory, number>;
  for (const c of MEMORY_CATEGORIES) r[c] = 0;
  return r;
}

export class MemoryAccounting {
  private readonly current = emptyCounts();
  private readonly peak = emptyCounts();
  private deviceTotal = 0;
  private peakDevice = 0;

  /** deviceCapacity: bytes the device may hold (all categories but offload_host); Infinity = unbounded. */
  constructor(readonly deviceCapacity = Infinity) {}

  allocate(category: MemoryCategory, bytes: number): void {
    const onDevice = category !== "offload_host";
    if (onDevice && this.deviceTotal + bytes > this.deviceCapacity) {
      throw new OutOfMemoryError(
        category,
        bytes,
        Math.max(0, this.deviceCapacity - this.deviceTotal),
        "Lower --max_seq_length or --batch (raise --grad_accum to keep the effective batch), use --checkpoint unsloth, or a smaller LoRA rank.",
      );
    }
    this.current[category] += bytes;
    if (this.current[category] > this.peak[category]) this.peak[category] = this.current[category];
    if (onDevice) {
      this.deviceTotal += bytes;
      if (this.deviceTotal > this.peakDevice) this.peakDevice = this.deviceTotal;
    }
  }

  release(category: MemoryCategory, bytes: number): void {
    this.current[category] -= bytes;
    if (category !== "offload_host") this.deviceTotal -= bytes;
  }

  report(): MemoryReport {
    return { current: { ...this.current }, peak: { ...this.peak }, peakDeviceTotal: this.peakDevice };
  }

  /** Start a new peak window from what is held now. */
  resetPeak(): void {
    for (const c of MEMORY_CATEGORIES) this.peak[c] = this.current[c];
    this.peakDevice = this.deviceTotal;
  }

  deviceBytesInUse(): number {
    return this.deviceTotal;
  }
}
