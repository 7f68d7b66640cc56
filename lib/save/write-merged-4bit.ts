// merged_4bit: each merged projection requantized to NF4 (block 64, double-quantized absmax, as
// QLoRA) and stored in bitsandbytes' format. A tensor's stored size is known only after it is
// quantized (the quant-state JSON carries the absmax mean), so shards are streamed in the
// temporary location (where the platform has space) and moved beside DIR when whole.
import { copyFileSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { bytesToF32 } from "../formats/dtype.js";
import { ShardedSafetensorsWriter } from "../formats/safetensors-writer.js";
import { bnb4bitTensors } from "../quant/bnb-format.js";
import { nf4Quantize, NF4_BLOCKSIZE, NF4_NESTED_BLOCKSIZE } from "../quant/nf4.js";
import { deviceOf } from "./disk-preflight.js";
import { blockBytes, walkMergedBlocks, type MergeWalk } from "./merge-blocks.js";
import type { MergePlanEntry } from "./merge-plan.js";

const NF4_DTYPE = { BF16: "bfloat16", F16: "float16", F32: "float32" } as const;

/** Bytes of the bitsandbytes tensors of one projection (the quant-state JSON counted generously). */
export function nf4StoredBytes(numel: number): number {
  const blocks = Math.ceil(numel / NF4_BLOCKSIZE);
  return Math.ceil(numel / 2) + blocks + 16 * 4 + Math.ceil(blocks / NF4_NESTED_BLOCKSIZE) * 4 + 256 * 4 + 256;
}

export function merged4bitBytes(plan: readonly MergePlanEntry[], dtypeBytes: number): number {
  return plan.reduce((s, e) => {
    const n = e.shape.reduce((a, b) => a * b, 1);
    return s + (e.source.kind === "linear" ? nf4StoredBytes(n) : n * dtypeBytes);
  }, 0);
}

export async function writeMerged4bit(w: MergeWalk, blocks: readonly number[], stagingDir: string, scratchRoot: string, maxShardSize: number,
  onTensor?: (index: number, bytes: number) => void): Promise<string[]> {
  const scratch = join(scratchRoot, `.${basename(stagingDir)}-4bit`);
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const writer = new ShardedSafetensorsWriter(scratch, { maxShardSize, metadata: { format: "pt" } });
  try {
    await walkMergedBlocks(w, blocks, async (index, _r0, _r1, values) => {
      const e = w.plan[index]!;
      if (e.source.kind === "linear") {
        // Rounded to the model dtype first: the 4-bit weights are those of the merged 16-bit model,
        // quantized as loading it with load_in_4bit would.
        const merged = bytesToF32(blockBytes(values, w.dtype), w.dtype);
        const q = nf4Quantize(merged, [...e.shape], { blocksize: NF4_BLOCKSIZE, doubleQuant: true, dtype: NF4_DTYPE[w.dtype as keyof typeof NF4_DTYPE] });
        const tensors = bnb4bitTensors(e.name, q);
        for (const t of tensors) writer.add(t.name, t.dtype, t.shape, t.data);
        onTensor?.(index, tensors.reduce((n, t) => n + t.data.length, 0));
      } else {
        const bytes = blockBytes(values, w.dtype);
        writer.add(e.name, w.dtype, [...e.shape], bytes);
        onTensor?.(index, bytes.length);
      }
    });
    const { files } = writer.finish();
    const index = join(scratch, "model.safetensors.index.json");
    const all = files.length > 1 ? [...files, index] : files;
    const sameDisk = deviceOf(scratch) === deviceOf(stagingDir);
    // The index moves last, so the staging directory never lists shards it does not hold.
    return all.map((f) => {
      const to = join(stagingDir, basename(f));
      if (sameDisk) renameSync(f, to);
      else {
        copyFileSync(f, to);
        rmSync(f, { force: true });
      }
      return to;
    });
  } catch (e) {
    writer.abort();
    throw e;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
