// Reads safetensors checkpoints (one file, or shards listed by model.safetensors.index.json) one
// tensor at a time with positioned reads, so a checkpoint larger than RAM can be walked layer by
// layer. Every header is validated up front; each problem is one error naming the file and tensor.
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { bytesToF32, dtypeSize, isTensorDtype, shapeNumel, TENSOR_DTYPES, type TensorDtype } from "./dtype.js";

export interface TensorInfo {
  name: string;
  dtype: TensorDtype;
  shape: number[];
  file: string;
  byteLength: number;
  /** Absolute byte position of the tensor's data in `file`. */
  fileOffset: number;
}

/** The safetensors reference implementation refuses headers above 100 MB (safetensors' MAX_HEADER_SIZE). */
export const MAX_HEADER_BYTES = 100_000_000;

export const SINGLE_FILE_NAME = "model.safetensors";
export const INDEX_FILE_NAME = "model.safetensors.index.json";

interface OpenFile {
  path: string;
  fd: number;
  metadata: Record<string, string>;
}

function fail(file: string, msg: string): never {
  throw new Error(`tsloth: ${file}: ${msg}`);
}

/** Node reads at most 2 GiB per call; a 128K-vocabulary embedding in f32 is larger. */
const MAX_READ_BYTES = 2 ** 30;

function readExactly(fd: number, length: number, position: number, file: string, what: string, into?: Uint8Array): Uint8Array {
  const buf = into ?? new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, Math.min(length - done, MAX_READ_BYTES), position + done);
    if (n === 0) fail(file, `${what}: file ended after ${done} of ${length} bytes; the file is truncated, download or save it again`);
    done += n;
  }
  return buf;
}

/** Parses and validates one file's header; returns its tensors in file order. */
function parseHeader(path: string, fd: number): { tensors: TensorInfo[]; metadata: Record<string, string> } {
  const size = fstatSync(fd).size;
  if (size < 8) fail(path, `expected at least 8 bytes (the header length), found ${size}; the file is truncated or not safetensors`);
  const lenBytes = readExactly(fd, 8, 0, path, "header length");
  const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES))
    fail(path, `header of ${headerLen} bytes is larger than the ${MAX_HEADER_BYTES}-byte limit; the file is corrupt or not safetensors`);
  const hl = Number(headerLen);
  if (8 + hl > size) fail(path, `header says ${hl} bytes but the file has only ${size - 8} after the length; the file is truncated`);
  const headerText = new TextDecoder().decode(readExactly(fd, hl, 8, path, "header"));
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (e) {
    fail(path, `header is not valid JSON (${(e as Error).message}); the file is corrupt or not safetensors`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) fail(path, "header is not a JSON object");
  const dataStart = 8 + hl;
  const dataLen = size - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: (TensorInfo & { begin: number; end: number })[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null) fail(path, "__metadata__ must be an object of strings");
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") fail(path, `__metadata__["${k}"] must be a string, found ${typeof v}`);
        metadata[k] = v;
      }
      continue;
    }
    const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof entry !== "object" || entry === null) fail(path, `tensor "${name}": entry is not an object`);
    if (!isTensorDtype(entry.dtype))
      fail(path, `tensor "${name}": unknown dtype ${JSON.stringify(entry.dtype)}; expected one of ${TENSOR_DTYPES.join(", ")}`);
    const shape = entry.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(path, `tensor "${name}": shape must be a list of non-negative integers, found ${JSON.stringify(shape)}`);
    const offs = entry.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0) || offs[0] > offs[1])
      fail(path, `tensor "${name}": data_offsets must be [begin, end] with 0 <= begin <= end, found ${JSON.stringify(offs)}`);
    const [begin, end] = offs as [number, number];
    const expected = shapeNumel(shape as number[]) * dtypeSize(entry.dtype);
    if (end - begin !== expected)
      fail(path, `tensor "${name}": shape ${JSON.stringify(shape)} of ${entry.dtype} needs ${expected} bytes but data_offsets span ${end - begin}; the header is corrupt`);
    if (end > dataLen)
      fail(path, `tensor "${name}": data ends at byte ${end} but the file holds ${dataLen} data bytes; the file is truncated, download or save it again`);
    tensors.push({ name, dtype: entry.dtype, shape: shape as number[], file: path, byteLength: expected, fileOffset: dataStart + begin, begin, end });
  }
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const t of sorted) {
    if (t.begin < cursor)
      fail(path, `tensor "${t.name}": data_offsets [${t.begin}, ${t.end}] overlap the previous tensor, which ends at ${cursor}; the header is corrupt`);
    if (t.begin > cursor)
      fail(path, `tensor "${t.name}": data_offsets start at ${t.begin} but the previous tensor ends at ${cursor}, leaving a gap; the header is corrupt`);
    cursor = t.end;
  }
  if (cursor !== dataLen)
    fail(path, `tensors cover ${cursor} data bytes but the file holds ${dataLen}; the header and data disagree`);
  return { tensors: sorted.map(({ begin: _b, end: _e, ...info }) => info), metadata };
}

