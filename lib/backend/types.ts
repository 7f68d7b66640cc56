// The Backend interface: device buffers plus the ops of the Llama-family graph, each with its
// backward. The model graph (lib/model) is written once against this file; lib/backend/cpu is the
// executable spec and lib/backend/cuda implements the same contract on the GPU.
//
// Conventions for every op:
// - Row-major. Activations are [T, features] where T is the packed token count of a micro-batch
//   (several sequences laid end to end, no padding). Sequence boundaries come as cuSeqlens, an i32
//   tensor [B + 1] with cuSeqlens[0] = 0 and cuSeqlens[B] = T (the FlashAttention varlen layout).
// - Linear weights are [out, in] as in Hugging Face checkpoints: y = x · Wᵀ.
// - Ops never modify their inputs unless the name says so (`...InPlace`, `accumulate...`).
// - Ops allocate their outputs in the "activations" category unless a category is passed; the
//   caller frees what it no longer needs with `free` (the graph owns lifetimes, not the backend).
// - Gradients of trainable tensors (LoRA A/B, a trainable embedding) are ACCUMULATED (+=) into
//   caller-owned tensors, so gradient accumulation over micro-batches needs no extra buffers.
// - Float ops read f32/bf16/f16 inputs and compute with at least f32 accumulation; reductions
//   that decide accuracy (norms, softmax sums, losses, gradient norms) accumulate in f64 on CPU.

// The frozen weights and LoRA adapters the linear ops take (weight-types.ts).
import type { FrozenLinear, LoraAdapter, LoraGrads } from "./weight-types.js";
export type { DenseWeight, FrozenLinear, LoraAdapter, LoraGrads, Nf4Weight } from "./weight-types.js";

/** Element types a device buffer may hold. u8 carries NF4-packed weights and quantized absmax. */
export type DType = "f32" | "bf16" | "f16" | "u8" | "i32";

/** Memory categories; every allocation is tagged with one, and peaks are tracked per category. */
export type MemoryCategory = "base_weights" | "adapters" | "optimizer" | "activations" | "offload_host" | "kv_cache" | "workspace";

export const MEMORY_CATEGORIES: readonly MemoryCategory[] = [
  "base_weights", "adapters", "optimizer", "activations", "offload_host", "kv_cache", "workspace",
];

export const DTYPE_BYTES: Record<DType, number> = { f32: 4, bf16: 2, f16: 2, u8: 1, i32: 4 };

/**
 * An opaque buffer owned by a backend. Only its backend reads its contents. `offload_host`
 * tensors live in (pinned) host memory; every other category lives on the device.
 */
export interface Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly category: MemoryCategory;
  /** Bytes this buffer occupies (what the accounting counts). */
  readonly bytes: number;
  /** True after `free`; using a freed tensor is a programming error and backends throw. */
  readonly freed: boolean;
}

/** Host data accepted by `upload`: f32 as Float32Array, bf16/f16 as raw Uint16Array bits, u8, i32. */
export type HostArray = Float32Array | Uint16Array | Uint8Array | Int32Array;

/** Bytes per category: what is held now and the most held since the last `resetPeak`. */
export interface MemoryReport {
  current: Record<MemoryCategory, number>;
  peak: Record<MemoryCategory, number>;
  /** Peak of the sum over device categories (everything but offload_host). */
  peakDeviceTotal: number;
}

/** A copy in flight between device and host (CUDA: a copy stream plus an event). */
export interface PendingCopy {
  /** The destination, valid to use (by ops or downloads) once `done` resolves. */
  readonly tensor: Tensor;
  readonly done: Promise<void>;
}

/** Shapes for attention over packed sequences with grouped-query heads. */
export interface AttentionShape {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Softmax scale, normally 1/sqrt(headDim). */
  scale: number;
}

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count used for bias correction. */
  step: number;
}

/** What the memory planner must know of a backend to mirror its allocations (a Backend has them). */
export type BackendTraits = Pick<Backend, "computeDtype" | "offloadMinBytes" | "kernelsReadHostMemory" | "attentionDqScratch">;

/** The CPU reference backend's traits: f32 compute, always offload, host tensors not read in place. */
export const CPU_TRAITS: BackendTraits = { computeDtype: "f32" };

