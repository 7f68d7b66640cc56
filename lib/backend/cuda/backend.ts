// The CUDA backend: buffers from the library's caching allocator (per-category accounting lives
// there, so the VRAM plots read what the device really holds), copies, and the ops, which are thin
// calls into kernels-cuda. Activations are bf16 (computeDtype); LoRA adapters, their gradients and
// the optimizer state stay f32.
import koffi from "koffi";
import {
  elementCount, MEMORY_CATEGORIES, type AdamWHyper, type AttentionShape, type DecodeBackend, type DType, type FrozenLinear,
  type KvBlockView, type KvSegment,
  type HostArray, type LoraAdapter, type LoraGrads, type MemoryCategory, type MemoryReport, type PendingCopy, type RecordedStep,
  type Tensor,
} from "../types.js";
import { cudaAvailable } from "./available.js";
import * as decode from "./decode-ops.js";
import { crossEntropyLmHead, crossEntropyLmHeadAndGrad, crossEntropyLmHeadBackward, lmHeadLogits } from "./cross-entropy.js";
import { LinearOps } from "./linear.js";
import { callAsync, check, lastErrorAnyThread, native, type Native } from "./native.js";
import * as ops from "./ops.js";
import { recordStep } from "./step-graph.js";
import { asCuda, CudaTensor, rowsOf } from "./tensor.js";
import { CUDA_TRAITS } from "./traits.js";

/** The host array type each dtype is uploaded from (Node's Buffer counts as a Uint8Array). */
const HOST_ARRAY_TYPES: Record<DType, Function> = {
  f32: Float32Array, bf16: Uint16Array, f16: Uint16Array, u8: Uint8Array, i32: Int32Array,
};

export class CudaBackend implements DecodeBackend {
  readonly name = "cuda";
  readonly computeDtype = "bf16" as const;
  readonly offloadMinBytes = CUDA_TRAITS.offloadMinBytes;
  readonly kernelsReadHostMemory = CUDA_TRAITS.kernelsReadHostMemory;
  readonly attentionDqScratch = CUDA_TRAITS.attentionDqScratch;
  readonly lib: Native;
  private readonly linearOps = new LinearOps(this);

  constructor() {
    const avail = cudaAvailable();
    if (!avail.ok) throw new Error(`tsloth: the CUDA backend cannot run here: ${avail.reason}`);
    this.lib = native();
  }

  // ---- buffers ---------------------------------------------------------------------------
  /** A new uninitialized buffer (ops overwrite every element of their outputs). */
  alloc(shape: readonly number[], dtype: DType, category: MemoryCategory = "activations"): CudaTensor {
    const bytes = elementCount(shape) * (dtype === "f32" || dtype === "i32" ? 4 : dtype === "u8" ? 1 : 2);
    const out = new BigUint64Array(1);
    if (category === "offload_host") check(this.lib.hostAlloc(bytes, out), "tsl_host_alloc");
    else check(this.lib.malloc(bytes, MEMORY_CATEGORIES.indexOf(category), out), "tsl_malloc");
    return new CudaTensor([...shape], dtype, category, out[0]);
  }

  zeros(shape: readonly number[], dtype: DType, category: MemoryCategory): Tensor {
    const t = this.alloc(shape, dtype, category);
    if (category === "offload_host") new Uint8Array(this.hostView(t)).fill(0);
    else check(this.lib.memsetZero(t.ptr, t.bytes), "tsl_memset_zero");
    return t;
  }

  upload(data: HostArray, shape: readonly number[], dtype: DType, category: MemoryCategory): Tensor {
    const t = this.alloc(shape, dtype, category);
    try {
      this.uploadInto(t, data);
    } catch (e) {
      this.free(t);
      throw e;
    }
    return t;
  }

  uploadInto(dst: Tensor, data: HostArray): void {
    const t = asCuda(dst);
    if (data.length !== t.numel) throw new Error(`tsloth: upload of ${data.length} elements into shape [${t.shape}] (${t.numel})`);
    if (!(data instanceof HOST_ARRAY_TYPES[t.dtype])) {
      throw new Error(`tsloth: upload of ${t.dtype} expects a ${HOST_ARRAY_TYPES[t.dtype].name}, found ${data.constructor.name}`);
    }
    if (t.category === "offload_host") new Uint8Array(this.hostView(t)).set(new Uint8Array(data.buffer, data.byteOffset, t.bytes));
    else check(this.lib.upload(t.ptr, data, t.bytes), "tsl_upload");
  }

  recordStep(body: () => Tensor): { step: RecordedStep; output: Tensor } | null { return recordStep(this, body); }
  /** A CUDA graph replay costs one launch instead of a few hundred. */
  readonly stepRecordingPays = true;

