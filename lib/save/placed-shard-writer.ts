// Writes a checkpoint whose layout is known up front (every tensor's name, dtype and shape) into
// a staging directory: each shard's header first, then blocks of tensor bytes straight to their
// place with positioned writes, so a tensor can arrive in row blocks and nothing is copied twice.
// Two ways to issue the writes (serialization-path.ts picks one): "positioned" writes
// synchronously; "overlapped" keeps one write in flight on libuv's pool while the next block is
// merged. The index is written last (safetensors-layout's writeShardIndex).
import { closeSync, fsyncSync, openSync, write } from "node:fs";
import { join } from "node:path";
import { dtypeSize, shapeNumel, type TensorDtype } from "../formats/dtype.js";
import { assignShards, encodeHeader, shardFileNames, writeAll, writeShardIndex, type TensorEntry } from "../formats/safetensors-layout.js";
import type { SerializationPath } from "./save-options.js";

export interface PlacedTensor {
  name: string;
  dtype: TensorDtype;
  shape: number[];
}

interface Slot {
  fd: number;
  position: number;
  byteLength: number;
  written: number;
}

export class PlacedShardWriter {
  readonly files: string[];
  readonly totalSize: number;
  private readonly slots = new Map<string, Slot>();
  private readonly fds: number[] = [];
  private readonly weightMap: Record<string, string> = {};
  private inFlight: Promise<void> = Promise.resolve();
  private failure: unknown;

  constructor(readonly dir: string, plan: readonly PlacedTensor[], maxShardSize: number, private readonly path: SerializationPath, private readonly baseName = "model") {
    const entries: TensorEntry[] = plan.map((t) => ({ ...t, shape: [...t.shape], byteLength: shapeNumel(t.shape) * dtypeSize(t.dtype) }));
    const shardOf = assignShards(entries.map((e) => e.byteLength), maxShardSize);
    const count = Math.max(1, (shardOf.at(-1) ?? 0) + 1);
    const names = shardFileNames(baseName, count);
    this.files = names.map((n) => join(dir, n));
    this.totalSize = entries.reduce((s, e) => s + e.byteLength, 0);
    for (let s = 0; s < count; s++) {
      const inShard = entries.filter((_, i) => shardOf[i] === s);
      const header = encodeHeader(inShard, { format: "pt" });
      const fd = openSync(this.files[s]!, "w");
      this.fds.push(fd);
      writeAll(fd, header, 0);
      let position = header.length;
      for (const e of inShard) {
        this.slots.set(e.name, { fd, position, byteLength: e.byteLength, written: 0 });
        this.weightMap[e.name] = names[s]!;
        position += e.byteLength;
      }
    }
  }

  /**
   * Places `bytes` at `offset` within tensor `name`. Positioned: written before returning.
   * Overlapped: waits for the previous write, starts this one and returns; the caller must not
   * touch `bytes` afterwards.
   */
  async place(name: string, offset: number, bytes: Uint8Array): Promise<void> {
    const slot = this.slots.get(name);
    if (!slot) throw new Error(`tsloth: internal: tensor "${name}" is not in the save plan`);
    if (offset + bytes.length > slot.byteLength) throw new Error(`tsloth: internal: write past the end of "${name}"`);
    slot.written += bytes.length;
    if (this.path === "positioned") {
      writeAll(slot.fd, bytes, slot.position + offset);
      return;
    }
    await this.inFlight;
    if (this.failure) throw this.failure;
    this.inFlight = writeAsync(slot.fd, bytes, slot.position + offset).catch((e) => { this.failure = e; });
  }

  /** Waits for writes, checks every byte arrived, syncs and closes the shards, then writes the index. */
  async finish(): Promise<{ files: string[]; totalSize: number }> {
    await this.inFlight;
    if (this.failure) throw this.failure;
    const short = [...this.slots].filter(([, s]) => s.written !== s.byteLength).map(([n]) => n);
    if (short.length) throw new Error(`tsloth: internal: ${short.length} tensor(s) incomplete (${short.slice(0, 3).join(", ")})`);
    for (const fd of this.fds.splice(0)) {
      fsyncSync(fd);
      closeSync(fd);
    }
    const files = [...this.files];
    if (files.length > 1) files.push(join(this.dir, writeShardIndex(this.dir, this.baseName, this.weightMap, this.totalSize)));
    return { files, totalSize: this.totalSize };
  }

  /** Closes files after a failure or interrupt (the staging directory is removed by its owner). */
  async abort(): Promise<void> {
    await this.inFlight.catch(() => undefined);
    for (const fd of this.fds.splice(0)) closeSync(fd);
  }
}

function writeAsync(fd: number, bytes: Uint8Array, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      if (done >= bytes.length) return resolve();
      write(fd, bytes, done, bytes.length - done, position + done, (err, n) => (err ? reject(err) : step(done + n)));
    };
    step(0);
  });
}
