// One Llama-family decoder layer over the Backend: pre-norm attention (GQA, RoPE, Qwen2 q/k/v bias,
// Qwen3 q/k norm) and a SwiGLU MLP, each on a residual. Forward can keep its activations for the
// backward, or drop them (the caller then re-runs the forward from the kept input: checkpointing),
// optionally keeping only the attention's output and log-sum-exp so the re-run can skip attention.
import type { AttentionShape, Backend, Tensor } from "../backend/types.js";
import type { ModelConfig } from "../formats/hf-config.js";
import type { LoraSlot } from "./lora.js";
import type { LayerWeights, LinearName } from "./weights.js";

export interface LayerContext {
  be: Backend;
  config: ModelConfig;
  weights: LayerWeights;
  lora: Partial<Record<LinearName, LoraSlot>> | null;
  invFreq: Tensor;
  positions: Tensor;
  cuSeqlens: Tensor;
  attention: AttentionShape;
}

/** What backward needs from forward. The layer input x is owned by the caller. */
export interface LayerActivations {
  n1: Tensor; rstd1: Tensor;
  qRaw: Tensor; kRaw: Tensor;
  rq: Tensor | null; rk: Tensor | null;
  qr: Tensor; kr: Tensor; v: Tensor;
  o: Tensor; lse: Tensor;
  x2: Tensor; n2: Tensor; rstd2: Tensor;
  g: Tensor; u: Tensor; h: Tensor;
}

/** The attention core's results: all its backward needs besides q, k, v (recomputed by cheap linears). */
export interface AttentionOutputs {
  o: Tensor;
  lse: Tensor;
}

export interface LayerForwardOptions {
  /** Keep every activation for backward (no checkpointing). */
  keep: boolean;
  /** When not keeping: still return the attention outputs (the caller saves them for the recompute). */
  keepAttention?: boolean;
  /** Outputs a previous forward of this layer on the same input produced: attention is not run again. */
  reuse?: AttentionOutputs;
}

function linearOf(ctx: LayerContext, name: LinearName, x: Tensor): Tensor {
  return ctx.be.linear(x, ctx.weights.linears[name], ctx.lora?.[name]?.adapter ?? null);
}

function linearBack(ctx: LayerContext, name: LinearName, dy: Tensor, x: Tensor, needDx: boolean): Tensor | null {
  const slot = ctx.lora?.[name];
  return ctx.be.linearBackward(dy, x, ctx.weights.linears[name], slot?.adapter ?? null, slot?.grads ?? null, needDx);
}

/** The linears that share x (q/k/v, gate/up) as one group: one pass over x for their adapters. */
function linearsOf(ctx: LayerContext, names: readonly LinearName[], x: Tensor): Tensor[] {
  const bases = names.map((n) => ctx.weights.linears[n]), loras = names.map((n) => ctx.lora?.[n]?.adapter ?? null);
  if (ctx.be.linearGroup) return ctx.be.linearGroup(x, bases, loras);
  return bases.map((b, i) => ctx.be.linear(x, b, loras[i]));
}

/** Backward of linearsOf: the group's summed dx (null when needDx is false). */
function linearsBack(ctx: LayerContext, names: readonly LinearName[], dys: readonly Tensor[], x: Tensor, needDx: boolean): Tensor | null {
  const be = ctx.be, bases = names.map((n) => ctx.weights.linears[n]), slots = names.map((n) => ctx.lora?.[n]);
  const loras = slots.map((s) => s?.adapter ?? null), grads = slots.map((s) => s?.grads ?? null);
  if (be.linearGroupBackward) return be.linearGroupBackward(dys, x, bases, loras, grads, needDx);
  // A backend without the grouped op: its definition, one backward per linear, summed as they come.
  let dx: Tensor | null = null;
  for (let i = 0; i < names.length; i++) {
    const d = be.linearBackward(dys[i], x, bases[i], loras[i], grads[i], needDx);
    if (d && dx) {
      be.addInPlace(dx, d);
      be.free(d);
    } else dx ??= d;
  }
  return dx;
}

/** Per-head RMSNorm (Qwen3) over [T, heads*D] viewed as [T*heads, D]. */
function headNorm(be: Backend, x: Tensor, w: Tensor, heads: number, d: number, eps: number): { y: Tensor; rstd: Tensor } {
  const t = x.shape[0];
  const { y, rstd } = be.rmsnorm(be.reshape(x, [t * heads, d]), w, eps);
  return { y: be.reshape(y, [t, heads * d]), rstd };
}