export interface Backend {
  /** "cpu", "cuda", ... */
  readonly name: string;
  /** The float dtype activations are computed in on this backend. */
  readonly computeDtype: "f32" | "bf16" | "f16";
  /**
   * Micro-batches whose layer input (tokens × hidden × compute dtype) is smaller than this many
   * bytes do not offload under `unsloth` checkpointing: they keep layer inputs on the device as
   * `true` does, since a copy's fixed cost outweighs the bytes saved (DESIGN.md). Absent means 0
   * (always offload; the CPU backend, so tests exercise the path).
   */
  readonly offloadMinBytes?: number;
  /**
   * True when ops can read offload_host tensors in place (CUDA: pinned host memory is mapped into
   * the device's address space), so a frozen table only ever gathered by row may live in host RAM.
   * Absent means false.
   */
  readonly kernelsReadHostMemory?: boolean;
  /**
   * True when attention backward holds an fp32 dQ accumulator ([T, heads·headDim] floats) as
   * workspace while it runs (CUDA's single-pass kernel adds each key block's share atomically).
   */
  readonly attentionDqScratch?: boolean;

  // ---- buffers ---------------------------------------------------------------------------
  /** A new buffer of zeros. */
  zeros(shape: readonly number[], dtype: DType, category: MemoryCategory): Tensor;
  /** Host → device. `data` length must equal the element count (bf16/f16 as raw bits). */
  upload(data: HostArray, shape: readonly number[], dtype: DType, category: MemoryCategory): Tensor;
  /** Device → host as f32 (float dtypes), or the raw array for u8/i32. Synchronous. */
  download(t: Tensor): Float32Array;
  downloadRaw(t: Tensor): HostArray;
  free(t: Tensor): void;
  /** A copy with the same shape and dtype, possibly in another category. */
  clone(t: Tensor, category?: MemoryCategory): Tensor;
  /**
   * The same storage under another shape (same element count). The view shares the storage's
   * accounting: freeing either the view or the original frees the storage once.
   */
  reshape(t: Tensor, shape: readonly number[]): Tensor;
  /**
   * Start a device → host copy into a new offload_host buffer (CUDA: pinned memory, copy stream).
   * The copy reads `t` as written by every op issued before this call; ops issued after it may run
   * while it is in flight (they only read `t`). The caller frees `t` only after `done`.
   */
  copyToHostAsync(t: Tensor): PendingCopy;
  /**
   * Start a host → device copy of an offload_host buffer into a new buffer of `category` (the
   * graph prefetches the next layer's input this way while the current layer computes). Ops may
   * use the destination once `done` has resolved.
   */
  copyToDeviceAsync(t: Tensor, category: MemoryCategory): PendingCopy;
  /** Block until every op issued so far has finished (CPU: nothing to do). */
  synchronize(): Promise<void>;

  // ---- memory accounting -----------------------------------------------------------------
  memory(): MemoryReport;
  resetPeak(): void;

  // ---- elementwise -----------------------------------------------------------------------
  /** a + b, same shapes. */
  add(a: Tensor, b: Tensor): Tensor;
  /** dst += alpha * src (same element count). */
  addInPlace(dst: Tensor, src: Tensor, alpha?: number): void;
  /** t *= s. */
  scaleInPlace(t: Tensor, s: number): void;
  /** Set every element to zero. */
  zeroInPlace(t: Tensor): void;
  /** dst ← src (same element count and dtype). */
  copyInto(dst: Tensor, src: Tensor): void;
  /** Σ over tensors of Σ x² (f64 on CPU), synchronous; used for gradient-norm clipping. */
  sumOfSquares(ts: readonly Tensor[]): number;

  // ---- embedding -------------------------------------------------------------------------
  /** y[t, :] = table[ids[t], :]. table [V, H], ids i32 [T] → y [T, H]. */
  embedding(table: Tensor, ids: Tensor): Tensor;
  /** dTable[ids[t], :] += dy[t, :] (accumulates into a trainable table's gradient). */
  embeddingBackward(dy: Tensor, ids: Tensor, dTable: Tensor): void;

  // ---- RMSNorm (Zhang & Sennrich 2019) ---------------------------------------------------
  /**
   * x [T, H] (or [T*heads, headDim] for Qwen3's per-head q/k norm), w [H].
   * rstd[t] = 1 / sqrt(mean_j x[t,j]² + eps);  y[t,j] = x[t,j] * rstd[t] * w[j].
   * Returns y and rstd f32 [T] (kept for backward).
   */
  rmsnorm(x: Tensor, w: Tensor, eps: number): { y: Tensor; rstd: Tensor };
  /**
   * Weights are frozen, so only dx:
   *   dx[t,j] = rstd[t] * (g[j] - x̂[t,j] * mean_k(g[k] x̂[t,k])),  g = dy * w,  x̂ = x * rstd.
   */
  rmsnormBackward(dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor): Tensor;

