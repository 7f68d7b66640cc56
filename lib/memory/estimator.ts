// estimatePeakMemory: predicted peak memory by category for 4-bit LoRA training, from the model's
// config alone (nothing loaded), and whether it fits a GPU; when it does not, the nearest
// settings that do (estimator-fit.ts). The terms and their sources are in estimator-terms.ts.
import {
  ADAMW_BYTES_PER_PARAM, ADAPTER_BYTES_PER_PARAM, CE_CHUNK_TOKENS, type CheckpointMode, CUBLAS_WORKSPACE_BYTES,
  CUDA_OVERHEAD_BYTES, layerBackwardBytesPerToken, layerKeptBytesPerToken, linearShapes, LORA_TARGETS, type LoraTarget,
  type ModelShape, NF4_BYTES_PER_PARAM, NF4_BYTES_PER_TENSOR,
} from "./estimator-terms.js";
import { CUDA_TRAITS } from "../backend/cuda/traits.js";
import { CPU_TRAITS } from "../backend/types.js";
import { embeddingCategory } from "../model/upload-weights.js";
import { suggestFittingSettings, type FitSuggestion } from "./estimator-fit.js";

export type { CheckpointMode, LoraTarget, ModelShape } from "./estimator-terms.js";

export interface EstimateOptions {
  batch: number;
  seq: number;
  r: number;
  /** LoRA targets, short ("q") or HF ("q_proj") names; default all seven. */
  targets?: readonly string[];
  /** Gradient checkpointing: "off" | "true" | "unsloth" (booleans mean off / true). */
  checkpoint: CheckpointMode | boolean;
  /** unsloth: attention outputs kept in host RAM too (keepAttentionFits decides it for training). Default false. */
  keepAttention?: boolean;
  /** GPU memory to fit in; without it `fits` is undefined and no suggestions are made. */
  gpuBytes?: number;
  /** Gradient accumulation now (suggestions raise it to keep the effective batch). Default 1. */
  gradAccum?: number;
  /** Bytes of the compute dtype (bf16 = 2, the default; the CPU backend computes in f32 = 4). */
  computeBytes?: number;
  /** "cuda" adds the CUDA context and cuBLASLt workspace; "cpu" has neither. Default "cuda". */
  backend?: "cuda" | "cpu";
  ceChunkTokens?: number;
  overheadBytes?: number;
  /**
   * The engine's own allocation plan for these settings (lib/memory/estimate-plan.ts): where it
   * knows a category's peak exactly, its number replaces the formula's.
   */
  plan?: (config: ModelShape, settings: EstimateSettings) => Partial<Record<string, number>>;
}

export interface EstimateSettings {
  batch: number;
  seq: number;
  r: number;
  targets: LoraTarget[];
  checkpoint: CheckpointMode;
  gradAccum: number;
  keepAttention: boolean;
}

export interface EstimateTerm {
  category: string;
  what: string;
  bytes: number;
}

export interface MemoryEstimate {
  settings: EstimateSettings;
  /** Peak bytes by category; offload_host is host RAM, all others are device memory. */
  bytes: Record<string, number>;
  deviceBytes: number;
  hostBytes: number;
  terms: EstimateTerm[];
  baseParams: number;
  loraParams: number;
  gpuBytes: number | undefined;
  fits: boolean | undefined;
  /** Nearest settings that fit, best first; empty when it fits or no GPU size was given. */
  suggestions: FitSuggestion[];
}

const TARGET_ALIASES: Record<string, LoraTarget> = {
  q: "q", q_proj: "q", k: "k", k_proj: "k", v: "v", v_proj: "v", o: "o", o_proj: "o",
  gate: "gate", gate_proj: "gate", up: "up", up_proj: "up", down: "down", down_proj: "down",
};

function normalizeTargets(targets: readonly string[] | undefined): LoraTarget[] {
  if (!targets) return [...LORA_TARGETS];
  const out = new Set<LoraTarget>();
  for (const t of targets) {
    const n = TARGET_ALIASES[t.trim()];
    if (!n) throw new Error(`tsloth: unknown LoRA target "${t}"; expected some of ${LORA_TARGETS.join(", ")} (or their *_proj names).`);
    out.add(n);
  }
  return [...out];
}

function normalizeCheckpoint(c: CheckpointMode | boolean | string): CheckpointMode {
  if (c === true || c === "true") return "true";
  if (c === false || c === "off" || c === "false") return "off";
  if (c === "unsloth") return "unsloth";
  throw new Error(`tsloth: unknown checkpoint mode "${String(c)}"; expected off, true or unsloth.`);
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new Error(`tsloth: ${name} must be a positive integer; got ${v}.`);
  return v;
}

