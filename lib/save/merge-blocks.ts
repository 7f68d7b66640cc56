// The merge walked as blocks of rows: for each planned tensor, how many rows fit the memory
// budget, decided for every tensor before anything is written (so a budget that is too small
// fails up front), then each block read, merged and handed to a sink.
import type { TensorDtype } from "../formats/dtype.js";
import { f32ToBytes } from "../formats/dtype.js";
import { BaseWeightReader, rowsCols } from "./base-weights.js";
import type { MemoryBudget } from "./memory-budget.js";
import { addLoraDeltaRows } from "./merge-lora.js";
import type { MergePlanEntry } from "./merge-plan.js";
import { hostLora, type SavableModel } from "./savable-model.js";
import { saveInterrupted } from "./save-options.js";

export interface MergeWalk {
  model: SavableModel;
  plan: readonly MergePlanEntry[];
  base: BaseWeightReader;
  budget: MemoryBudget;
  dtype: TensorDtype;
  /** Output bytes held per element besides the f32 block (2 × dtype bytes when a write stays in flight). */
  outputBytesPerElement: number;
  /** true: a projection is merged whole (4-bit requantization needs every block's absmax at once). */
  wholeTensors: boolean;
  signal?: AbortSignal;
  target: string;
}

function loraBytes(model: SavableModel, e: MergePlanEntry): number {
  if (e.source.kind !== "linear") return 0;
  const slot = model.engine.lora?.byLayer[e.source.layer]?.[e.source.target];
  if (!slot) return 0;
  const [out, inF] = e.shape as [number, number];
  const r = slot.adapter.a.shape[0]!;
  return (r * inF + out * r + inF) * 4;
}

/** Rows per block for every entry; throws (before any write) when one does not fit the budget. */
export function planBlocks(w: MergeWalk): number[] {
  return w.plan.map((e) => {
    const [rows, cols] = rowsCols(e);
    const perRow = cols * (4 + w.base.sourceElementBytes(e.name) + w.outputBytesPerElement);
    const fixed = loraBytes(w.model, e) + w.base.fixedHostBytes(e);
    if (w.wholeTensors) {
      w.budget.rowsPerBlock(e.name, rows, cols, perRow * rows, fixed);
      return rows;
    }
    return w.budget.rowsPerBlock(e.name, rows, cols, perRow, fixed);
  });
}

/**
 * Reads each block, adds the LoRA delta to projections, and gives the sink the merged f32 values
 * (block of rows [r0, r1) of tensor `index`). Aborts at block boundaries.
 */
export async function walkMergedBlocks(
  w: MergeWalk,
  blocks: readonly number[],
  sink: (index: number, r0: number, r1: number, values: Float32Array) => Promise<void>,
): Promise<void> {
  for (const [index, e] of w.plan.entries()) {
    const [rows, cols] = rowsCols(e);
    const lora = e.source.kind === "linear" ? hostLora(w.model, e.source.layer, e.source.target) : null;
    const fixed = loraBytes(w.model, e) + w.base.fixedHostBytes(e);
    w.budget.hold(fixed);
    for (let r0 = 0; r0 < rows; r0 += blocks[index]!) {
      if (w.signal?.aborted) throw saveInterrupted(w.target);
      const r1 = Math.min(rows, r0 + blocks[index]!);
      const held = (r1 - r0) * cols * (4 + w.base.sourceElementBytes(e.name) + w.outputBytesPerElement);
      w.budget.hold(held);
      const values = new Float32Array((r1 - r0) * cols);
      w.base.readRows(e, r0, r1, values);
      if (lora) addLoraDeltaRows(values, lora, r0, r1, cols);
      await sink(index, r0, r1, values);
      w.budget.release(held);
    }
    w.budget.release(fixed);
  }
}

/** The merged block in the output dtype, rounded to nearest even as torch's .to(dtype). */
export function blockBytes(values: Float32Array, dtype: TensorDtype): Uint8Array {
  return f32ToBytes(values, dtype);
}