  download(t: Tensor): Float32Array {
    const c = asCuda(t);
    if (c.dtype === "f32") return this.downloadRaw(c) as Float32Array;
    if (c.dtype === "u8" || c.dtype === "i32") return Float32Array.from(this.downloadRaw(c));
    const f = ops.castTo(this, c, "f32");
    try {
      return this.downloadRaw(f) as Float32Array;
    } finally {
      this.free(f);
    }
  }

  downloadRaw(t: Tensor): HostArray {
    const c = asCuda(t);
    const n = c.numel;
    const out = c.dtype === "f32" ? new Float32Array(n) : c.dtype === "i32" ? new Int32Array(n) : c.dtype === "u8" ? new Uint8Array(n) : new Uint16Array(n);
    if (c.category === "offload_host") {
      this.synchronizeNow();
      new Uint8Array(out.buffer).set(new Uint8Array(this.hostView(c)));
    } else check(this.lib.download(out, c.ptr, c.bytes), "tsl_download");
    return out;
  }

  free(t: Tensor): void {
    const c = asCuda(t).owner;
    c.markFreed();
    this.linearOps.forget(c);
    if (c.category === "offload_host") check(this.lib.hostFree(c.ptr), "tsl_host_free");
    else check(this.lib.free(c.ptr), "tsl_free");
  }

  clone(t: Tensor, category?: MemoryCategory): Tensor {
    const c = asCuda(t);
    const cat = category ?? c.category;
    if (cat === "offload_host" || c.category === "offload_host") return this.upload(this.downloadRaw(c), c.shape, c.dtype, cat);
    const out = this.alloc(c.shape, c.dtype, cat);
    check(this.lib.copyD2d(out.ptr, c.ptr, c.bytes), "tsl_copy_d2d");
    return out;
  }

  reshape(t: Tensor, shape: readonly number[]): Tensor {
    const c = asCuda(t);
    if (elementCount(shape) !== c.numel) throw new Error(`tsloth: cannot reshape [${c.shape}] to [${shape}]`);
    return new CudaTensor([...shape], c.dtype, c.category, c.ptr, c.owner);
  }

  copyToHostAsync(t: Tensor): PendingCopy {
    const c = asCuda(t);
    const host = this.alloc(c.shape, c.dtype, "offload_host");
    const ev = new BigUint64Array(1);
    check(this.lib.copyD2hAsync(host.ptr, c.ptr, c.bytes, ev), "tsl_copy_d2h_async");
    return { tensor: host, done: this.eventDone(ev[0]) };
  }

  copyToDeviceAsync(t: Tensor, category: MemoryCategory): PendingCopy {
    const c = asCuda(t);
    if (c.category !== "offload_host") throw new Error(`tsloth: copyToDeviceAsync expects an offload_host tensor, found ${c.category}`);
    const dev = this.alloc(c.shape, c.dtype, category);
    const ev = new BigUint64Array(1);
    check(this.lib.copyH2dAsync(dev.ptr, c.ptr, c.bytes, ev), "tsl_copy_h2d_async");
    // No GPU-side wait: ops may use `dev` once `done` resolves, i.e. once the host has seen the copy
    // finish, so they queue after it anyway, and kernels queued before then (the layer being
    // computed while this one's input is prefetched) are not held behind the copy.
    return { tensor: dev, done: this.eventDone(ev[0]) };
  }

  /** Resolves when the copy's event completes (waited on a koffi worker thread, not the main one). */
  private async eventDone(event: bigint): Promise<void> {
    const status = await callAsync(this.lib.eventSync, event);
    const msg = status === 0 ? "" : lastErrorAnyThread();
    check(this.lib.eventDestroy(event), "tsl_event_destroy");
    check(status, "tsl_event_sync", msg);
  }

  async synchronize(): Promise<void> {
    const status = await callAsync(this.lib.synchronize);
    check(status, "tsl_synchronize", status === 0 ? "" : lastErrorAnyThread());
  }

  synchronizeNow(): void {
    check(this.lib.synchronize(), "tsl_synchronize");
  }

  private hostView(t: CudaTensor): ArrayBuffer {
    return koffi.view(t.ptr, t.bytes);
  }

  // ---- memory accounting -----------------------------------------------------------------
  memory(): MemoryReport {
    const cur = new BigUint64Array(MEMORY_CATEGORIES.length);
    const peak = new BigUint64Array(MEMORY_CATEGORIES.length);
    const cached = new BigUint64Array(1);
    const peakTotal = new BigUint64Array(1);
    check(this.lib.memoryStats(cur, peak, cached, peakTotal), "tsl_memory_stats");
    const rec = (a: BigUint64Array) =>
      Object.fromEntries(MEMORY_CATEGORIES.map((c, i) => [c, Number(a[i])])) as Record<MemoryCategory, number>;
    return { current: rec(cur), peak: rec(peak), peakDeviceTotal: Number(peakTotal[0]) };
  }

  resetPeak(): void {
    check(this.lib.resetPeak(), "tsl_reset_peak");
  }

