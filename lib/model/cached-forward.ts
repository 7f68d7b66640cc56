// The Llama-family forward pass for generation: new tokens only, their keys and values written
// into a KV cache, attention over what the cache holds, logits for each sequence's last new token.
// Prefill of fresh prompts runs the packed training attention over the new tokens (they attend only
// to each other); decode steps read the cache with Backend.pagedAttention.
import type { AttentionShape, DecodeBackend, KvBlockView, KvSegment, Tensor } from "../backend/types.js";
import type { LlamaModel } from "./llama.js";
import type { LayerWeights, LinearName } from "./weights.js";
import type { LoraSlot } from "./lora.js";

/** One forward step over B sequences, each contributing one or more new tokens. */
export interface CachedStep {
  /** New token ids, sequences laid end to end. */
  ids: Int32Array;
  /** Position of each new token in its sequence. */
  positions: Int32Array;
  /** i32 [B + 1]: sequence b owns new tokens cuQueryLens[b] .. cuQueryLens[b+1] − 1. */
  cuQueryLens: Int32Array;
  /** Global cache slot of each new token (KvCache.append). */
  slots: Int32Array;
  /** Cached positions per sequence after this step (its new tokens included). */
  contextLens: Int32Array;
  /** Block table rows [B, maxBlocks] (KvCache.blockTables). */
  blockTables: Int32Array;
  maxBlocks: number;
  /** Positions per block of the cache (KvCache.blockSize). */
  blockSize: number;
  /**
   * "fresh": every sequence's new tokens are its whole context (a prompt's prefill), so attention
   * over the new tokens alone is exact and uses the packed training kernel; "cache": read the cache.
   */
  attention: "fresh" | "cache";
}

export interface StepTensors {
  ids: Tensor; positions: Tensor; cu: Tensor; slots: Tensor; view: KvBlockView; lastRows: Tensor;
}

function linearOf(be: DecodeBackend, w: LayerWeights, lora: Partial<Record<LinearName, LoraSlot>> | null, name: LinearName, x: Tensor): Tensor {
  return be.linear(x, w.linears[name], lora?.[name]?.adapter ?? null);
}

function linearsOf(
  be: DecodeBackend, w: LayerWeights, lora: Partial<Record<LinearName, LoraSlot>> | null, names: readonly LinearName[], x: Tensor,
): Tensor[] {
  return be.linearGroup(x, names.map((n) => w.linears[n]), names.map((n) => lora?.[n]?.adapter ?? null));
}

/** Qwen3's per-head RMSNorm over [T, heads·D] viewed as [T·heads, D]. */
function headNorm(be: DecodeBackend, x: Tensor, w: Tensor, heads: number, d: number, eps: number): Tensor {
  const t = x.shape[0];
  const { y, rstd } = be.rmsnorm(be.reshape(x, [t * heads, d]), w, eps);
  be.free(rstd);
  return be.reshape(y, [t, heads * d]);
}

/**
 * One layer over the residual stream x, given n1 = rmsnorm(x) by the layer's input norm (freed here as
 * soon as q/k/v are made, so a long prefill does not hold it through the layer). Each residual
 * add runs fused with the norm that follows it (Backend.addRmsnorm): the post-attention norm, and
 * `nextNorm` (the next layer's input norm, or the final norm) when given, whose output comes back as n.
 */
function cachedLayer(
  model: LlamaModel, be: DecodeBackend, layer: number, x: Tensor, n1: Tensor, nextNorm: Tensor | null, t: StepTensors,
  segments: readonly KvSegment[], step: CachedStep,
): { x: Tensor; n: Tensor | null } {
  const c = model.config, w = model.weights.layers[layer], lora = model.lora?.byLayer[layer] ?? null;
  const shape: AttentionShape = model.attention;
  const { numHeads: hq, numKvHeads: hkv, headDim: d } = shape;
  // q, k, v (and below gate, up) share their input: one grouped op (one launch in batch-1 decode).
  const [q0, k0, v] = linearsOf(be, w, lora, ["q", "k", "v"], n1);
  let q = q0, k = k0;
  be.free(n1);
  if (w.qNorm && w.kNorm) {
    const qn = headNorm(be, q, w.qNorm, hq, d, c.rmsNormEps), kn = headNorm(be, k, w.kNorm, hkv, d, c.rmsNormEps);
    be.free(q); be.free(k);
    q = qn; k = kn;
  }
  const qr = be.rope(q, t.positions, model.invFreq, hq, d);
  const kr = be.rope(k, t.positions, model.invFreq, hkv, d);
  be.free(q); be.free(k);
  be.kvCacheWrite(segments, t.view.blockSize, kr, v, t.slots);
  let o: Tensor;
  if (step.attention === "fresh") {
    const r = be.attention(qr, kr, v, t.cu, shape);
    be.free(r.lse);
    o = r.o;
  } else o = be.pagedAttention(qr, segments, t.view, t.cu, shape);
  for (const z of [qr, kr, v]) be.free(z);
  const attnOut = linearOf(be, w, lora, "o", o);
  be.free(o);
  const { sum: x2, y: n2 } = be.addRmsnorm(x, attnOut, w.postAttentionNorm, c.rmsNormEps);
  be.free(attnOut);
  const [g, u] = linearsOf(be, w, lora, ["gate", "up"], n2);
  be.free(n2);
  const h = be.swiglu(g, u);
  be.free(g); be.free(u);
  const mlpOut = linearOf(be, w, lora, "down", h);
  be.free(h);
  try {
    if (!nextNorm) return { x: be.add(x2, mlpOut), n: null };
    const { sum, y } = be.addRmsnorm(x2, mlpOut, nextNorm, c.rmsNormEps);
    return { x: sum, n: y };
  } finally {
    be.free(x2); be.free(mlpOut);
  }
}

