// Writes safetensors files: one in a call (writeSafetensorsFile), or a checkpoint streamed tensor by
// tensor into shards of at most max_shard_size (ShardedSafetensorsWriter), named as Hugging Face
// names them. Everything is written under temporary names and renamed into place; the index last.
import { closeSync, fsyncSync, mkdirSync, openSync, readSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import type { TensorDtype } from "./dtype.js";
import {
  DEFAULT_MAX_SHARD_SIZE, encodeHeader, parseShardSize, removeStaleCheckpointFiles, shardFileNames, tempNameFor, validateTensor,
  writeAll, writeFailure, writeShardIndex, type TensorEntry,
} from "./safetensors-layout.js";

export { DEFAULT_MAX_SHARD_SIZE, parseShardSize } from "./safetensors-layout.js";

export interface TensorToWrite {
  name: string;
  dtype: TensorDtype;
  shape: number[];
  data: Uint8Array;
}

/** Writes one safetensors file atomically (temporary name beside it, then rename). */
export function writeSafetensorsFile(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  const names = new Set<string>();
  for (const t of tensors) {
    validateTensor(t, t.data.byteLength);
    if (names.has(t.name)) throw new Error(`tsloth: tensor "${t.name}" given twice for ${path}`);
    names.add(t.name);
  }
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempNameFor(path);
  const fd = openSync(tmp, "w");
  try {
    writeAll(fd, encodeHeader(tensors.map((t) => ({ ...t, byteLength: t.data.byteLength })), metadata));
    for (const t of tensors) writeAll(fd, t.data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

export interface ShardedWriterOptions {
  /** Bytes or a size like "5GB" (transformers' default). */
  maxShardSize?: string | number;
  /** `__metadata__` of every shard; transformers writes {"format": "pt"}. */
  metadata?: Record<string, string>;
  /** File name stem: "model" gives model.safetensors / model-00001-of-00002.safetensors. */
  baseName?: string;
}

interface ShardInProgress {
  entries: TensorEntry[];
  bytes: number;
  dataPath: string;
  fd: number;
}

const COPY_CHUNK_BYTES = 16 * 2 ** 20;

/**
 * Streams tensors to disk: each `add` appends the bytes to the current shard's data file, so only
 * one tensor is in memory at a time. A shard is closed when the next tensor would exceed the limit
 * (a tensor larger than the limit gets a shard of its own, as transformers does).
 */
export class ShardedSafetensorsWriter {
  readonly maxShardSize: number;
  private readonly metadata: Record<string, string>;
  private readonly baseName: string;
  private readonly finished: string[] = [];
  private readonly weightMap: Record<string, number> = {};
  private current: ShardInProgress | undefined;
  private totalSize = 0;
  private done = false;

  constructor(readonly dir: string, opts: ShardedWriterOptions = {}) {
    this.maxShardSize = parseShardSize(opts.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE);
    this.metadata = opts.metadata ?? { format: "pt" };
    this.baseName = opts.baseName ?? "model";
    mkdirSync(dir, { recursive: true });
  }

  add(name: string, dtype: TensorDtype, shape: number[], bytes: Uint8Array): void {
    this.guard(() => this.append(name, dtype, shape, bytes));
  }

  /** Renames the shards into place, then writes the index (when there is more than one shard). */
  finish(): { files: string[]; totalSize: number } {
    return this.guard(() => this.complete());
  }

  /** A failed write (disk full, permissions) removes the temporary files and says what to do. */
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

  private append(name: string, dtype: TensorDtype, shape: number[], bytes: Uint8Array): void {
    if (this.done) throw new Error(`tsloth: the writer of ${this.dir} is finished; tensor "${name}" was not written`);
    validateTensor({ name, dtype, shape }, bytes.byteLength);
    if (name in this.weightMap) throw new Error(`tsloth: tensor "${name}" added twice to ${this.dir}`);
    if (this.current && this.current.bytes > 0 && this.current.bytes + bytes.byteLength > this.maxShardSize) this.closeShard();
    if (!this.current) {
      const dataPath = join(this.dir, `.${this.baseName}-shard-${this.finished.length + 1}.tsloth-tmp-${process.pid}.data`);
      this.current = { entries: [], bytes: 0, dataPath, fd: openSync(dataPath, "w") };
    }
    writeAll(this.current.fd, bytes);
    this.current.entries.push({ name, dtype, shape: [...shape], byteLength: bytes.byteLength });
    this.current.bytes += bytes.byteLength;
    this.weightMap[name] = this.finished.length;
    this.totalSize += bytes.byteLength;
  }

  /** Header + data into a temporary shard file; the data file is streamed, never held whole. */
  private closeShard(): void {
    const shard = this.current!;
    this.current = undefined;
    closeSync(shard.fd);
    const tmp = join(this.dir, `.${this.baseName}-shard-${this.finished.length + 1}.tsloth-tmp-${process.pid}.safetensors`);
    const out = openSync(tmp, "w");
    const src = openSync(shard.dataPath, "r");
    try {
      writeAll(out, encodeHeader(shard.entries, this.metadata));
      const chunk = new Uint8Array(Math.min(COPY_CHUNK_BYTES, Math.max(shard.bytes, 1)));
      for (let pos = 0; pos < shard.bytes; ) {
        const n = readSync(src, chunk, 0, Math.min(chunk.length, shard.bytes - pos), pos);
        if (n === 0) throw new Error(`tsloth: ${shard.dataPath} ended early while writing a shard`);
        writeAll(out, chunk.subarray(0, n));
        pos += n;
      }
      fsyncSync(out);
    } finally {
      closeSync(src);
      closeSync(out);
      rmSync(shard.dataPath, { force: true });
    }
    this.finished.push(tmp);
  }

  private complete(): { files: string[]; totalSize: number } {
    if (this.done) throw new Error(`tsloth: the writer of ${this.dir} is already finished`);
    if (this.current) this.closeShard();
    this.done = true;
    if (this.finished.length === 0) {
      writeSafetensorsFile(join(this.dir, `${this.baseName}.safetensors`), [], this.metadata);
      this.finished.push("");
    }
    const names = shardFileNames(this.baseName, this.finished.length);
    this.finished.forEach((tmp, i) => { if (tmp) renameSync(tmp, join(this.dir, names[i]!)); });
    const keep = new Set(names);
    if (names.length > 1) {
      const weightMap = Object.fromEntries(Object.entries(this.weightMap).map(([k, i]) => [k, names[i]!]));
      keep.add(writeShardIndex(this.dir, this.baseName, weightMap, this.totalSize));
    }
    // Only now, with the new checkpoint complete, drop what remains of an older save.
    removeStaleCheckpointFiles(this.dir, this.baseName, keep);
    return { files: names.map((f) => join(this.dir, f)), totalSize: this.totalSize };
  }

  /** Drops temporary files if the save is abandoned (interrupt, disk full). */
  abort(): void {
    if (this.current) {
      closeSync(this.current.fd);
      rmSync(this.current.dataPath, { force: true });
      this.current = undefined;
    }
    for (const f of this.finished) if (f) rmSync(f, { force: true });
    this.done = true;
  }
}
