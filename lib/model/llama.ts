// The Llama-family causal LM over the Backend: embedding → decoder layers → final norm → LM head
// with the chunked cross-entropy. Forward and backward are written once here; the checkpoint
// policy decides what each layer keeps between them.
import { DTYPE_BYTES, type AttentionShape, type Backend, type PendingCopy, type Tensor } from "../backend/types.js";
import type { ModelConfig } from "../formats/hf-config.js";
import { countTargets, type PackedBatch } from "./batch.js";
import type { CheckpointPolicy } from "./checkpoint-policy.js";
import { layerBackward, layerForward, type AttentionOutputs, type LayerActivations, type LayerContext } from "./decoder-layer.js";
import { createLora, freeLora, type LoraOptions, type LoraState } from "./lora.js";
import { ropeInverseFrequencies } from "./rope-frequencies.js";
import { uploadInComputeDtype } from "./upload-weights.js";
import { freeLlamaWeights, type LlamaWeights } from "./weights.js";

/** Tokens per chunk of the fused LM-head cross-entropy: bounds the logits held to chunk × vocab. */
export const CROSS_ENTROPY_CHUNK_TOKENS = 256;

interface BatchTensors {
  ids: Tensor;
  labels: Tensor;
  positions: Tensor;
  cuSeqlens: Tensor;
}

/** How a training step runs, beyond the checkpoint policy. */
export interface StepOptions {
  /**
   * With `unsloth` checkpointing, also copy each layer's attention output and log-sum-exp to host
   * RAM so the recompute skips the attention forward (torchtitan's selective checkpointing saves
   * the SDPA outputs the same way): twice the offloaded bytes, no attention forward in backward.
   */
  keepAttention?: boolean;
}

export interface StepResult {
  /** Σ of per-token losses over target tokens. */
  lossSum: number;
  /** Target tokens (labels ≠ −100). */
  targets: number;
}

export class LlamaModel {
  lora: LoraState | null = null;
  readonly invFreq: Tensor;
  readonly attention: AttentionShape;

  constructor(readonly be: Backend, readonly config: ModelConfig, readonly weights: LlamaWeights) {
    this.invFreq = be.upload(ropeInverseFrequencies(config.headDim, config.ropeTheta, config.ropeScaling), [config.headDim / 2], "f32", "base_weights");
    this.attention = { numHeads: config.numHeads, numKvHeads: config.numKvHeads, headDim: config.headDim, scale: 1 / Math.sqrt(config.headDim) };
  }

  attachLora(options: LoraOptions): LoraState {
    if (this.lora) freeLora(this.be, this.lora);
    this.lora = createLora(this.be, this.config, options);
    return this.lora;
  }

  private upload(b: PackedBatch): BatchTensors {
    const be = this.be;
    const T = b.ids.length;
    return {
      ids: be.upload(b.ids, [T], "i32", "activations"),
      labels: be.upload(b.labels, [T], "i32", "activations"),
      positions: be.upload(b.positions, [T], "i32", "activations"),
      cuSeqlens: be.upload(b.cuSeqlens, [b.cuSeqlens.length], "i32", "activations"),
    };
  }

  private freeBatch(t: BatchTensors): void {
    for (const x of [t.ids, t.labels, t.positions, t.cuSeqlens]) this.be.free(x);
  }

  private context(layer: number, t: BatchTensors): LayerContext {
    return {
      be: this.be, config: this.config, weights: this.weights.layers[layer], lora: this.lora?.byLayer[layer] ?? null,
      invFreq: this.invFreq, positions: t.positions, cuSeqlens: t.cuSeqlens, attention: this.attention,
    };
  }

  /** Final hidden states (after the last norm is NOT applied) for a batch, without keeping activations. */
  private runLayers(t: BatchTensors): Tensor {
    let x = this.be.embedding(this.weights.embed, t.ids);
    for (let l = 0; l < this.config.numLayers; l++) {
      const { out } = layerForward(this.context(l, t), x, { keep: false });
      this.be.free(x);
      x = out;
    }
    return x;
  }