export class SafetensorsReader {
  private readonly files = new Map<string, OpenFile>();
  private readonly tensors = new Map<string, TensorInfo>();
  private indexMetadata: Record<string, string> = {};
  private closed = false;

  private constructor(readonly source: string) {}

  /** A `.safetensors` file, a `model.safetensors.index.json`, or a directory holding either. */
  static open(path: string): SafetensorsReader {
    const abs = resolve(path);
    if (!existsSync(abs)) throw new Error(`tsloth: ${abs} does not exist; expected a .safetensors file, an index.json or a model directory`);
    let target = abs;
    if (statSync(abs).isDirectory()) {
      if (existsSync(join(abs, INDEX_FILE_NAME))) target = join(abs, INDEX_FILE_NAME);
      else if (existsSync(join(abs, SINGLE_FILE_NAME))) target = join(abs, SINGLE_FILE_NAME);
      else throw new Error(`tsloth: ${abs} holds neither ${SINGLE_FILE_NAME} nor ${INDEX_FILE_NAME}; is it a Hugging Face model directory with safetensors weights?`);
    }
    const reader = new SafetensorsReader(target);
    try {
      if (target.endsWith(".json")) reader.loadIndex(target);
      else reader.addFile(target);
    } catch (e) {
      reader.close();
      throw e;
    }
    return reader;
  }

  private addFile(path: string): OpenFile {
    const existing = this.files.get(path);
    if (existing) return existing;
    if (!existsSync(path)) throw new Error(`tsloth: ${path} does not exist`);
    const fd = openSync(path, "r");
    try {
      const { tensors, metadata } = parseHeader(path, fd);
      const file = { path, fd, metadata };
      this.files.set(path, file);
      for (const t of tensors) {
        if (this.tensors.has(t.name))
          fail(path, `tensor "${t.name}" also appears in ${this.tensors.get(t.name)!.file}; a checkpoint must hold each tensor once`);
        this.tensors.set(t.name, t);
      }
      return file;
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  private loadIndex(indexPath: string): void {
    let index: { metadata?: Record<string, unknown>; weight_map?: Record<string, unknown> };
    try {
      index = JSON.parse(readFileSync(indexPath, "utf8"));
    } catch (e) {
      fail(indexPath, `is not valid JSON (${(e as Error).message})`);
    }
    const map = index.weight_map;
    if (typeof map !== "object" || map === null) fail(indexPath, `expected a "weight_map" object of tensor name -> shard file`);
    for (const [k, v] of Object.entries(index.metadata ?? {})) this.indexMetadata[k] = String(v);
    const dir = dirname(indexPath);
    const shards = new Set(Object.values(map).map((f) => {
      if (typeof f !== "string") fail(indexPath, `weight_map values must be file names, found ${JSON.stringify(f)}`);
      return f;
    }));
    for (const shard of shards) {
      const p = join(dir, shard);
      if (!existsSync(p)) fail(indexPath, `lists shard ${shard}, which is missing from ${dir}; download or save the checkpoint again`);
      this.addFile(p);
    }
    for (const [name, shard] of Object.entries(map)) {
      const info = this.tensors.get(name);
      if (!info) fail(indexPath, `tensor "${name}" is listed in ${shard as string} but that shard does not hold it`);
      if (basename(info.file) !== basename(shard as string))
        fail(indexPath, `tensor "${name}" is listed in ${shard as string} but found in ${basename(info.file)}`);
    }
  }

  private check(): void {
    if (this.closed) throw new Error(`tsloth: the reader of ${this.source} is closed`);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`tsloth: ${this.source}: no tensor named "${name}" (it has ${this.tensors.size} tensors, e.g. ${this.names().slice(0, 3).join(", ")})`);
    return t;
  }

  /** `__metadata__` of the file, or for a sharded checkpoint the index's metadata plus the first shard's. */
  metadata(): Record<string, string> {
    const first = this.files.values().next().value as OpenFile | undefined;
    return { ...(first?.metadata ?? {}), ...this.indexMetadata };
  }

  /** The tensor's bytes as stored (little-endian). Memory is the caller's; nothing is cached. */
  readRaw(name: string): Uint8Array {
    this.check();
    const t = this.info(name);
    const file = this.files.get(t.file)!;
    return readExactly(file.fd, t.byteLength, t.fileOffset, t.file, `tensor "${name}"`);
  }

  /** Reads the tensor's bytes into a caller's buffer (e.g. pinned host memory) of at least its size. */
  readInto(name: string, out: Uint8Array): Uint8Array {
    this.check();
    const t = this.info(name);
    if (out.byteLength < t.byteLength) throw new Error(`tsloth: tensor "${name}" needs ${t.byteLength} bytes, the buffer has ${out.byteLength}`);
    const file = this.files.get(t.file)!;
    return readExactly(file.fd, t.byteLength, t.fileOffset, t.file, `tensor "${name}"`, out.subarray(0, t.byteLength));
  }

  /** The tensor as f32 values, converting BF16, F16, F64, U8, I8 and BOOL. */
  readF32(name: string): Float32Array {
    return bytesToF32(this.readRaw(name), this.info(name).dtype);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const f of this.files.values()) closeSync(f.fd);
  }
}
