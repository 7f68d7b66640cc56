// The CUDA side of generation's ops (Backend's DecodeBackend part): KV cache writes, attention over
// the cache's segments, and the batch-1 NF4 matrix-vector product decode uses instead of
// dequantize + GEMM. Segment pointers travel by value into the kernels, so a step uploads only its
// small index tensors, once for all layers.
import type { AttentionShape, FrozenLinear, KvBlockView, KvSegment, LoraAdapter, Nf4Weight, Tensor } from "../types.js";
import type { CudaBackend } from "./backend.js";
import { check } from "./native.js";
import { withDtype } from "./ops.js";
import { asCuda, lastDim } from "./tensor.js";

/** tsl_device_info: name[256], major, minor, multiprocessors (i32), pad, total, free (u64), runtime, driver (i32). */
const DEVICE_INFO_BYTES = 296;
const DEVICE_INFO_FREE_OFFSET = 280;

function segmentArrays(segments: readonly KvSegment[], blockSize: number): { k: BigUint64Array; v: BigUint64Array; blocks: Int32Array } {
  if (segments.length === 0) throw new Error("tsloth: a KV cache layer has no segments");
  const k = new BigUint64Array(segments.length), v = new BigUint64Array(segments.length), blocks = new Int32Array(segments.length);
  segments.forEach((s, i) => {
    const ck = asCuda(s.k, "KV keys"), cv = asCuda(s.v, "KV values");
    if (ck.dtype !== "bf16" || cv.dtype !== "bf16") throw new Error(`tsloth: the CUDA KV cache stores bf16, found ${ck.dtype}`);
    if (ck.shape[0] % blockSize !== 0) throw new Error(`tsloth: a KV segment has ${ck.shape[0]} rows, not a multiple of ${blockSize}`);
    k[i] = ck.ptr;
    v[i] = cv.ptr;
    blocks[i] = ck.shape[0] / blockSize;
  });
  return { k, v, blocks };
}

export function kvCacheWrite(be: CudaBackend, segments: readonly KvSegment[], blockSize: number, k: Tensor, v: Tensor, slots: Tensor): void {
  const seg = segmentArrays(segments, blockSize);
  const ck = asCuda(k, "keys"), cv = asCuda(v, "values"), cs = asCuda(slots, "slots");
  const width = lastDim(ck), T = ck.numel / width;
  if (lastDim(segments[0].k) !== width) throw new Error(`tsloth: KV rows are ${lastDim(segments[0].k)} wide, new keys ${width}`);
  if (cv.dtype !== ck.dtype || cs.dtype !== "i32" || cs.numel !== T) throw new Error(`tsloth: kvCacheWrite needs k, v of one dtype and i32 slots [${T}]`);
  check(be.lib.kvCacheWrite(seg.k, seg.v, seg.blocks, segments.length, blockSize, ck.ptr, cv.ptr, ck.code, cs.ptr, T, width), "tsl_kv_cache_write");
}

export function pagedAttention(be: CudaBackend, q: Tensor, segments: readonly KvSegment[], view: KvBlockView, cuQueryLens: Tensor, s: AttentionShape): Tensor {
  const seg = segmentArrays(segments, view.blockSize);
  const T = q.shape[0], B = view.contextLens.shape[0];
  const tables = asCuda(view.blockTables, "block tables"), lens = asCuda(view.contextLens, "context lengths"), cu = asCuda(cuQueryLens, "cuQueryLens");
  return withDtype(be, "bf16", [q], (cq) => {
    const o = be.alloc([T, s.numHeads * s.headDim], "bf16");
    check(
      be.lib.pagedAttention(cq.ptr, seg.k, seg.v, seg.blocks, segments.length, view.blockSize, tables.ptr, tables.shape[1], cu.ptr, lens.ptr,
        B, T, view.maxContextLen, s.numHeads, s.numKvHeads, s.headDim, s.scale, o.ptr),
      "tsl_paged_attention",
    );
    return o;
  });
}

/** Whether decode can take the fused NF4 matrix-vector path for this weight. */
export function gemvApplies(w: Nf4Weight, rows: number): boolean {
  // TSLOTH_GEMV=off sends batch-1 rows through dequantize + GEMM instead (to compare the two paths).
  return rows === 1 && process.env.TSLOTH_GEMV !== "off" && w.inFeatures % 64 === 0 && w.blocksize % 32 === 0;
}

/** y [1, out] = x [1, in] · Wᵀ (+ bias) (+ LoRA), W read once from its 4-bit codes. */
export function nf4Gemv(be: CudaBackend, x: Tensor, w: Nf4Weight, bias: Tensor | null, lora: { a: Tensor; b: Tensor; scale: number } | null): Tensor {
  const packed = asCuda(w.packed, "nf4 packed"), absmax = asCuda(w.absmax, "nf4 absmax"), n = w.nested;
  const cb = bias ? asCuda(bias, "bias") : null;
  const a = lora ? asCuda(lora.a, "LoRA a") : null, b = lora ? asCuda(lora.b, "LoRA b") : null;
  return withDtype(be, "bf16", [x], (cx) => {
    const y = be.alloc([1, w.outFeatures], "bf16");
    check(
      be.lib.nf4Gemv(packed.ptr, w.outFeatures, w.inFeatures, w.blocksize, n ? null : absmax.ptr, n ? absmax.ptr : null,
        n ? asCuda(n.absmax).ptr : null, n ? asCuda(n.code).ptr : null, n?.blocksize ?? 0, n?.offset ?? 0, cx.ptr,
        cb?.ptr ?? null, cb?.code ?? 0, a?.ptr ?? null, b?.ptr ?? null, lora?.scale ?? 0, a ? a.shape[0] : 0, y.ptr),
      "tsl_nf4_gemv",
    );
    return y;
  });
}

