// What every safetensors writer shares: shard sizes as transformers reads them, the header bytes,
// shard and index file names, and the atomic-write helpers (temporary name, then rename).
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { dtypeSize, isTensorDtype, shapeNumel, type TensorDtype } from "./dtype.js";

export interface TensorEntry {
  name: string;
  dtype: TensorDtype;
  shape: number[];
  byteLength: number;
}

/** transformers' default `max_shard_size` for save_pretrained. */
export const DEFAULT_MAX_SHARD_SIZE = "5GB";

const SIZE_UNITS: Record<string, number> = {
  B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40,
};

/** "5GB" | "500MB" | "2GiB" | bytes -> bytes, with transformers' meaning (GB = 1e9, GiB = 2^30). */
export function parseShardSize(size: string | number): number {
  if (typeof size === "number") {
    if (Number.isSafeInteger(size) && size > 0) return size;
    throw new Error(`tsloth: max_shard_size must be a positive whole number of bytes or a size like "5GB" or "500MB", found ${size}`);
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)?\s*$/i.exec(size);
  if (!m) throw new Error(`tsloth: max_shard_size "${size}" is not a size; write it like "5GB", "500MB", "2GiB" or a number of bytes`);
  const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[(m[2] ?? "B").toUpperCase()]!);
  if (bytes <= 0) throw new Error(`tsloth: max_shard_size "${size}" must be larger than zero`);
  return bytes;
}

export function validateTensor(t: { name: string; dtype: TensorDtype; shape: number[] }, byteLength: number): void {
  if (!isTensorDtype(t.dtype)) throw new Error(`tsloth: tensor "${t.name}": unknown dtype ${String(t.dtype)}`);
  const expected = shapeNumel(t.shape) * dtypeSize(t.dtype);
  if (expected !== byteLength)
    throw new Error(`tsloth: tensor "${t.name}": shape ${JSON.stringify(t.shape)} of ${t.dtype} needs ${expected} bytes, given ${byteLength}`);
}

/** The header bytes (length prefix + JSON padded with spaces to a multiple of 8, as safetensors does). */
export function encodeHeader(entries: TensorEntry[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.byteLength] };
    offset += e.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/** Writes all bytes, at `position` when given (positioned writes let tensors arrive in any order). */
export function writeAll(fd: number, bytes: Uint8Array, position?: number): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, position === undefined ? null : position + done);
}

export function tempNameFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.tsloth-tmp-${process.pid}`);
}

/** model.safetensors for one shard; model-00001-of-0000N.safetensors otherwise (transformers' names). */
export function shardFileNames(baseName: string, count: number): string[] {
  if (count === 1) return [`${baseName}.safetensors`];
  const n = String(count).padStart(5, "0");
  return Array.from({ length: count }, (_, i) => `${baseName}-${String(i + 1).padStart(5, "0")}-of-${n}.safetensors`);
}

/** Writes `<base>.safetensors.index.json` atomically; returns its file name. */
export function writeShardIndex(dir: string, baseName: string, weightMap: Record<string, string>, totalSize: number): string {
  const name = `${baseName}.safetensors.index.json`;
  const index = {
    metadata: { total_size: totalSize },
    weight_map: Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : 1))),
  };
  const path = join(dir, name);
  const tmp = tempNameFor(path);
  const fd = openSync(tmp, "w");
  writeAll(fd, new TextEncoder().encode(JSON.stringify(index, null, 2) + "\n"));
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
  return name;
}

/** Removes an older save's shards and index that the new save does not use (as transformers does). */
export function removeStaleCheckpointFiles(dir: string, baseName: string, keep: Set<string>): void {
  if (!existsSync(dir)) return;
  const b = baseName.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const pattern = new RegExp(`^${b}(-\\d{5}-of-\\d{5})?\\.safetensors(\\.index\\.json)?$`);
  for (const f of readdirSync(dir)) if (pattern.test(f) && !keep.has(f)) rmSync(join(dir, f), { force: true });
}

/**
 * Which shard each tensor goes to, in order: a new shard starts when the next tensor would pass
 * the limit; a tensor larger than the limit gets a shard of its own (huggingface_hub's rule).
 */
export function assignShards(byteLengths: number[], maxShardSize: number): number[] {
  const out: number[] = [];
  let shard = 0;
  let size = 0;
  for (const len of byteLengths) {
    if (size > 0 && size + len > maxShardSize) {
      shard++;
      size = 0;
    }
    out.push(shard);
    size += len;
  }
  return out;
}

/** The user-facing error for a failed write (disk full, permissions), or undefined for our own errors. */
export function writeFailure(dir: string, e: unknown): Error | undefined {
  const err = e as NodeJS.ErrnoException;
  if (!err.code) return undefined;
  const full = err.code === "ENOSPC";
  return new Error(`tsloth: writing ${dir} failed: ${full ? "the disk is full" : err.message}. Temporary files were removed and existing files left as they were; ` +
    (full ? "free space or save to another directory." : "check the directory and try again."));
}
