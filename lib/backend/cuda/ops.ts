// The CUDA backend's ops other than linear and cross-entropy: argument checks, dtype adaptation
// (ops compute on bf16 activations; other float inputs are cast into temporary workspace), and one
// call into kernels-cuda each.
import { elementCount, type AdamWHyper, type AttentionShape, type DType, type Tensor } from "../types.js";
import type { CudaBackend } from "./backend.js";
import { check } from "./native.js";
import { asCuda, CudaTensor, isFloat, lastDim, rowsOf } from "./tensor.js";

/** A copy of t in another float dtype (workspace category; the caller frees it). */
export function castTo(be: CudaBackend, t: CudaTensor, dtype: DType): CudaTensor {
  const out = be.alloc(t.shape, dtype, "workspace");
  check(be.lib.cast(t.ptr, t.code, out.ptr, out.code, t.numel), "tsl_cast");
  return out;
}

/** Runs fn with each input in `dtype`, casting (and afterwards freeing) those that are not. */
export function withDtype<R>(be: CudaBackend, dtype: DType, inputs: readonly Tensor[], fn: (...ts: CudaTensor[]) => R): R {
  const temps: CudaTensor[] = [];
  const conv = inputs.map((t, i) => {
    const c = asCuda(t, `input ${i}`);
    if (c.dtype === dtype) return c;
    if (!isFloat(c.dtype)) throw new Error(`tsloth: expected a float tensor, found ${c.dtype} [${c.shape}]`);
    const x = castTo(be, c, dtype);
    temps.push(x);
    return x;
  });
  try {
    return fn(...conv);
  } finally {
    for (const t of temps) be.free(t);
  }
}

function expectSame(a: Tensor, b: Tensor, what: string): void {
  if (elementCount(a.shape) !== elementCount(b.shape)) {
    throw new Error(`tsloth: ${what} needs equal sizes, found [${a.shape}] and [${b.shape}]`);
  }
}

function expectDtype(t: Tensor, dtype: DType, what: string): CudaTensor {
  const c = asCuda(t, what);
  if (c.dtype !== dtype) throw new Error(`tsloth: ${what} must be ${dtype}, found ${c.dtype}`);
  return c;
}

export function add(be: CudaBackend, a: Tensor, b: Tensor): Tensor {
  expectSame(a, b, "add");
  const ca = asCuda(a);
  return withDtype(be, ca.dtype, [b], (cb) => {
    const out = be.alloc(ca.shape, ca.dtype);
    check(be.lib.add(ca.ptr, cb.ptr, out.ptr, ca.code, ca.numel), "tsl_add");
    return out;
  });
}

export function addInPlace(be: CudaBackend, dst: Tensor, src: Tensor, alpha: number): void {
  expectSame(dst, src, "addInPlace");
  const d = asCuda(dst), s = asCuda(src);
  check(be.lib.axpy(d.ptr, d.code, s.ptr, s.code, alpha, d.numel), "tsl_axpy");
}

export function scaleInPlace(be: CudaBackend, t: Tensor, s: number): void {
  const c = asCuda(t);
  check(be.lib.scale(c.ptr, c.code, s, c.numel), "tsl_scale");
}

export function copyInto(be: CudaBackend, dst: Tensor, src: Tensor): void {
  const d = asCuda(dst), s = asCuda(src);
  if (d.bytes !== s.bytes || d.dtype !== s.dtype) {
    throw new Error(`tsloth: copyInto needs the same dtype and size, found ${d.dtype}[${d.shape}] and ${s.dtype}[${s.shape}]`);
  }
  check(be.lib.copyD2d(d.ptr, s.ptr, d.bytes), "tsl_copy_d2d");
}

export function sumOfSquares(be: CudaBackend, ts: readonly Tensor[]): number {
  const cs = ts.map((t) => asCuda(t));
  const out = new Float64Array(1);
  check(
    be.lib.sumSquares(
      BigUint64Array.from(cs.map((c) => c.ptr)),
      BigUint64Array.from(cs.map((c) => BigInt(c.numel))),
      Int32Array.from(cs.map((c) => c.code)),
      cs.length,
      out,
    ),
    "tsl_sum_squares",
  );
  return out[0];
}

export function embedding(be: CudaBackend, table: Tensor, ids: Tensor): Tensor {
  const tb = asCuda(table, "embedding table"), id = expectDtype(ids, "i32", "token ids");
  const T = id.numel, [V, H] = tb.shape;
  const out = be.alloc([T, H], "bf16");
  check(be.lib.embeddingFwd(tb.ptr, tb.code, id.ptr, T, V, H, out.ptr), "tsl_embedding_fwd");
  return out;
}

