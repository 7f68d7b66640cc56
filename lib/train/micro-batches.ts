// Micro-batches for one epoch: samples shuffled with a seed, then either `batch` samples per
// micro-batch or, with packing, greedy bins of up to max_seq_length tokens, `batch` bins per
// micro-batch. Both are padding-free (sequences laid end to end with cu_seqlens).
import { packSamples, type PackedBatch } from "../model/batch.js";
import { Rng } from "../model/random.js";
import type { TokenSample } from "./tokenize-records.js";

export interface BatchingOptions {
  batchSize: number;
  packing: boolean;
  maxSeqLength: number;
  seed: number;
}

export function epochMicroBatches(samples: readonly TokenSample[], epoch: number, o: BatchingOptions): PackedBatch[] {
  const order = new Rng(o.seed * 1000003 + epoch).shuffle(samples.map((_, i) => i));
  const rows: TokenSample[][] = [];
  if (o.packing) {
    let bin: TokenSample[] = [], used = 0;
    for (const i of order) {
      const s = samples[i];
      if (bin.length > 0 && used + s.ids.length > o.maxSeqLength) {
        rows.push(bin);
        bin = [];
        used = 0;
      }
      bin.push(s);
      used += s.ids.length;
    }
    if (bin.length) rows.push(bin);
  } else for (const i of order) rows.push([samples[i]]);
  const batches: PackedBatch[] = [];
  for (let r = 0; r < rows.length; r += o.batchSize) {
    batches.push(packSamples(rows.slice(r, r + o.batchSize).flat()));
  }
  return batches;
}

/**
 * The endless sequence of micro-batches, epoch after epoch, addressed by a global index so a run
 * can stop and resume at any step. With packing, epochs may hold different numbers of bins.
 */
export class MicroBatchStream {
  private readonly counts: number[] = [];
  private cached: { epoch: number; batches: PackedBatch[] } | null = null;

  constructor(private readonly samples: readonly TokenSample[], private readonly o: BatchingOptions) {}

  private epoch(e: number): PackedBatch[] {
    if (this.cached?.epoch !== e) this.cached = { epoch: e, batches: epochMicroBatches(this.samples, e, this.o) };
    return this.cached.batches;
  }

  /** Micro-batches in epoch e. */
  count(e: number): number {
    while (this.counts.length <= e) this.counts.push(epochMicroBatches(this.samples, this.counts.length, this.o).length);
    return this.counts[e];
  }

  at(k: number): { batch: PackedBatch; epoch: number } {
    let e = 0, base = 0;
    while (base + this.count(e) <= k) base += this.count(e++);
    return { batch: this.epoch(e)[k - base], epoch: e };
  }
}
