// The engine's real allocation plan: the training step's own graph (lib/model/llama.ts) run on a
// backend that allocates and frees exactly as the reference backend does but computes nothing, so
// every category's peak comes from the code that will run, not from a formula. The estimator
// (estimator.ts, `plan` option) uses these numbers in place of its own where given.
import {
  CPU_TRAITS, DTYPE_BYTES, elementCount, MEMORY_CATEGORIES, type AttentionShape, type Backend, type BackendTraits, type DType, type FrozenLinear, type HostArray,
  type MemoryCategory, type MemoryReport, type Nf4Weight, type PendingCopy, type Tensor,
} from "../backend/types.js";
import type { ModelConfig } from "../formats/hf-config.js";
import { packSamples } from "../model/batch.js";
import type { CheckpointPolicy } from "../model/checkpoint-policy.js";
import { LlamaModel } from "../model/llama.js";
import { embeddingCategory } from "../model/upload-weights.js";
import { loraParams } from "../model/lora.js";
import { hasBias, LINEAR_NAMES, linearShape, type LayerWeights, type LinearName, type LlamaWeights } from "../model/weights.js";
import { AdamWState } from "../train/optimizer.js";
import { MemoryAccounting } from "./accounting.js";
import { StoredTensor } from "../backend/stored-tensor.js";
import type { ModelShape } from "./estimator-terms.js";

class PlanTensor extends StoredTensor<PlanTensor> {
  constructor(shape: readonly number[], dtype: DType, category: MemoryCategory, base: PlanTensor | null = null) {
    super(shape, dtype, category, base);
  }
}

/** Allocates like lib/backend/cpu (outputs in the compute dtype, f32 statistics) without computing. */
export class PlanningBackend implements Backend {
  readonly name = "plan";
  readonly accounting = new MemoryAccounting();
  private workspace: { base: FrozenLinear; t: PlanTensor } | null = null;

  readonly computeDtype: "f32" | "bf16" | "f16";
  readonly offloadMinBytes: number;
  readonly kernelsReadHostMemory: boolean;
  readonly attentionDqScratch: boolean;

  constructor(traits: BackendTraits = CPU_TRAITS) {
    this.computeDtype = traits.computeDtype;
    this.offloadMinBytes = traits.offloadMinBytes ?? 0;
    this.kernelsReadHostMemory = traits.kernelsReadHostMemory ?? false;
    this.attentionDqScratch = traits.attentionDqScratch ?? false;
  }

  private make(shape: readonly number[], dtype: DType, category: MemoryCategory): PlanTensor {
    const t = new PlanTensor([...shape], dtype, category);
    this.accounting.allocate(category, t.bytes);
    return t;
  }
  private out(shape: readonly number[]): PlanTensor { return this.make(shape, this.computeDtype, "activations"); }
  private f32(shape: readonly number[]): PlanTensor { return this.make(shape, "f32", "activations"); }
  /** Scratch an op holds while it runs (the reference backend's chunked cross-entropy logits). */
  private scratch(n: number): void { this.free(this.make([n], "f32", "workspace")); }

  zeros(shape: readonly number[], dtype: DType, category: MemoryCategory): Tensor { return this.make(shape, dtype, category); }
  upload(_d: HostArray, shape: readonly number[], dtype: DType, category: MemoryCategory): Tensor { return this.make(shape, dtype, category); }
  download(t: Tensor): Float32Array { return new Float32Array(elementCount(t.shape)); }
  downloadRaw(t: Tensor): HostArray { return new Uint8Array(t.bytes); }
  free(t: Tensor): void {
    const p = (t as PlanTensor).owner;
    if (p.freed) throw new Error("tsloth: planning backend: double free");
    p.markFreed();
    if (this.workspace?.t === p) this.workspace = null;
    this.accounting.release(p.category, p.bytes);
  }
  clone(t: Tensor, category?: MemoryCategory): Tensor { return this.make(t.shape, t.dtype, category ?? t.category); }
  reshape(t: Tensor, shape: readonly number[]): Tensor { return new PlanTensor([...shape], t.dtype, t.category, (t as PlanTensor).owner); }
  copyToHostAsync(t: Tensor): PendingCopy { return { tensor: this.clone(t, "offload_host"), done: Promise.resolve() }; }
  copyToDeviceAsync(t: Tensor, category: MemoryCategory): PendingCopy { return { tensor: this.clone(t, category), done: Promise.resolve() }; }
  async synchronize(): Promise<void> {}
  memory(): MemoryReport { return this.accounting.report(); }
  resetPeak(): void { this.accounting.resetPeak(); }