  /** Loss of a batch without gradients. */
  evaluate(batch: PackedBatch): StepResult {
    const be = this.be, t = this.upload(batch);
    const x = this.runLayers(t);
    const { y, rstd } = be.rmsnorm(x, this.weights.finalNorm, this.config.rmsNormEps);
    const { lossSum, lse } = be.crossEntropyLmHead(y, this.weights.lmHead, t.labels, CROSS_ENTROPY_CHUNK_TOKENS);
    const result = { lossSum: be.download(lossSum)[0], targets: countTargets(batch.labels) };
    for (const z of [x, y, rstd, lossSum, lse]) be.free(z);
    this.freeBatch(t);
    return result;
  }

  /** Logits [vocab] of the last position of one sequence (decoding without a KV cache). */
  lastTokenLogits(ids: Int32Array): Float32Array {
    const be = this.be, h = this.config.hiddenSize, T = ids.length;
    const batch = { ids, labels: new Int32Array(T), positions: Int32Array.from(ids, (_, i) => i), cuSeqlens: Int32Array.from([0, T]) };
    const t = this.upload(batch);
    const x = this.runLayers(t);
    // Only the last row goes through the final norm and the LM head.
    const last = uploadInComputeDtype(be, be.download(x).subarray((T - 1) * h, T * h), [1, h], "activations");
    const { y, rstd } = be.rmsnorm(last, this.weights.finalNorm, this.config.rmsNormEps);
    const logits = be.lmHeadLogits(y, this.weights.lmHead);
    const out = be.download(logits);
    for (const z of [x, last, y, rstd, logits]) be.free(z);
    this.freeBatch(t);
    return out;
  }

  /**
   * Forward and backward of one micro-batch; LoRA gradients are accumulated (+=) scaled by
   * `gradScale` (d total loss / d Σ token losses, e.g. 1 / targets of the whole accumulated step).
   */
  async forwardBackward(batch: PackedBatch, policy: CheckpointPolicy, gradScale: number, opts: StepOptions = {}): Promise<StepResult> {
    const steps = this.forwardBackwardSteps(batch, policy, gradScale, opts);
    for (let r = steps.next(); ; r = steps.next()) {
      if (r.done) return r.value;
      await r.value.done;
    }
  }

  /**
   * The same computation for backends whose host copies complete when issued (CPU, the memory
   * planner): runs without yielding to the event loop.
   */
  forwardBackwardSync(batch: PackedBatch, policy: CheckpointPolicy, gradScale: number, opts: StepOptions = {}): StepResult {
    const steps = this.forwardBackwardSteps(batch, policy, gradScale, opts);
    for (let r = steps.next(); ; r = steps.next()) if (r.done) return r.value;
  }