/** The formula's bytes for one setting (no fit check, no suggestions). */
export function estimateBytes(config: ModelShape, opts: EstimateOptions): Omit<MemoryEstimate, "gpuBytes" | "fits" | "suggestions"> {
  const settings: EstimateSettings = {
    batch: positiveInt("batch", opts.batch),
    seq: positiveInt("seq", opts.seq),
    r: positiveInt("r", opts.r),
    targets: normalizeTargets(opts.targets),
    checkpoint: normalizeCheckpoint(opts.checkpoint),
    gradAccum: positiveInt("gradAccum", opts.gradAccum ?? 1),
    keepAttention: opts.keepAttention ?? false,
  };
  const b = opts.computeBytes ?? 2;
  const cuda = (opts.backend ?? "cuda") === "cuda";
  const traits = cuda ? CUDA_TRAITS : CPU_TRAITS;
  const m = config;
  const L = m.numLayers;
  const H = m.hiddenSize;
  const T = settings.batch * settings.seq;
  const shapes = linearShapes(m);
  const terms: EstimateTerm[] = [];
  const add = (category: string, what: string, bytes: number) => terms.push({ category, what, bytes });

  // Base weights: every decoder linear in NF4; embeddings, LM head and norms in the compute dtype.
  const linearParams = Object.values(shapes).reduce((s, [i, o]) => s + i * o, 0);
  add("base_weights", `${L} layers x 7 linear weights in NF4 (${NF4_BYTES_PER_PARAM.toFixed(4)} byte/param + tables)`, L * (linearParams * NF4_BYTES_PER_PARAM + 7 * NF4_BYTES_PER_TENSOR));
  const embedParams = m.vocabSize * H;
  if (embeddingCategory(traits, m) === "offload_host") add("offload_host", "token embeddings in pinned host RAM (rows gathered over PCIe)", embedParams * b);
  else add("base_weights", "token embeddings (compute dtype)", embedParams * b);
  if (!m.tieWordEmbeddings) add("base_weights", "LM head, untied (compute dtype, frozen dense)", embedParams * b);
  add("base_weights", "RMSNorm weights (2 per layer + final)", (2 * L + 1) * H * b);
  if (m.attentionBias) add("base_weights", "q/k/v biases", L * (shapes.q[1] + 2 * shapes.k[1]) * b);
  const baseParams = L * linearParams + embedParams * (m.tieWordEmbeddings ? 1 : 2) + (2 * L + 1) * H;

  // Adapters and optimizer.
  const loraParams = L * settings.targets.reduce((s, t) => s + settings.r * (shapes[t][0] + shapes[t][1]), 0);
  add("adapters", "LoRA A and B, fp32, with their fp32 gradients", loraParams * ADAPTER_BYTES_PER_PARAM);
  add("optimizer", "AdamW exp_avg and exp_avg_sq, fp32", loraParams * ADAMW_BYTES_PER_PARAM);

  // Activations by checkpoint mode.
  const kept = layerKeptBytesPerToken(m, settings.r, settings.targets, b) * T;
  const layerInput = H * b * T;
  const backward = layerBackwardBytesPerToken(m, b) * T;
  if (settings.checkpoint === "off") {
    add("activations", `every layer's kept tensors (${L} layers)`, L * kept);
  } else if (settings.checkpoint === "true") {
    add("activations", `${L} layer inputs kept on device (checkpoints)`, L * layerInput);
    add("activations", "one layer's tensors while it is recomputed", kept);
  } else {
    add("offload_host", `${L} layer inputs offloaded to pinned host RAM`, L * layerInput);
    add("activations", "two layer inputs on device (one in use, one in flight on the copy stream)", 2 * layerInput);
    add("activations", "one layer's tensors while it is recomputed", kept);
    if (settings.keepAttention) {
      const attention = m.numHeads * (m.headDim * b + 4) * T;
      add("offload_host", `${L} attention outputs and log-sum-exps in pinned host RAM (the recompute skips attention)`, L * attention);
      add("activations", "the next layer's attention outputs in flight on the copy stream", attention);
    }
  }
  add("activations", "gradients alive in one layer's backward", backward);
  add("activations", "final norm input and output, fp32 logsumexp per token", (2 * H * b + 4) * T);

  // Workspace.
  const chunk = Math.min(T, opts.ceChunkTokens ?? CE_CHUNK_TOKENS);
  add("workspace", `chunked cross-entropy: fp32 logits of ${chunk} tokens x ${m.vocabSize} vocab`, chunk * m.vocabSize * 4);
  add("workspace", "gradient into the last hidden state", H * b * T);
  const largest = Math.max(...Object.values(shapes).map(([i, o]) => i * o));
  add("workspace", "dequantized copy of the largest base weight", largest * b);
  if (cuda) add("workspace", "cuBLASLt workspace", CUBLAS_WORKSPACE_BYTES);
  if (traits.attentionDqScratch) add("workspace", "attention backward: fp32 dQ accumulator", T * m.numHeads * m.headDim * 4);
  if (cuda) add("overhead", "CUDA context, kernels, allocator headroom", opts.overheadBytes ?? CUDA_OVERHEAD_BYTES);

  const bytes: Record<string, number> = {};
  for (const t of terms) bytes[t.category] = (bytes[t.category] ?? 0) + t.bytes;
  if (opts.plan) {
    for (const [c, v] of Object.entries(opts.plan(config, settings))) if (v !== undefined) bytes[c] = v;
  }
  const hostBytes = bytes.offload_host ?? 0;
  const deviceBytes = Object.entries(bytes).reduce((s, [c, v]) => s + (c === "offload_host" ? 0 : v), 0);
  return { settings, bytes, deviceBytes, hostBytes, terms, baseParams, loraParams };
}

/** Predicted peak memory by category, whether it fits `gpuBytes`, and the nearest settings that do. */
export function estimatePeakMemory(config: ModelShape, opts: EstimateOptions): MemoryEstimate {
  const e = estimateBytes(config, opts);
  if (opts.gpuBytes === undefined) return { ...e, gpuBytes: undefined, fits: undefined, suggestions: [] };
  if (!(opts.gpuBytes > 0)) throw new Error(`tsloth: gpuBytes must be a positive number of bytes; got ${opts.gpuBytes}.`);
  const fits = e.deviceBytes <= opts.gpuBytes;
  return { ...e, gpuBytes: opts.gpuBytes, fits, suggestions: fits ? [] : suggestFittingSettings(config, opts, e.settings) };
}