  // ---- RoPE (Su et al. 2021, HF "rotate_half" layout) ------------------------------------
  /**
   * x [T, nHeads * headDim], positions i32 [T], invFreq f32 [headDim/2] (llama3 scaling already
   * folded in by the caller, lib/model/rope-frequencies.ts). For each token t, head h, i < D/2:
   *   θ = f32(positions[t] * invFreq[i]),  c = cos θ,  s = sin θ,
   *   y[i]       = x[i] c − x[i + D/2] s
   *   y[i + D/2] = x[i + D/2] c + x[i] s
   */
  rope(x: Tensor, positions: Tensor, invFreq: Tensor, nHeads: number, headDim: number): Tensor;
  /** The inverse rotation (θ → −θ) applied to dy: the exact transpose of the forward. */
  ropeBackward(dy: Tensor, positions: Tensor, invFreq: Tensor, nHeads: number, headDim: number): Tensor;

  // ---- causal attention, GQA, packed sequences ------------------------------------------
  /**
   * q [T, Hq*D], k and v [T, Hkv*D], cuSeqlens i32 [B+1]. Query head h reads kv head
   * h / (Hq/Hkv). Token t of sequence b attends to tokens s of the same sequence with s ≤ t:
   *   P = softmax(scale · q kᵀ) over those s,  o = P v.
   * Returns o [T, Hq*D] and lse f32 [Hq, T] (log-sum-exp of the scaled scores, for backward).
   * Implementations must not hold more than one sequence's scores per head at a time.
   */
  attention(q: Tensor, k: Tensor, v: Tensor, cuSeqlens: Tensor, shape: AttentionShape): { o: Tensor; lse: Tensor };
  /**
   * FlashAttention-2 style backward (P recomputed from lse):
   *   dP = dO vᵀ,  Δ_t = Σ_d dO[t,d] o[t,d],  dS = P ⊙ (dP − Δ),
   *   dq = scale · dS k,  dk = scale · dSᵀ q (summed over the query heads of a kv head),
   *   dv = Pᵀ dO (summed likewise).
   */
  attentionBackward(
    dO: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    lse: Tensor,
    cuSeqlens: Tensor,
    shape: AttentionShape,
  ): { dq: Tensor; dk: Tensor; dv: Tensor };

  // ---- SwiGLU (Shazeer 2020) -------------------------------------------------------------
  /** gate, up [T, I] → h = silu(gate) * up,  silu(g) = g σ(g). */
  swiglu(gate: Tensor, up: Tensor): Tensor;
  /** dGate = dh · up · σ(g)(1 + g(1 − σ(g))),  dUp = dh · silu(g). */
  swigluBackward(dh: Tensor, gate: Tensor, up: Tensor): { dGate: Tensor; dUp: Tensor };