  /** Returns the allocator's cached (free) blocks to the driver. */
  emptyCache(): void {
    check(this.lib.emptyCache(), "tsl_empty_cache");
  }

  // ---- ops ---------------------------------------------------------------------------------
  add(a: Tensor, b: Tensor): Tensor { return ops.add(this, a, b); }
  addInPlace(dst: Tensor, src: Tensor, alpha = 1): void { ops.addInPlace(this, dst, src, alpha); }
  scaleInPlace(t: Tensor, s: number): void { ops.scaleInPlace(this, t, s); }
  zeroInPlace(t: Tensor): void { const c = asCuda(t); check(this.lib.memsetZero(c.ptr, c.bytes), "tsl_memset_zero"); }
  copyInto(dst: Tensor, src: Tensor): void { ops.copyInto(this, dst, src); }
  sumOfSquares(ts: readonly Tensor[]): number { return ops.sumOfSquares(this, ts); }
  embedding(table: Tensor, ids: Tensor): Tensor { return ops.embedding(this, table, ids); }
  embeddingBackward(dy: Tensor, ids: Tensor, dTable: Tensor): void { ops.embeddingBackward(this, dy, ids, dTable); }
  rmsnorm(x: Tensor, w: Tensor, eps: number) { return ops.rmsnorm(this, x, w, eps); }
  addRmsnorm(a: Tensor, b: Tensor, w: Tensor, eps: number) { return ops.addRmsnorm(this, a, b, w, eps); }
  rmsnormBackward(dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor): Tensor { return ops.rmsnormBackward(this, dy, x, w, rstd); }
  rope(x: Tensor, positions: Tensor, invFreq: Tensor, nHeads: number, headDim: number): Tensor {
    return ops.rope(this, x, positions, invFreq, nHeads, headDim, 1);
  }
  ropeBackward(dy: Tensor, positions: Tensor, invFreq: Tensor, nHeads: number, headDim: number): Tensor {
    return ops.rope(this, dy, positions, invFreq, nHeads, headDim, -1);
  }
  attention(q: Tensor, k: Tensor, v: Tensor, cuSeqlens: Tensor, shape: AttentionShape) {
    return ops.attention(this, q, k, v, cuSeqlens, shape);
  }
  attentionBackward(dO: Tensor, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, cuSeqlens: Tensor, shape: AttentionShape) {
    return ops.attentionBackward(this, dO, q, k, v, o, lse, cuSeqlens, shape);
  }
  swiglu(gate: Tensor, up: Tensor): Tensor { return ops.swiglu(this, gate, up); }
  swigluBackward(dh: Tensor, gate: Tensor, up: Tensor) { return ops.swigluBackward(this, dh, gate, up); }
  linear(x: Tensor, base: FrozenLinear, lora: LoraAdapter | null): Tensor { return this.linearOps.forward(x, base, lora); }
  linearBackward(dy: Tensor, x: Tensor, base: FrozenLinear, lora: LoraAdapter | null, grads: LoraGrads | null, needDx: boolean) {
    return this.linearOps.backward(dy, x, base, lora, grads, needDx);
  }
  releaseWorkspace(): void { this.linearOps.release(); }
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
    ops.adamw(this, params, grads, m, v, h);
  }
  kvCacheWrite(segments: readonly KvSegment[], blockSize: number, k: Tensor, v: Tensor, slots: Tensor): void {
    decode.kvCacheWrite(this, segments, blockSize, k, v, slots);
  }
  /**
   * Batch-1 NF4 weights that can share one launch take tsl_nf4_gemv_group; other decode shapes run
   * one by one; above them the adapters share one pass over x (LinearOps.forwardGroup).
   */
  linearGroup(x: Tensor, bases: readonly FrozenLinear[], loras: readonly (LoraAdapter | null)[]): Tensor[] {
    if (decode.gemvGroupApplies(bases, rowsOf(x))) return decode.nf4GemvGroup(this, x, bases, loras);
    return this.linearOps.forwardGroup(x, bases, loras);
  }
  linearGroupBackward(
    dys: readonly Tensor[], x: Tensor, bases: readonly FrozenLinear[], loras: readonly (LoraAdapter | null)[],
    grads: readonly (LoraGrads | null)[], needDx: boolean,
  ): Tensor | null {
    return this.linearOps.backwardGroup(dys, x, bases, loras, grads, needDx);
  }
  pagedAttention(q: Tensor, segments: readonly KvSegment[], view: KvBlockView, cuQueryLens: Tensor, shape: AttentionShape): Tensor {
    return decode.pagedAttention(this, q, segments, view, cuQueryLens, shape);
  }
  freeDeviceBytes(): number { return decode.freeDeviceBytes(this); }
  argmaxRows(x: Tensor): Tensor { return decode.argmaxRows(this, x); }
}