  add(a: Tensor): Tensor { return this.out(a.shape); }
  addInPlace(): void {}
  scaleInPlace(): void {}
  zeroInPlace(): void {}
  copyInto(): void {}
  sumOfSquares(): number { return 0; }
  embedding(table: Tensor, ids: Tensor): Tensor { return this.out([ids.shape[0], table.shape[1]]); }
  embeddingBackward(): void {}
  rmsnorm(x: Tensor, w: Tensor) { return { y: this.out(x.shape), rstd: this.f32([elementCount(x.shape) / w.shape[0]]) }; }
  rmsnormBackward(_dy: Tensor, x: Tensor): Tensor { return this.out(x.shape); }
  rope(x: Tensor): Tensor { return this.out(x.shape); }
  ropeBackward(dy: Tensor): Tensor { return this.out(dy.shape); }
  attention(q: Tensor, _k: Tensor, _v: Tensor, _cu: Tensor, s: AttentionShape) {
    return { o: this.out(q.shape), lse: this.f32([s.numHeads, q.shape[0]]) };
  }
  attentionBackward(_dO: Tensor, q: Tensor, k: Tensor, v: Tensor) {
    const grads = { dq: this.out(q.shape), dk: this.out(k.shape), dv: this.out(v.shape) };
    if (this.attentionDqScratch) this.scratch(elementCount(q.shape));
    return grads;
  }
  swiglu(gate: Tensor): Tensor { return this.out(gate.shape); }
  swigluBackward(_dh: Tensor, gate: Tensor, up: Tensor) { return { dGate: this.out(gate.shape), dUp: this.out(up.shape) }; }
  private dequantWorkspace(base: FrozenLinear): void {
    const w = base.weight;
    if (w.kind === "dense" || this.workspace?.base === base) return;
    const n = w.outFeatures * w.inFeatures;
    if (!this.workspace || this.workspace.t.bytes < n * DTYPE_BYTES[this.computeDtype]) {
      this.releaseWorkspace();
      this.workspace = { base, t: this.make([n], this.computeDtype, "workspace") };
    }
    this.workspace.base = base;
  }
  linear(x: Tensor, base: FrozenLinear): Tensor {
    this.dequantWorkspace(base);
    return this.out([elementCount(x.shape) / base.weight.inFeatures, base.weight.outFeatures]);
  }
  linearBackward(_dy: Tensor, x: Tensor, base: FrozenLinear, _l: unknown, _g: unknown, needDx: boolean): Tensor | null {
    this.dequantWorkspace(base);
    return needDx ? this.out(x.shape) : null;
  }
  releaseWorkspace(): void {
    if (this.workspace) this.free(this.workspace.t);
    this.workspace = null;
  }
  crossEntropyLmHead(h: Tensor, head: Tensor, _labels: Tensor, chunkTokens: number) {
    const lse = this.f32([h.shape[0]]);
    this.scratch(Math.min(chunkTokens, h.shape[0]) * head.shape[0]);
    return { lossSum: this.f32([1]), lse };
  }
  crossEntropyLmHeadBackward(h: Tensor, head: Tensor, _l: Tensor, _lse: Tensor, _s: number, chunkTokens: number): Tensor {
    const dh = this.out(h.shape);
    this.scratch(Math.min(chunkTokens, h.shape[0]) * head.shape[0]);
    return dh;
  }
  /** As the reference backend allocates it: the forward's lse is held until the gradient is made. */
  crossEntropyLmHeadAndGrad(h: Tensor, head: Tensor, labels: Tensor, s: number, chunkTokens: number): { lossSum: Tensor; dh: Tensor } {
    const { lossSum, lse } = this.crossEntropyLmHead(h, head, labels, chunkTokens);
    const dh = this.crossEntropyLmHeadBackward(h, head, labels, lse, s, chunkTokens);
    this.free(lse);
    return { lossSum, dh };
  }
  lmHeadLogits(h: Tensor, head: Tensor): Tensor { return this.f32([h.shape[0], head.shape[0]]); }
  adamw(): void {}
}