export function layerForward(
  ctx: LayerContext, x: Tensor, opts: LayerForwardOptions,
): { out: Tensor; acts: LayerActivations | null; attention: AttentionOutputs | null } {
  const { be, config: c, weights: w } = ctx;
  const { numHeads: hq, numKvHeads: hkv, headDim: d } = ctx.attention;
  const { y: n1, rstd: rstd1 } = be.rmsnorm(x, w.inputNorm, c.rmsNormEps);
  const [qRaw, kRaw, v] = linearsOf(ctx, ["q", "k", "v"], n1);
  let qIn = qRaw, kIn = kRaw, rq: Tensor | null = null, rk: Tensor | null = null;
  if (w.qNorm && w.kNorm) {
    const qn = headNorm(be, qRaw, w.qNorm, hq, d, c.rmsNormEps);
    const kn = headNorm(be, kRaw, w.kNorm, hkv, d, c.rmsNormEps);
    qIn = qn.y; rq = qn.rstd; kIn = kn.y; rk = kn.rstd;
  }
  const qr = be.rope(qIn, ctx.positions, ctx.invFreq, hq, d);
  const kr = be.rope(kIn, ctx.positions, ctx.invFreq, hkv, d);
  if (qIn !== qRaw) { be.free(qIn); be.free(kIn); }
  const { o, lse } = opts.reuse ?? be.attention(qr, kr, v, ctx.cuSeqlens, ctx.attention);
  const attnOut = linearOf(ctx, "o", o);
  const x2 = be.add(x, attnOut);
  be.free(attnOut);
  const { y: n2, rstd: rstd2 } = be.rmsnorm(x2, w.postAttentionNorm, c.rmsNormEps);
  const [g, u] = linearsOf(ctx, ["gate", "up"], n2);
  const h = be.swiglu(g, u);
  const mlpOut = linearOf(ctx, "down", h);
  const out = be.add(x2, mlpOut);
  be.free(mlpOut);
  const acts: LayerActivations = { n1, rstd1, qRaw, kRaw, rq, rk, qr, kr, v, o, lse, x2, n2, rstd2, g, u, h };
  if (opts.keep) return { out, acts, attention: null };
  const attention = opts.keepAttention ? { o, lse } : null;
  for (const t of Object.values(acts)) if (t && !t.freed && t !== attention?.o && t !== attention?.lse) be.free(t);
  return { out, acts: null, attention };
}

/**
 * Backward of one layer from its kept activations: accumulates LoRA gradients and returns the
 * gradient of the layer input (null when `needDx` is false: the first layer over a frozen embedding).
 * Frees the activations; does not free dOut or x.
 */
export function layerBackward(ctx: LayerContext, x: Tensor, a: LayerActivations, dOut: Tensor, needDx: boolean): Tensor | null {
  const { be, config: c, weights: w } = ctx;
  const { numHeads: hq, numKvHeads: hkv, headDim: d } = ctx.attention;
  const T = x.shape[0];
  // MLP branch
  const dH = linearBack(ctx, "down", dOut, a.h, true)!;
  const { dGate, dUp } = be.swigluBackward(dH, a.g, a.u);
  be.free(dH);
  const dn2 = linearsBack(ctx, ["gate", "up"], [dGate, dUp], a.n2, true)!;
  for (const t of [dGate, dUp, a.h, a.g, a.u]) be.free(t);
  const dx2Norm = be.rmsnormBackward(dn2, a.x2, w.postAttentionNorm, a.rstd2);
  const dx2 = be.add(dOut, dx2Norm);
  for (const t of [dn2, dx2Norm, a.x2, a.n2, a.rstd2]) be.free(t);
  // attention branch
  const dO = linearBack(ctx, "o", dx2, a.o, true)!;
  const { dq, dk, dv } = be.attentionBackward(dO, a.qr, a.kr, a.v, a.o, a.lse, ctx.cuSeqlens, ctx.attention);
  for (const t of [dO, a.qr, a.kr, a.o, a.lse]) be.free(t);
  let dqRaw = be.ropeBackward(dq, ctx.positions, ctx.invFreq, hq, d);
  let dkRaw = be.ropeBackward(dk, ctx.positions, ctx.invFreq, hkv, d);
  be.free(dq);
  be.free(dk);
  if (w.qNorm && w.kNorm && a.rq && a.rk) {
    const dqn = be.rmsnormBackward(be.reshape(dqRaw, [T * hq, d]), be.reshape(a.qRaw, [T * hq, d]), w.qNorm, a.rq);
    const dkn = be.rmsnormBackward(be.reshape(dkRaw, [T * hkv, d]), be.reshape(a.kRaw, [T * hkv, d]), w.kNorm, a.rk);
    for (const t of [dqRaw, dkRaw, a.rq, a.rk]) be.free(t);
    dqRaw = be.reshape(dqn, [T, hq * d]);
    dkRaw = be.reshape(dkn, [T, hkv * d]);
  }
  const dn1 = linearsBack(ctx, ["q", "k", "v"], [dqRaw, dkRaw, dv], a.n1, needDx);
  for (const t of [dqRaw, dkRaw, dv, a.qRaw, a.kRaw, a.v]) if (!t.freed) be.free(t);
  let dx: Tensor | null = null;
  if (needDx && dn1) {
    dx = be.rmsnormBackward(dn1, x, w.inputNorm, a.rstd1);
    be.addInPlace(dx, dx2);
    be.free(dn1);
  }
  for (const t of [dx2, a.n1, a.rstd1]) be.free(t);
  return dx;
}