/** The most matrices one tsl_nf4_gemv_group launch takes (q, k, v). */
const GEMV_GROUP_MAX = 3;

/** Whether these linears over one batch-1 x can share one grouped NF4 matrix-vector launch. */
export function gemvGroupApplies(bases: readonly FrozenLinear[], rows: number): boolean {
  if (bases.length < 2 || bases.length > GEMV_GROUP_MAX) return false;
  const first = bases[0].weight;
  return bases.every(({ weight: w }) => w.kind === "nf4" && first.kind === "nf4" && gemvApplies(w, rows)
    && w.inFeatures === first.inFeatures && w.blocksize === first.blocksize && (w.nested === null) === (first.nested === null))
    && new Set(bases.map((b) => (b.bias ? asCuda(b.bias, "bias").dtype : "none")).filter((d) => d !== "none")).size <= 1;
}

/**
 * y_i [1, out_i] = x [1, in] · W_iᵀ (+ bias_i) (+ LoRA_i) for 2..3 NF4 weights sharing x, in one
 * launch (tsl_nf4_gemv_group: one kernel ramp and tail instead of one per matrix). The caller
 * checked gemvGroupApplies.
 */
export function nf4GemvGroup(be: CudaBackend, x: Tensor, bases: readonly FrozenLinear[], loras: readonly (LoraAdapter | null)[]): Tensor[] {
  const n = bases.length;
  const ws = bases.map((b) => b.weight as Nf4Weight);
  const ptrs = (f: (i: number) => bigint | null) => BigUint64Array.from(ws.map((_, i) => f(i) ?? 0n));
  const biases = bases.map((b) => (b.bias ? asCuda(b.bias, "bias") : null));
  const biasCode = biases.find((b) => b !== null)?.code ?? 0;
  const nested = ws[0].nested !== null;
  return withDtype(be, "bf16", [x], (cx) => {
    const ys = ws.map((w) => be.alloc([1, w.outFeatures], "bf16"));
    try {
      check(
        be.lib.nf4GemvGroup(n, ptrs((i) => asCuda(ws[i].packed, "nf4 packed").ptr), BigInt64Array.from(ws.map((w) => BigInt(w.outFeatures))),
          ws[0].inFeatures, ws[0].blocksize, nested ? null : ptrs((i) => asCuda(ws[i].absmax, "nf4 absmax").ptr),
          nested ? ptrs((i) => asCuda(ws[i].absmax, "nf4 absmax").ptr) : null,
          nested ? ptrs((i) => asCuda(ws[i].nested!.absmax).ptr) : null, nested ? ptrs((i) => asCuda(ws[i].nested!.code).ptr) : null,
          Int32Array.from(ws.map((w) => w.nested?.blocksize ?? 0)), Float32Array.from(ws.map((w) => w.nested?.offset ?? 0)), cx.ptr,
          ptrs((i) => biases[i]?.ptr ?? null), biasCode, ptrs((i) => (loras[i] ? asCuda(loras[i]!.a, "LoRA a").ptr : null)),
          ptrs((i) => (loras[i] ? asCuda(loras[i]!.b, "LoRA b").ptr : null)), Float32Array.from(ws.map((_, i) => loras[i]?.scale ?? 0)),
          Int32Array.from(ws.map((_, i) => loras[i]?.a.shape[0] ?? 0)), ptrs((i) => ys[i].ptr)),
        "tsl_nf4_gemv_group",
      );
    } catch (e) {
      for (const y of ys) be.free(y);
      throw e;
    }
    return ys;
  });
}

/** i32 [rows]: the index of each row's largest element (tsl_argmax_rows). */
export function argmaxRows(be: CudaBackend, x: Tensor): Tensor {
  const cx = asCuda(x, "argmax input");
  const cols = cx.shape[cx.shape.length - 1], rows = cx.numel / cols;
  const out = be.alloc([rows], "i32");
  try {
    check(be.lib.argmaxRows(cx.ptr, cx.code, rows, cols, out.ptr), "tsl_argmax_rows");
  } catch (e) {
    be.free(out);
    throw e;
  }
  return out;
}

/** Free device bytes: the driver's free memory plus what the caching allocator holds unused. */
export function freeDeviceBytes(be: CudaBackend): number {
  const info = Buffer.alloc(DEVICE_INFO_BYTES);
  check(be.lib.deviceInfo(info), "tsl_get_device_info");
  const cached = new BigUint64Array(1);
  check(be.lib.memoryStats(null, null, cached, null), "tsl_memory_stats");
  return Number(info.readBigUInt64LE(DEVICE_INFO_FREE_OFFSET)) + Number(cached[0]);
}
