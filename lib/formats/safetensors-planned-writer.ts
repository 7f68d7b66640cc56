// A sharded checkpoint writer for when every tensor's name, dtype and shape is known before the
// data (a merged save knows the model's layout up front). Headers are written first and each
// tensor goes straight to its place in its shard with a positioned write, in any order: no copy
// of the data, no extra disk space beyond the checkpoint itself, one tensor in memory at a time.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { dtypeSize, shapeNumel, type TensorDtype } from "./dtype.js";
import {
  assignShards, DEFAULT_MAX_SHARD_SIZE, encodeHeader, parseShardSize, removeStaleCheckpointFiles, shardFileNames, validateTensor,
  writeAll, writeFailure, writeShardIndex, type TensorEntry,
} from "./safetensors-layout.js";
import type { ShardedWriterOptions } from "./safetensors-writer.js";

export interface PlannedTensor {
  name: string;
  dtype: TensorDtype;
  shape: number[];
}

interface Slot {
  shard: number;
  entry: TensorEntry;
  /** Byte position in the shard file. */
  position: number;
  written: boolean;
}

interface PlannedShard {
  tmp: string;
  header: Uint8Array;
  fd?: number;
}

export class PlannedSafetensorsWriter {
  readonly maxShardSize: number;
  private readonly slots = new Map<string, Slot>();
  private readonly shards: PlannedShard[] = [];
  private readonly names: string[];
  private readonly baseName: string;
  private readonly totalSize: number;
  private done = false;

  constructor(readonly dir: string, plan: PlannedTensor[], opts: ShardedWriterOptions = {}) {
    this.maxShardSize = parseShardSize(opts.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE);
    this.baseName = opts.baseName ?? "model";
    const entries: TensorEntry[] = plan.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], byteLength: shapeNumel(t.shape) * dtypeSize(t.dtype) }));
    const shardOf = assignShards(entries.map((e) => e.byteLength), this.maxShardSize);
    const count = Math.max(1, (shardOf.at(-1) ?? 0) + 1);
    this.names = shardFileNames(this.baseName, count);
    this.totalSize = entries.reduce((s, e) => s + e.byteLength, 0);
    mkdirSync(dir, { recursive: true });
    for (let s = 0; s < count; s++) {
      const inShard = entries.filter((_, i) => shardOf[i] === s);
      const header = encodeHeader(inShard, opts.metadata ?? { format: "pt" });
      let position = header.length;
      for (const entry of inShard) {
        if (this.slots.has(entry.name)) throw new Error(`tsloth: tensor "${entry.name}" is planned twice for ${dir}`);
        this.slots.set(entry.name, { shard: s, entry, position, written: false });
        position += entry.byteLength;
      }
      this.shards.push({ tmp: join(dir, `.${this.names[s]}.tsloth-tmp-${process.pid}`), header });
    }
  }

  /** Writes one planned tensor's bytes (any order). */
  add(name: string, bytes: Uint8Array): void {
    if (this.done) throw new Error(`tsloth: the writer of ${this.dir} is finished; tensor "${name}" was not written`);
    const slot = this.slots.get(name);
    if (!slot) throw new Error(`tsloth: tensor "${name}" is not in the plan for ${this.dir}`);
    if (slot.written) throw new Error(`tsloth: tensor "${name}" written twice to ${this.dir}`);
    validateTensor(slot.entry, bytes.byteLength);
    this.guard(() => {
      const shard = this.shards[slot.shard]!;
      if (shard.fd === undefined) {
        shard.fd = openSync(shard.tmp, "w");
        writeAll(shard.fd, shard.header, 0);
      }
      writeAll(shard.fd, bytes, slot.position);
    });
    slot.written = true;
  }

  /** Checks every planned tensor arrived, renames the shards into place, then writes the index. */
  finish(): { files: string[]; totalSize: number } {
    if (this.done) throw new Error(`tsloth: the writer of ${this.dir} is already finished`);
    const missing = [...this.slots.values()].filter((s) => !s.written).map((s) => s.entry.name);
    if (missing.length) {
      this.abort();
      throw new Error(`tsloth: ${missing.length} planned tensor(s) were never written to ${this.dir} (${missing.slice(0, 3).join(", ")}); nothing was saved`);
    }
    return this.guard(() => {
      this.done = true;
      this.shards.forEach((shard, i) => {
        if (shard.fd === undefined) {
          shard.fd = openSync(shard.tmp, "w");
          writeAll(shard.fd, shard.header, 0);
        }
        fsyncSync(shard.fd);
        closeSync(shard.fd);
        shard.fd = undefined;
        renameSync(shard.tmp, join(this.dir, this.names[i]!));
      });
      const keep = new Set(this.names);
      if (this.names.length > 1) {
        const weightMap = Object.fromEntries([...this.slots.values()].map((s) => [s.entry.name, this.names[s.shard]!]));
        keep.add(writeShardIndex(this.dir, this.baseName, weightMap, this.totalSize));
      }
      removeStaleCheckpointFiles(this.dir, this.baseName, keep);
      return { files: this.names.map((f) => join(this.dir, f)), totalSize: this.totalSize };
    });
  }

  /** Drops temporary files if the save is abandoned (interrupt, disk full). */
  abort(): void {
    for (const shard of this.shards) {
      if (shard.fd !== undefined) closeSync(shard.fd);
      shard.fd = undefined;
      rmSync(shard.tmp, { force: true });
    }
    this.done = true;
  }

  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      const failure = writeFailure(this.dir, e);
      if (!failure) throw e;
      this.abort();
      throw failure;
    }
  }
}