/** The step's inputs on the device; the decode step graphs (lib/infer/step-graphs.ts) keep their own. */
export function uploadStepTensors(be: DecodeBackend, step: CachedStep): StepTensors {
  const B = step.cuQueryLens.length - 1, T = step.ids.length;
  const lastRows = Int32Array.from({ length: B }, (_, b) => step.cuQueryLens[b + 1] - 1);
  const made: Tensor[] = [];
  const up = (a: Int32Array, shape: number[]) => {
    const t = be.upload(a, shape, "i32", "activations");
    made.push(t);
    return t;
  };
  try {
    return {
      ids: up(step.ids, [T]), positions: up(step.positions, [T]), cu: up(step.cuQueryLens, [B + 1]), slots: up(step.slots, [T]),
      lastRows: up(lastRows, [B]),
      view: {
        blockSize: step.blockSize,
        blockTables: up(step.blockTables, [B, step.maxBlocks]),
        contextLens: up(step.contextLens, [B]),
        maxContextLen: Math.max(...step.contextLens),
      },
    };
  } catch (e) {
    for (const t of made) be.free(t);
    throw e;
  }
}

export function freeStepTensors(be: DecodeBackend, t: StepTensors): void {
  for (const z of [t.ids, t.positions, t.cu, t.slots, t.lastRows, t.view.blockTables, t.view.contextLens]) be.free(z);
}

/**
 * The logits of each sequence's last new token, f32 [B, vocab] on the device, from inputs already
 * on the device. Issues only device work (no host reads), so a decode step can be recorded and
 * replayed (DecodeBackend.recordStep); `step` gives the host-side shape (B, T, attention kind).
 */
export function stepLogitsTensor(
  model: LlamaModel, be: DecodeBackend, segments: (layer: number) => readonly KvSegment[], step: CachedStep, t: StepTensors,
): Tensor {
  const B = step.cuQueryLens.length - 1, T = step.ids.length;
  try {
    const layers = model.weights.layers, L = model.config.numLayers, eps = model.config.rmsNormEps;
    let x = be.embedding(model.weights.embed, t.ids);
    const first = be.rmsnorm(x, layers[0].inputNorm, eps);
    be.free(first.rstd);
    let n: Tensor | null = first.y;
    // Decode (one new token per sequence) takes the final norm fused into the last layer's add;
    // prefill norms only each sequence's last row, below.
    for (let l = 0; l < L; l++) {
      const nextNorm = l + 1 < L ? layers[l + 1].inputNorm : B === T ? model.weights.finalNorm : null;
      const out: { x: Tensor; n: Tensor | null } = cachedLayer(model, be, l, x, n!, nextNorm, t, segments(l), step);
      be.free(x);
      x = out.x;
      n = out.n;
    }
    if (n) {
      be.free(x);
      const logits = be.lmHeadLogits(n, model.weights.lmHead);
      be.free(n);
      return logits;
    }
    // Only each sequence's last row goes through the final norm and the LM head (gathered as an
    // embedding lookup of x's rows).
    const last = be.embedding(x, t.lastRows);
    be.free(x);
    const { y, rstd } = be.rmsnorm(last, model.weights.finalNorm, eps);
    const logits = be.lmHeadLogits(y, model.weights.lmHead);
    for (const z of [last, y, rstd]) be.free(z);
    return logits;
  } finally {
    be.releaseWorkspace();
  }
}

/** The step's logits, or with `greedy` the i32 [B] index of each row's largest logit (picked on the device). */
export function stepOutputTensor(
  model: LlamaModel, be: DecodeBackend, segments: (layer: number) => readonly KvSegment[], step: CachedStep, t: StepTensors, greedy: boolean,
): Tensor {
  const logits = stepLogitsTensor(model, be, segments, step, t);
  if (!greedy) return logits;
  try {
    return be.argmaxRows(logits);
  } finally {
    be.free(logits);
  }
}

/** Greedy picks of one step: each sequence's next token id, chosen on the device (no logits download). */
export function cachedStepGreedyIds(model: LlamaModel, be: DecodeBackend, segments: (layer: number) => readonly KvSegment[], step: CachedStep): Int32Array {
  const t = uploadStepTensors(be, step);
  try {
    const ids = stepOutputTensor(model, be, segments, step, t, true);
    try {
      return be.downloadRaw(ids) as Int32Array;
    } finally {
      be.free(ids);
    }
  } finally {
    freeStepTensors(be, t);
  }
}

/**
 * Runs one step and returns the logits of each sequence's last new token, f32 [B, vocab] on the host.
 * `segments(layer)` gives the cache storage the step's slots and block tables refer to.
 */
export function cachedStepLogits(model: LlamaModel, be: DecodeBackend, segments: (layer: number) => readonly KvSegment[], step: CachedStep): Float32Array {
  const t = uploadStepTensors(be, step);
  try {
    const logits = stepLogitsTensor(model, be, segments, step, t);
    try {
      return be.download(logits);
    } finally {
      be.free(logits);
    }
  } finally {
    freeStepTensors(be, t);
  }
}