  /** The step as a generator that yields each host copy it must wait for. */
  private *forwardBackwardSteps(batch: PackedBatch, policy: CheckpointPolicy, gradScale: number, opts: StepOptions): Generator<PendingCopy, StepResult, void> {
    const be = this.be, L = this.config.numLayers, t = this.upload(batch);
    const layerInputBytes = batch.ids.length * this.config.hiddenSize * DTYPE_BYTES[be.computeDtype];
    if (policy === "unsloth" && layerInputBytes < (be.offloadMinBytes ?? 0)) policy = "true";
    const keepAttention = policy === "unsloth" && opts.keepAttention === true;
    // inputs[l]: layer l's input, on device (off/true) or in the host store (unsloth); saved[l]: its
    // attention outputs in the host store when kept, so the recompute skips the attention forward.
    const inputs: Tensor[] = [];
    const saved: (AttentionOutputs | null)[] = [];
    const kept: (LayerActivations | null)[] = [];
    let x = be.embedding(this.weights.embed, t.ids);
    // unsloth: the host waits for the previous layer's copies, not this one's, so it stays a layer
    // ahead of the GPU and the kernel queue never drains behind a copy (one more input on device).
    let copying: { copies: PendingCopy[]; sources: Tensor[] } | null = null;
    for (let l = 0; l < L; l++) {
      const offload = policy === "unsloth" ? be.copyToHostAsync(x) : null;
      const { out, acts, attention } = layerForward(this.context(l, t), x, { keep: policy === "off", keepAttention });
      kept.push(acts);
      const copies = offload ? [offload] : [], sources = offload ? [x] : [];
      if (attention) {
        const o = be.copyToHostAsync(attention.o), lse = be.copyToHostAsync(attention.lse);
        copies.push(o, lse);
        sources.push(attention.o, attention.lse);
        saved.push({ o: o.tensor, lse: lse.tensor });
      } else saved.push(null);
      if (copying) {
        for (const c of copying.copies) yield c;
        for (const z of copying.sources) be.free(z);
      }
      copying = offload ? { copies, sources } : null;
      inputs.push(offload ? offload.tensor : x);
      x = out;
    }
    if (copying) {
      for (const c of copying.copies) yield c;
      for (const z of copying.sources) be.free(z);
    }
    const { y, rstd } = be.rmsnorm(x, this.weights.finalNorm, this.config.rmsNormEps);
    // Loss and its gradient in one pass over the LM head: each chunk's logits are formed once.
    const { lossSum, dh: dy } = be.crossEntropyLmHeadAndGrad(y, this.weights.lmHead, t.labels, gradScale, CROSS_ENTROPY_CHUNK_TOKENS);
    let dx: Tensor | null = be.rmsnormBackward(dy, x, this.weights.finalNorm, rstd);
    for (const z of [dy, y, rstd, x]) be.free(z);

    // unsloth: layer l − 1's input (and attention outputs) come back while layer l is recomputed.
    const fetch = (l: number) => {
      const s = saved[l];
      return {
        x: be.copyToDeviceAsync(inputs[l], "activations"),
        attention: s ? { o: be.copyToDeviceAsync(s.o, "activations"), lse: be.copyToDeviceAsync(s.lse, "activations") } : null,
      };
    };
    let prefetch = policy === "unsloth" && L > 0 ? fetch(L - 1) : null;
    for (let l = L - 1; l >= 0; l--) {
      let input: Tensor;
      let reuse: AttentionOutputs | undefined;
      if (prefetch) {
        yield prefetch.x;
        input = prefetch.x.tensor;
        be.free(inputs[l]);
        const a = prefetch.attention, s = saved[l];
        if (a && s) {
          yield a.o;
          yield a.lse;
          reuse = { o: a.o.tensor, lse: a.lse.tensor };
          be.free(s.o);
          be.free(s.lse);
        }
        prefetch = l > 0 ? fetch(l - 1) : null;
      } else input = inputs[l];
      const ctx = this.context(l, t);
      let acts = kept[l];
      if (!acts) {
        const re = layerForward(ctx, input, { keep: true, reuse });
        be.free(re.out);
        acts = re.acts!;
      }
      const dIn: Tensor | null = layerBackward(ctx, input, acts, dx!, l > 0);
      be.free(dx!);
      be.free(input);
      dx = dIn;
    }
    if (dx) be.free(dx);
    // Read the loss after the backward is queued: reading it earlier would make the host wait for
    // the forward with the device's queue empty behind it.
    const result = { lossSum: be.download(lossSum)[0], targets: countTargets(batch.labels) };
    be.free(lossSum);
    this.freeBatch(t);
    be.releaseWorkspace();
    return result;
  }

  free(): void {
    if (this.lora) freeLora(this.be, this.lora);
    this.lora = null;
    freeLlamaWeights(this.be, this.weights);
    this.be.free(this.invFreq);
  }
}