export function embeddingBackward(be: CudaBackend, dy: Tensor, ids: Tensor, dTable: Tensor): void {
  const dt = expectDtype(dTable, "f32", "embedding gradient"), id = expectDtype(ids, "i32", "token ids");
  const [V, H] = dt.shape;
  withDtype(be, "bf16", [dy], (d) => check(be.lib.embeddingBwd(d.ptr, id.ptr, id.numel, V, H, dt.ptr), "tsl_embedding_bwd"));
}

export function rmsnorm(be: CudaBackend, x: Tensor, w: Tensor, eps: number): { y: Tensor; rstd: Tensor } {
  const cw = asCuda(w, "norm weight");
  const H = lastDim(x), T = rowsOf(x);
  if (cw.numel !== H) throw new Error(`tsloth: rmsnorm weight has ${cw.numel} elements, rows have ${H}`);
  return withDtype(be, "bf16", [x], (cx) => {
    const y = be.alloc(x.shape, "bf16");
    const rstd = be.alloc([T], "f32");
    check(be.lib.rmsnormFwd(cx.ptr, cw.ptr, cw.code, T, H, eps, y.ptr, rstd.ptr), "tsl_rmsnorm_fwd");
    return { y, rstd };
  });
}

/** sum = a + b and y = rmsnorm(sum) in one launch, bit-identical to add then rmsnorm (DecodeBackend.addRmsnorm). */
export function addRmsnorm(be: CudaBackend, a: Tensor, b: Tensor, w: Tensor, eps: number): { sum: Tensor; y: Tensor } {
  expectSame(a, b, "addRmsnorm");
  const cw = asCuda(w, "norm weight");
  const H = lastDim(a), T = rowsOf(a);
  if (cw.numel !== H) throw new Error(`tsloth: rmsnorm weight has ${cw.numel} elements, rows have ${H}`);
  if (asCuda(a).dtype !== "bf16") {  // add keeps a's dtype: the two ops themselves, for the same results
    const sum = add(be, a, b);
    const { y, rstd } = rmsnorm(be, sum, w, eps);
    be.free(rstd);
    return { sum, y };
  }
  return withDtype(be, "bf16", [b], (cb) => {
    const ca = asCuda(a);
    const sum = be.alloc(a.shape, "bf16");
    const y = be.alloc(a.shape, "bf16");
    check(be.lib.addRmsnormFwd(ca.ptr, cb.ptr, cw.ptr, cw.code, T, H, eps, sum.ptr, y.ptr), "tsl_add_rmsnorm_fwd");
    return { sum, y };
  });
}

export function rmsnormBackward(be: CudaBackend, dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor): Tensor {
  const cw = asCuda(w, "norm weight"), r = expectDtype(rstd, "f32", "rstd");
  const H = lastDim(x), T = rowsOf(x);
  return withDtype(be, "bf16", [dy, x], (cdy, cx) => {
    const dx = be.alloc(x.shape, "bf16");
    check(be.lib.rmsnormBwd(cdy.ptr, cx.ptr, cw.ptr, cw.code, r.ptr, T, H, dx.ptr), "tsl_rmsnorm_bwd");
    return dx;
  });
}

export function rope(be: CudaBackend, x: Tensor, positions: Tensor, invFreq: Tensor, nHeads: number, headDim: number, direction: 1 | -1): Tensor {
  const pos = expectDtype(positions, "i32", "positions");
  const T = pos.numel;
  if (elementCount(x.shape) !== T * nHeads * headDim) {
    throw new Error(`tsloth: rope expects [${T}, ${nHeads * headDim}], found [${x.shape}]`);
  }
  return withDtype(be, "f32", [invFreq], (inv) =>
    withDtype(be, "bf16", [x], (cx) => {
      const y = be.alloc(x.shape, "bf16");
      check(be.lib.rope(cx.ptr, pos.ptr, inv.ptr, T, nHeads, headDim, direction, y.ptr), "tsl_rope");
      return y;
    }),
  );
}

export function swiglu(be: CudaBackend, gate: Tensor, up: Tensor): Tensor {
  expectSame(gate, up, "swiglu");
  return withDtype(be, "bf16", [gate, up], (g, u) => {
    const h = be.alloc(gate.shape, "bf16");
    check(be.lib.swigluFwd(g.ptr, u.ptr, g.numel, h.ptr), "tsl_swiglu_fwd");
    return h;
  });
}

