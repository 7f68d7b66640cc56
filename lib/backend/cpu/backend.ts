// The reference backend: every op in plain TypeScript over typed arrays (float32 storage, float64
// where accuracy needs it). It is the executable spec the CUDA backend is tested against.
import { MemoryAccounting } from "../../memory/accounting.js";
import {
  elementCount, type AdamWHyper, type AttentionShape, type Backend, type DType, type FrozenLinear, type HostArray,
  type DecodeBackend, type KvBlockView, type KvSegment, type LoraAdapter, type LoraGrads, type MemoryCategory, type MemoryReport,
  type PendingCopy, type RecordedStep, type Tensor,
} from "../types.js";
import { adamw } from "./adamw.js";
import { attention, attentionBackward } from "./attention.js";
import { crossEntropyLmHead, crossEntropyLmHeadAndGrad, crossEntropyLmHeadBackward, lmHeadLogits } from "./cross-entropy.js";
import { add, addInPlace, copyInto, scaleInPlace, sumOfSquares, zeroInPlace } from "./elementwise.js";
import { embedding, embeddingBackward } from "./embedding.js";
import { linear, linearBackward, linearGroupBackward } from "./linear.js";
import { nf4DequantizeInto } from "./nf4-dequant.js";
import { kvCacheWrite, pagedAttention } from "./paged-attention.js";
import { rmsnorm, rmsnormBackward } from "./rmsnorm.js";
import { rope, ropeBackward } from "./rope.js";
import { swiglu, swigluBackward } from "./swiglu.js";
import { allocHostArray, asCpu, CpuTensor, readF32, type CpuAlloc } from "./tensor.js";

export interface CpuBackendOptions {
  /** Simulated device capacity in bytes, for out-of-memory behaviour; default unbounded. */
  deviceBytes?: number;
}

export class CpuBackend implements DecodeBackend, CpuAlloc {
  readonly name = "cpu";
  readonly computeDtype = "f32" as const;
  readonly accounting: MemoryAccounting;
  private readonly deviceBytes: number;
  /** One dequantized NF4 weight kept between a forward and the backward that follows it. */
  private workspace: { base: FrozenLinear; data: Float32Array; tensor: CpuTensor } | null = null;

  constructor(opts: CpuBackendOptions = {}) {
    this.deviceBytes = opts.deviceBytes ?? Infinity;
    this.accounting = new MemoryAccounting(this.deviceBytes);
  }

  private make(shape: readonly number[], dtype: DType, category: MemoryCategory, data?: HostArray): CpuTensor {
    const n = elementCount(shape);
    const t = new CpuTensor([...shape], dtype, category, data ?? allocHostArray(dtype, n));
    this.accounting.allocate(category, t.bytes);
    return t;
  }

  out(shape: readonly number[], dtype: DType = "f32"): CpuTensor {
    return this.make(shape, dtype, "activations");
  }

  scratch(n: number): CpuTensor {
    return this.make([n], "f32", "workspace");
  }

  zeros(shape: readonly number[], dtype: DType, category: MemoryCategory): Tensor {
    return this.make(shape, dtype, category);
  }

  upload(data: HostArray, shape: readonly number[], dtype: DType, category: MemoryCategory): Tensor {
    const n = elementCount(shape);
    if (data.length !== n) throw new Error(`tsloth: upload of ${data.length} elements into shape [${shape}] (${n})`);
    const t = this.make(shape, dtype, category);
    if (t.data.constructor !== data.constructor) {
      this.free(t);
      throw new Error(`tsloth: upload of ${dtype} expects a ${t.data.constructor.name}, found ${data.constructor.name}`);
    }
    (t.data as Float32Array).set(data as Float32Array);
    return t;
  }

  download(t: Tensor): Float32Array {
    const c = asCpu(t);
    if (c.dtype === "u8" || c.dtype === "i32") return Float32Array.from(c.data);
    return Float32Array.from(readF32(c));
  }

  downloadRaw(t: Tensor): HostArray {
    return asCpu(t).data.slice();
  }

  free(t: Tensor): void {
    const c = asCpu(t).owner;
    c.markFreed();
    if (this.workspace?.tensor === c) this.workspace = null;
    this.accounting.release(c.category, c.bytes);
  }

