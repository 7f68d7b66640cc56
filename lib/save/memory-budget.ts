// The merge's memory budget (DESIGN.md "smart saving"): maximum_memory_usage × free memory, checked
// before work starts. The merge runs on the host in fp32 (downloading the 4-bit base and the
// adapters of one projection at a time), so the budget is host RAM; every buffer the merge makes
// is counted here, and the peak is reported.
import { formatGB } from "./disk-preflight.js";

/** A row block larger than this gains nothing (the per-block overhead is already negligible) and costs cache. */
export const MAX_BLOCK_BYTES = 64 * 2 ** 20;

export class MemoryBudget {
  private current = 0;
  peakBytes = 0;

  constructor(readonly limitBytes: number, readonly availableBytes: number, readonly share: number) {}

  hold(bytes: number): void {
    this.current += bytes;
    this.peakBytes = Math.max(this.peakBytes, this.current);
  }

  release(bytes: number): void {
    this.current -= bytes;
  }

  /**
   * Rows of a projection to merge at once: what fits beside `fixedBytes` (the adapter and, for a
   * 4-bit source, the packed weight), at most MAX_BLOCK_BYTES of f32 values. Refuses when even one
   * row does not fit, before anything is written.
   */
  rowsPerBlock(name: string, rows: number, cols: number, bytesPerRow: number, fixedBytes: number): number {
    const room = this.limitBytes - fixedBytes;
    const fit = Math.floor(room / bytesPerRow);
    if (fit < 1)
      throw new Error(`tsloth: merging ${name} needs at least ${formatGB(fixedBytes + bytesPerRow)} of host memory but maximum_memory_usage ` +
        `${this.share} of ${formatGB(this.availableBytes)} free allows ${formatGB(this.limitBytes)}. Nothing was written. ` +
        `Raise --maximum_memory_usage (up to 0.95) or free memory (e.g. delete other models in this notebook).`);
    return Math.max(1, Math.min(rows, fit, Math.floor(MAX_BLOCK_BYTES / (cols * 4))));
  }
}