  // ---- linear: frozen base (NF4 or dense) + optional LoRA ------------------------------
  /**
   * x [T, in] → y [T, out]:  y = x · Wᵀ (+ bias) (+ scale · (x · aᵀ) · bᵀ).
   * W is dequantized as needed; a backend may keep the dequantized W in a reused "workspace"
   * buffer (accounted there) between this call and the matching backward.
   */
  linear(x: Tensor, base: FrozenLinear, lora: LoraAdapter | null): Tensor;
  /**
   * The base (and bias) are frozen: only dx and the LoRA gradients.
   *   xa = x · aᵀ [T, r],  dB += scale · dyᵀ · xa,  dA += scale · (dy · b)ᵀ · x,
   *   dx = dy · W + scale · (dy · b) · a.
   * Returns dx, or null when `needDx` is false (the first layer's input needs none).
   */
  linearBackward(
    dy: Tensor,
    x: Tensor,
    base: FrozenLinear,
    lora: LoraAdapter | null,
    grads: LoraGrads | null,
    needDx: boolean,
  ): Tensor | null;
  /**
   * Several linears over one x (a layer's q, k, v or gate, up): y_i = linear(x, bases[i], loras[i]),
   * computed in one pass where the backend can (CUDA: x·[a_0; a_1; ...]ᵀ as one GEMM for all the
   * adapters, or one batch-1 NF4 launch for up to three weights). Optional: without it the graph
   * calls `linear` once per base, which is its definition.
   */
  linearGroup?(x: Tensor, bases: readonly FrozenLinear[], loras: readonly (LoraAdapter | null)[]): Tensor[];
  /**
   * The backward of `linearGroup`: Σ_i linearBackward(dys[i], x, bases[i], loras[i], grads[i], needDx),
   *   dx = Σ_i (dy_i · W_i + scale_i · (dy_i · b_i) · a_i),
   * with every adapter's dA_i, dB_i accumulated exactly as `linearBackward` does (null grads: a frozen
   * adapter). Returns the summed dx, or null when `needDx` is false. Optional, like linearGroup.
   */
  linearGroupBackward?(
    dys: readonly Tensor[],
    x: Tensor,
    bases: readonly FrozenLinear[],
    loras: readonly (LoraAdapter | null)[],
    grads: readonly (LoraGrads | null)[],
    needDx: boolean,
  ): Tensor | null;
  /** Drop any cached dequantized weights (call at the end of a step or when memory is tight). */
  releaseWorkspace(): void;

  // ---- cross-entropy fused with the LM head ---------------------------------------------
  /**
   * h [T, H], head [V, H] (f32/bf16/f16, tied embedding or lm_head), labels i32 [T] with −100 =
   * ignored. Logits are formed `chunkTokens` rows at a time, never [T, V] at once:
   *   lse[t] = log Σ_v exp(h[t] · head[v]),  loss[t] = lse[t] − h[t] · head[labels[t]].
   * Returns lossSum f32 [1] (Σ over non-ignored t; the caller counts non-ignored tokens from the
   * labels it uploaded) and lse f32 [T] for backward (rows with ignored labels are unspecified).
   * The chunk's logits are scratch accounted as "workspace" while the op runs.
   */
  crossEntropyLmHead(
    h: Tensor,
    head: Tensor,
    labels: Tensor,
    chunkTokens: number,
  ): { lossSum: Tensor; lse: Tensor };
  /**
   * dh[t] = gradScale · Σ_v (softmax(logits[t])[v] − [v = labels[t]]) · head[v]  (0 for ignored t),
   * where gradScale = d(total loss)/d(lossSum), e.g. 1/count for a mean.
   */
  crossEntropyLmHeadBackward(
    h: Tensor,
    head: Tensor,
    labels: Tensor,
    lse: Tensor,
    gradScale: number,
    chunkTokens: number,
  ): Tensor;
  /**
   * Training's form of the two above: lossSum as crossEntropyLmHead's and dh as its backward's,
   * each chunk's logits formed once (no lse kept between them).
   */
  crossEntropyLmHeadAndGrad(
    h: Tensor,
    head: Tensor,
    labels: Tensor,
    gradScale: number,
    chunkTokens: number,
  ): { lossSum: Tensor; dh: Tensor };
  /** Logits of the given rows of h (used by decoding): h [T, H], head [V, H] → f32 [T, V]. */
  lmHeadLogits(h: Tensor, head: Tensor): Tensor;

  // ---- optimizer -------------------------------------------------------------------------
  /**
   * AdamW (Loshchilov & Hutter 2019), multi-tensor, in place, fp32 params/grads/state:
   *   m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;
   *   p ← p − lr · wd · p  (decoupled decay);
   *   p ← p − lr · (m / (1−β1^step)) / (sqrt(v / (1−β2^step)) + eps)      (PyTorch's AdamW).
   */
  adamw(params: readonly Tensor[], grads: readonly Tensor[], m: readonly Tensor[], v: readonly Tensor[], h: AdamWHyper): void;
}

/** An error a user can cause by asking for more memory than the device has. */
export class OutOfMemoryError extends Error {
  constructor(
    readonly category: MemoryCategory,
    readonly requestedBytes: number,
    readonly freeBytes: number,
    advice: string,
  ) {
    super(
      `out of memory: asked for ${formatBytes(requestedBytes)} of ${category} with ${formatBytes(freeBytes)} free. ${advice}`,
    );
    this.name = "OutOfMemoryError";
  }
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export { asDecodeBackend, type DecodeBackend, type KvBlockView, type KvSegment, type RecordedStep } from "./decode-types.js";