  clone(t: Tensor, category?: MemoryCategory): Tensor {
    const c = asCpu(t);
    return this.make(c.shape, c.dtype, category ?? c.category, c.data.slice());
  }

  reshape(t: Tensor, shape: readonly number[]): Tensor {
    const c = asCpu(t);
    if (elementCount(shape) !== c.data.length) throw new Error(`tsloth: cannot reshape [${c.shape}] to [${shape}]`);
    return new CpuTensor([...shape], c.dtype, c.category, c.data, c.owner);
  }

  copyToHostAsync(t: Tensor): PendingCopy {
    return { tensor: this.clone(t, "offload_host"), done: Promise.resolve() };
  }

  copyToDeviceAsync(t: Tensor, category: MemoryCategory): PendingCopy {
    return { tensor: this.clone(t, category), done: Promise.resolve() };
  }

  async synchronize(): Promise<void> {}

  memory(): MemoryReport {
    return this.accounting.report();
  }

  resetPeak(): void {
    this.accounting.resetPeak();
  }

  add(a: Tensor, b: Tensor): Tensor { return add(this, a, b); }
  addInPlace(dst: Tensor, src: Tensor, alpha?: number): void { addInPlace(dst, src, alpha); }
  scaleInPlace(t: Tensor, s: number): void { scaleInPlace(t, s); }
  zeroInPlace(t: Tensor): void { zeroInPlace(t); }
  copyInto(dst: Tensor, src: Tensor): void { copyInto(dst, src); }
  sumOfSquares(ts: readonly Tensor[]): number { return sumOfSquares(ts); }

  embedding(table: Tensor, ids: Tensor): Tensor { return embedding(this, table, ids); }
  embeddingBackward(dy: Tensor, ids: Tensor, dTable: Tensor): void { embeddingBackward(dy, ids, dTable); }
  rmsnorm(x: Tensor, w: Tensor, eps: number) { return rmsnorm(this, x, w, eps); }
  rmsnormBackward(dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor): Tensor { return rmsnormBackward(this, dy, x, w, rstd); }
  rope(x: Tensor, positions: Tensor, invFreq: Tensor, nHeads: number, headDim: number): Tensor {
    return rope(this, x, positions, invFreq, nHeads, headDim);
  }
  ropeBackward(dy: Tensor, positions: Tensor, invFreq: Tensor, nHeads: number, headDim: number): Tensor {
    return ropeBackward(this, dy, positions, invFreq, nHeads, headDim);
  }
  attention(q: Tensor, k: Tensor, v: Tensor, cuSeqlens: Tensor, shape: AttentionShape) {
    return attention(this, q, k, v, cuSeqlens, shape);
  }
  attentionBackward(dO: Tensor, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, cuSeqlens: Tensor, shape: AttentionShape) {
    return attentionBackward(this, dO, q, k, v, o, lse, cuSeqlens, shape);
  }
  swiglu(gate: Tensor, up: Tensor): Tensor { return swiglu(this, gate, up); }
  swigluBackward(dh: Tensor, gate: Tensor, up: Tensor) { return swigluBackward(this, dh, gate, up); }

  linear(x: Tensor, base: FrozenLinear, lora: LoraAdapter | null): Tensor {
    return linear(this, (b) => this.denseWeight(b), x, base, lora);
  }
  linearBackward(dy: Tensor, x: Tensor, base: FrozenLinear, lora: LoraAdapter | null, grads: LoraGrads | null, needDx: boolean): Tensor | null {
    return linearBackward(this, (b) => this.denseWeight(b), dy, x, base, lora, grads, needDx);
  }
  /** The spec: each linear on its own. */
  linearGroup(x: Tensor, bases: readonly FrozenLinear[], loras: readonly (LoraAdapter | null)[]): Tensor[] {
    return bases.map((b, i) => this.linear(x, b, loras[i] ?? null));
  }
  /** The spec: each linear's backward on its own, the dx summed in f32. */
  linearGroupBackward(
    dys: readonly Tensor[], x: Tensor, bases: readonly FrozenLinear[], loras: readonly (LoraAdapter | null)[],
    grads: readonly (LoraGrads | null)[], needDx: boolean,
  ): Tensor | null {
    return linearGroupBackward(this, (b) => this.denseWeight(b), dys, x, bases, loras, grads, needDx);
  }
  releaseWorkspace(): void {
    if (this.workspace) this.free(this.workspace.tensor);
    this.workspace = null;
  }