/** The frozen base with the shapes and dtypes loading gives it (NF4 with double-quantized absmax). */
export function plannedWeights(be: Backend, config: ModelConfig): LlamaWeights {
  const { hiddenSize: h, vocabSize: v, headDim: d } = config;
  const dt = be.computeDtype;
  const nf4 = (out: number, inF: number): Nf4Weight => {
    const n = out * inF, blocks = Math.ceil(n / 64);
    return {
      kind: "nf4", outFeatures: out, inFeatures: inF, blocksize: 64,
      packed: be.zeros([Math.ceil(n / 2)], "u8", "base_weights"), absmax: be.zeros([blocks], "u8", "base_weights"),
      nested: { absmax: be.zeros([Math.ceil(blocks / 256)], "f32", "base_weights"), code: be.zeros([256], "f32", "base_weights"), blocksize: 256, offset: 0 },
    };
  };
  const embed = be.zeros([v, h], dt, embeddingCategory(be, config));
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const linears = {} as Record<LinearName, FrozenLinear>;
    for (const name of LINEAR_NAMES) {
      const [out, inF] = linearShape(config, name);
      linears[name] = { weight: nf4(out, inF), bias: hasBias(config, name) ? be.zeros([out], dt, "base_weights") : null };
    }
    layers.push({
      inputNorm: be.zeros([h], dt, "base_weights"), postAttentionNorm: be.zeros([h], dt, "base_weights"),
      qNorm: config.qkNorm ? be.zeros([d], dt, "base_weights") : null, kNorm: config.qkNorm ? be.zeros([d], dt, "base_weights") : null, linears,
    });
  }
  const finalNorm = be.zeros([h], dt, "base_weights");
  return { embed, layers, finalNorm, lmHead: config.tieWordEmbeddings ? embed : be.zeros([v, h], dt, "base_weights") };
}

export interface PlanSettings {
  /** Sequences per micro-batch and tokens per sequence (every token a loss target: the worst case). */
  batch: number;
  seq: number;
  r: number;
  targets: readonly string[];
  checkpoint: CheckpointPolicy;
  /** unsloth: also keep attention outputs in host RAM (LlamaModel StepOptions.keepAttention). */
  keepAttention?: boolean;
}

/** Peak bytes by category of one training step (base, adapters + grads, AdamW state, activations, host, workspace). */
export function planTrainingStep(config: ModelConfig, s: PlanSettings, traits: BackendTraits = CPU_TRAITS): Record<MemoryCategory, number> {
  const be = new PlanningBackend(traits);
  const model = new LlamaModel(be, config, plannedWeights(be, config));
  model.attachLora({ r: s.r, targets: s.targets });
  const { params, grads } = loraParams(model.lora!);
  new AdamWState(be, params, grads);
  const batch = packSamples(Array.from({ length: s.batch }, () => ({ ids: new Array<number>(s.seq).fill(0) })));
  model.forwardBackwardSync(batch, s.checkpoint, 1, { keepAttention: s.keepAttention });
  const peak = be.memory().peak;
  const out = {} as Record<MemoryCategory, number>;
  for (const c of MEMORY_CATEGORIES) out[c] = peak[c];
  return out;
}

/** The fields of a config.json the plan needs: the estimator's ModelShape. */
export type PlanModelShape = ModelShape;

function configOf(m: PlanModelShape): ModelConfig {
  return {
    ...m, family: m.qkNorm ? "qwen3" : m.attentionBias ? "qwen2" : "llama", modelType: "llama", rmsNormEps: 1e-5, ropeTheta: 10000,
    ropeScaling: null, maxPositionEmbeddings: 1 << 20, attentionBias: m.attentionBias ?? false, outputBias: false, qkNorm: m.qkNorm ?? false,
    slidingWindow: null, torchDtype: "bfloat16", eosTokenIds: [], raw: {},
  };
}

/**
 * The `plan` option of estimatePeakMemory (estimator.ts): exact peaks of base weights, adapters,
 * optimizer, activations, host offload and workspace for the settings, on a backend with these
 * traits (CUDA_TRAITS for the GPU: bf16, the offload threshold, the untied embedding in host RAM;
 * CPU_TRAITS for the f32 reference backend).
 */
export function engineAllocationPlan(traits: BackendTraits) {
  return (shape: PlanModelShape, s: PlanSettings): Record<string, number> =>
    planTrainingStep(configOf(shape), s, traits);
}
