// Where the merge reads base weights from: the original 16/32-bit shards when they are on disk
// (more exact than dequantized NF4: the LoRA was trained against NF4, but the merged model is
// meant to be the full-precision base plus the learned delta, as PEFT's merge_and_unload on the
// 16-bit base gives), else the NF4 weights held by the backend, dequantized. Rows of a projection
// are read with positioned reads, so a chunk of rows never needs its whole tensor in memory.
import { closeSync, openSync, readSync } from "node:fs";
import { bytesToF32, dtypeSize } from "../formats/dtype.js";
import { SafetensorsReader, type TensorInfo } from "../formats/safetensors-reader.js";
import { isBnb4bitCheckpoint } from "../quant/bnb-format.js";
import type { MergePlanEntry } from "./merge-plan.js";
import { backendTensorByName, downloadToHostF32, hostBaseRange, hostBaseWeight, hostBaseWeightBytes, type HostBaseWeight, type SavableModel } from "./savable-model.js";

const FLOAT_DTYPES = new Set(["BF16", "F16", "F32"]);

export class BaseWeightReader {
  /** "original shards" or "dequantized NF4", for the summary. */
  readonly description: string;
  private readonly reader: CheckpointIndex | undefined;
  private readonly fds = new Map<string, number>();
  /** Per source file, the planned tensors not yet read (to free cached blobs once all are read). */
  private readonly pending = new Map<string, Set<string>>();
  private hostWeight: { name: string; weight: HostBaseWeight } | undefined;

  constructor(private readonly model: SavableModel, plan: readonly MergePlanEntry[], private readonly onFileDone?: (file: string) => void) {
    this.reader = openOriginalShards(model, plan);
    this.description = this.reader ? `original shards in ${model.dir}` : "the loaded 4-bit weights, dequantized";
    if (this.reader) {
      for (const f of new Set(this.reader.names().map((n) => this.reader!.info(n).file))) this.pending.set(f, new Set());
      for (const e of plan) if (this.reader.has(e.name)) this.pending.get(this.reader.info(e.name).file)!.add(e.name);
    }
  }

  /** Bytes per element this source hands over for `name` before conversion (the read buffer). */
  sourceElementBytes(name: string): number {
    return this.reader?.has(name) ? dtypeSize(this.reader.info(name).dtype) : 0;
  }

  /** Host bytes held for the whole tensor while its rows are read (a backend copy), 0 for positioned file reads. */
  fixedHostBytes(entry: MergePlanEntry): number {
    if (this.reader?.has(entry.name)) return 0;
    const src = entry.source;
    if (src.kind === "linear") return hostBaseWeightBytes(this.model.engine.weights.layers[src.layer]!.linears[src.target]);
    return entry.shape.reduce((a, b) => a * b, 1) * 4;
  }

  /** f32 values of rows [r0, r1) of a tensor seen as [rows, cols] (a 1-D tensor is one row), into `out`. */
  readRows(entry: MergePlanEntry, r0: number, r1: number, out: Float32Array): void {
    const [rows, cols] = rowsCols(entry);
    if (this.reader?.has(entry.name)) {
      const info = this.reader.info(entry.name);
      const size = dtypeSize(info.dtype);
      const raw = new Uint8Array((r1 - r0) * cols * size);
      readFully(this.fd(info.file), raw, info.fileOffset + r0 * cols * size, info.file);
      out.set(bytesToF32(raw, info.dtype));
    } else {
      if (this.hostWeight?.name !== entry.name) this.hostWeight = { name: entry.name, weight: this.hostCopy(entry) };
      hostBaseRange(this.hostWeight.weight, r0 * cols, r1 * cols, out);
    }
    if (r1 === rows) this.finished(entry.name);
  }

  private hostCopy(entry: MergePlanEntry): HostBaseWeight {
    const src = entry.source;
    const be = this.model.engine.be;
    if (src.kind === "linear") return hostBaseWeight(be, this.model.engine.weights.layers[src.layer]!.linears[src.target]);
    const t = backendTensorByName(this.model, entry.name);
    if (!t) throw new Error(`tsloth: the model has no tensor "${entry.name}" to save; is it a complete Llama-family model?`);
    return { kind: "dense", values: downloadToHostF32(be, t) };
  }

  /** The checkpoint file a tensor is read from (undefined when it comes from the backend). */
  sourceFileOf(name: string): string | undefined {
    return this.reader?.has(name) ? this.reader.info(name).file : undefined;
  }

  private finished(name: string): void {
    if (this.hostWeight?.name === name) this.hostWeight = undefined;
    if (!this.reader?.has(name)) return;
    const file = this.reader.info(name).file;
    const left = this.pending.get(file);
    if (!left?.delete(name) || left.size > 0) return;
    const fd = this.fds.get(file);
    if (fd !== undefined) closeSync(fd);
    this.fds.delete(file);
    this.onFileDone?.(file);
  }

  /** Source files (absolute paths as listed by the checkpoint) the plan reads from. */
  sourceFiles(): string[] {
    return [...this.pending.keys()].filter((f) => this.pending.get(f)!.size > 0);
  }

  private fd(file: string): number {
    let fd = this.fds.get(file);
    if (fd === undefined) this.fds.set(file, (fd = openSync(file, "r")));
    return fd;
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
    this.reader?.close();
  }
}

/** A tensor as [rows, cols]: its first dimension by the rest (1-D: one row). */
export function rowsCols(entry: MergePlanEntry): [number, number] {
  return entry.shape.length === 1 ? [1, entry.shape[0]] : [entry.shape[0], entry.shape[1]!];
}

function readFully(fd: number, buf: Uint8Array, position: number, file: string): void {
  for (let done = 0; done < buf.length; ) {
    const n = readSync(fd, buf, done, Math.min(buf.length - done, 2 ** 30), position + done);
    if (n === 0) throw new Error(`tsloth: ${file} ended early while reading base weights; the file is truncated or was removed during the save`);
    done += n;
  }
}

/** The model's own checkpoint, when it holds every planned projection in 16/32-bit with the planned shape. */
/** Where each tensor lies in the checkpoint; the reader itself is closed so freed blobs really free space. */
class CheckpointIndex {
  constructor(private readonly infos: Map<string, TensorInfo>) {}
  has(name: string): boolean {
    return this.infos.has(name);
  }
  info(name: string): TensorInfo {
    return this.infos.get(name)!;
  }
  names(): string[] {
    return [...this.infos.keys()];
  }
  close(): void {}
}

function openOriginalShards(model: SavableModel, plan: readonly MergePlanEntry[]): CheckpointIndex | undefined {
  if (!model.dir) return undefined;
  let reader: SafetensorsReader;
  try {
    reader = SafetensorsReader.open(model.dir);
  } catch {
    return undefined;
  }
  const usable = !isBnb4bitCheckpoint(reader) && plan.every((e) => {
    if (e.source.kind !== "linear") return true;
    if (!reader.has(e.name)) return false;
    const info = reader.info(e.name);
    return FLOAT_DTYPES.has(info.dtype) && info.shape.join(",") === e.shape.join(",");
  });
  const index = usable ? new CheckpointIndex(new Map(reader.names().map((n) => [n, reader.info(n)]))) : undefined;
  reader.close();
  return index;
}