  /** Dense weights are read directly; an NF4 weight is dequantized into the reused workspace. */
  private denseWeight(base: FrozenLinear): Float32Array {
    const w = base.weight;
    if (w.kind === "dense") return readF32(w.weight);
    if (this.workspace?.base === base) return this.workspace.data;
    const n = w.outFeatures * w.inFeatures;
    let ws = this.workspace;
    if (!ws || ws.data.length < n) {
      this.releaseWorkspace();
      const tensor = this.make([n], "f32", "workspace");
      ws = this.workspace = { base, data: tensor.data as Float32Array, tensor };
    }
    ws.base = base;
    return nf4DequantizeInto(w, ws.data.subarray(0, n));
  }

  crossEntropyLmHead(h: Tensor, head: Tensor, labels: Tensor, chunkTokens: number) {
    return crossEntropyLmHead(this, h, head, labels, chunkTokens);
  }
  crossEntropyLmHeadBackward(h: Tensor, head: Tensor, labels: Tensor, lse: Tensor, gradScale: number, chunkTokens: number): Tensor {
    return crossEntropyLmHeadBackward(this, h, head, labels, lse, gradScale, chunkTokens);
  }
  crossEntropyLmHeadAndGrad(h: Tensor, head: Tensor, labels: Tensor, gradScale: number, chunkTokens: number) {
    return crossEntropyLmHeadAndGrad(this, h, head, labels, gradScale, chunkTokens);
  }
  lmHeadLogits(h: Tensor, head: Tensor): Tensor { return lmHeadLogits(this, h, head); }

  adamw(params: readonly Tensor[], grads: readonly Tensor[], m: readonly Tensor[], v: readonly Tensor[], h: AdamWHyper): void {
    adamw(params, grads, m, v, h);
  }

  /** The spec: the two ops it fuses, one after the other. */
  addRmsnorm(a: Tensor, b: Tensor, w: Tensor, eps: number): { sum: Tensor; y: Tensor } {
    const sum = this.add(a, b);
    const { y, rstd } = this.rmsnorm(sum, w, eps);
    this.free(rstd);
    return { sum, y };
  }
  kvCacheWrite(segments: readonly KvSegment[], blockSize: number, k: Tensor, v: Tensor, slots: Tensor): void {
    kvCacheWrite(segments, blockSize, k, v, slots);
  }
  pagedAttention(q: Tensor, segments: readonly KvSegment[], view: KvBlockView, cuQueryLens: Tensor, shape: AttentionShape): Tensor {
    return pagedAttention(this, q, segments, view, cuQueryLens, shape);
  }
  argmaxRows(x: Tensor): Tensor {
    const rows = x.shape.length <= 1 ? 1 : x.shape.slice(0, -1).reduce((a, b) => a * b, 1), cols = x.shape[x.shape.length - 1];
    const v = readF32(x), out = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      let best = -Infinity, at = -1;
      for (let c = 0; c < cols; c++) {
        const e = v[r * cols + c];
        if (e > best) { best = e; at = c; }  // strict: ties keep the lower index, NaN never wins
      }
      out[r] = Math.max(at, 0);
    }
    return this.upload(out, [rows], "i32", "activations");
  }
  uploadInto(dst: Tensor, data: HostArray): void {
    const c = asCpu(dst);
    if (data.length !== c.data.length || c.data.constructor !== data.constructor) {
      throw new Error(`tsloth: uploadInto [${c.shape}] ${c.dtype} needs ${c.data.length} elements of ${c.data.constructor.name}, found ${data.length} of ${data.constructor.name}`);
    }
    (c.data as Float32Array).set(data as Float32Array);
  }
  /** Replays here run the step again: the spec of what a recording does, never faster. */
  readonly stepRecordingPays = false;
  /** The spec of a recording: a replay runs body again on the inputs' current contents. */
  recordStep(body: () => Tensor): { step: RecordedStep; output: Tensor } {
    const output = body();
    const replay = () => {
      const r = body();
      copyInto(output, r);
      this.free(r);
    };
    return { output, step: { replay, free: () => {} } };
  }
  freeDeviceBytes(): number {
    const used = Object.entries(this.accounting.report().current).reduce((a, [c, b]) => (c === "offload_host" ? a : a + b), 0);
    return this.deviceBytes - used;
  }
}