export function swigluBackward(be: CudaBackend, dh: Tensor, gate: Tensor, up: Tensor): { dGate: Tensor; dUp: Tensor } {
  expectSame(gate, up, "swigluBackward");
  return withDtype(be, "bf16", [dh, gate, up], (d, g, u) => {
    const dGate = be.alloc(gate.shape, "bf16"), dUp = be.alloc(up.shape, "bf16");
    check(be.lib.swigluBwd(d.ptr, g.ptr, u.ptr, g.numel, dGate.ptr, dUp.ptr), "tsl_swiglu_bwd");
    return { dGate, dUp };
  });
}

/** Sequence count and longest sequence of a cuSeqlens tensor (read once per tensor, then cached). */
const seqInfo = new WeakMap<CudaTensor, { seqs: number; maxLen: number }>();
function sequences(be: CudaBackend, cuSeqlens: Tensor): { cu: CudaTensor; seqs: number; maxLen: number } {
  const cu = expectDtype(cuSeqlens, "i32", "cuSeqlens");
  let info = seqInfo.get(cu);
  if (!info) {
    const host = be.downloadRaw(cu) as Int32Array;
    let maxLen = 0;
    for (let i = 1; i < host.length; i++) maxLen = Math.max(maxLen, host[i] - host[i - 1]);
    info = { seqs: host.length - 1, maxLen };
    seqInfo.set(cu, info);
  }
  return { cu, ...info };
}

export function attention(be: CudaBackend, q: Tensor, k: Tensor, v: Tensor, cuSeqlens: Tensor, s: AttentionShape): { o: Tensor; lse: Tensor } {
  const { cu, seqs, maxLen } = sequences(be, cuSeqlens);
  const T = rowsOf(q);
  return withDtype(be, "bf16", [q, k, v], (cq, ck, cv) => {
    const o = be.alloc([T, s.numHeads * s.headDim], "bf16");
    const lse = be.alloc([s.numHeads, T], "f32");
    check(
      be.lib.attentionFwd(cq.ptr, ck.ptr, cv.ptr, cu.ptr, seqs, maxLen, T, s.numHeads, s.numKvHeads, s.headDim, s.scale, o.ptr, lse.ptr),
      "tsl_attention_fwd",
    );
    return { o, lse };
  });
}

export function attentionBackward(
  be: CudaBackend, dO: Tensor, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, cuSeqlens: Tensor, s: AttentionShape,
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const { cu, seqs, maxLen } = sequences(be, cuSeqlens);
  const L = expectDtype(lse, "f32", "lse");
  const T = rowsOf(q);
  return withDtype(be, "bf16", [dO, q, k, v, o], (cdo, cq, ck, cv, co) => {
    const dq = be.alloc(q.shape, "bf16"), dk = be.alloc(k.shape, "bf16"), dv = be.alloc(v.shape, "bf16");
    check(
      be.lib.attentionBwd(cdo.ptr, cq.ptr, ck.ptr, cv.ptr, co.ptr, L.ptr, cu.ptr, seqs, maxLen, T, s.numHeads, s.numKvHeads,
        s.headDim, s.scale, dq.ptr, dk.ptr, dv.ptr),
      "tsl_attention_bwd",
    );
    return { dq, dk, dv };
  });
}

export function adamw(be: CudaBackend, params: readonly Tensor[], grads: readonly Tensor[], m: readonly Tensor[], v: readonly Tensor[], h: AdamWHyper): void {
  const n = params.length;
  if (grads.length !== n || m.length !== n || v.length !== n) throw new Error("tsloth: adamw needs as many grads, m and v as params");
  const ptrs = (ts: readonly Tensor[], what: string) =>
    BigUint64Array.from(ts.map((t, i) => {
      const c = expectDtype(t, "f32", `adamw ${what}[${i}]`);
      if (c.numel !== asCuda(params[i]).numel) throw new Error(`tsloth: adamw ${what}[${i}] size differs from its parameter`);
      return c.ptr;
    }));
  const sizes = BigUint64Array.from(params.map((p) => BigInt(asCuda(p).numel)));
  check(
    be.lib.adamw(ptrs(params, "param"), ptrs(grads, "grad"), ptrs(m, "m"), ptrs(v, "v"), sizes, n, h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, h.step),
    "tsl_adamw",
  );
}
