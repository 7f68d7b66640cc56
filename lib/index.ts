// tsloth's public API: what notebook cells import as "tsloth" and what the magics call, one
// function per magic (%load_4bit → loadModel4bit, %lora → attachLora, %train → train,
// %generate → generate).
import { CpuBackend } from "./backend/cpu/backend.js";
import { chooseBackend, CudaBackend } from "./backend/cuda/index.js";
import type { Backend, MemoryReport } from "./backend/types.js";
import { readHfConfig, type ModelConfig } from "./formats/hf-config.js";
import { resolveDatasetPath, resolveModelDir } from "./formats/resolve-model.js";
import { Tokenizer, type ChatMessage } from "./formats/tokenizer.js";
import { decodeWithKvCache, type FinishReason, type KvLayout } from "./infer/decode-loop.js";
import { resolveSampling, Sampler } from "./infer/sampling.js";
import { TextStream } from "./infer/text-stream.js";
import { parseCheckpointPolicy, type CheckpointPolicy } from "./model/checkpoint-policy.js";
import type { LlamaModel } from "./model/llama.js";
import { loadLlamaModel } from "./model/load-model.js";
import { countLoraParams, loraScale, type LoraOptions, type ResolvedLoraOptions } from "./model/lora.js";
import { readJsonlRecords } from "./train/jsonl-dataset.js";
import type { TrainProgress, TrainSummary } from "./train/progress.js";
import { parseSchedule, type ScheduleName } from "./train/schedule.js";
import { tokenizeRecords } from "./train/tokenize-records.js";
import { createTrainingState, trainLoop, type TrainingState } from "./train/trainer.js";
import { loadTrainingCheckpoint, saveTrainingCheckpoint } from "./train/training-checkpoint.js";

export type { Backend, MemoryReport, MemoryCategory, Tensor } from "./backend/types.js";
export { MEMORY_CATEGORIES, OutOfMemoryError } from "./backend/types.js";
export { CpuBackend } from "./backend/cpu/backend.js";
export { Tokenizer, type ChatMessage } from "./formats/tokenizer.js";
export { readHfConfig, type ModelConfig } from "./formats/hf-config.js";
export { resolveModelDir, resolveDatasetPath, TINY_MODEL_NAME, TINY_DATASET_NAME } from "./formats/resolve-model.js";
export { SafetensorsReader } from "./formats/safetensors-reader.js";
export { nf4Quantize, nf4Dequantize } from "./quant/nf4.js";
export { peftLoraKey, type LoraOptions } from "./model/lora.js";
export type { CheckpointPolicy } from "./model/checkpoint-policy.js";
export type { TrainProgress, TrainSummary } from "./train/progress.js";
export { engineAllocationPlan, planTrainingStep } from "./memory/estimate-plan.js";
export { CPU_TRAITS, type BackendTraits } from "./backend/types.js";
export { CUDA_TRAITS } from "./backend/cuda/traits.js";
export { KV_CACHE_INCREMENT, KV_BLOCK_SIZE } from "./infer/kv-cache.js";
export { DEFAULT_KV_MEMORY_SHARE } from "./infer/paged-kv-cache.js";
export type { FinishReason, KvLayout } from "./infer/decode-loop.js";

/** A loaded model: the engine's graph plus what a notebook needs around it. */
export interface Model {
  readonly name: string;
  readonly dir: string;
  readonly config: ModelConfig;
  readonly tokenizer: Tokenizer;
  readonly backend: Backend;
  readonly engine: LlamaModel;
  readonly maxSeqLength: number;
  readonly dtype: "bf16" | "f16";
  /** Optimizer state and schedule position, kept between %train calls and after an interrupt. */
  training: TrainingState | null;
}

export interface LoadOptions {
  /** Longest sequence training and generation will use; default 2048 (or the model's limit). */
  maxSeqLength?: number;
  /** Compute dtype on the GPU; the CPU reference backend computes in f32 either way. */
  dtype?: "bf16" | "f16";
  /**
   * The backend: "auto" (default: CUDA when a GPU and libtsloth_cuda.so are present, else the CPU
   * reference; TSLOTH_BACKEND=cpu|cuda overrides), "cpu", "cuda", or a Backend instance.
   */
  backend?: Backend | "auto" | "cpu" | "cuda";
  /** false keeps frozen linears in 16-bit (plain LoRA instead of QLoRA). Default true. */
  loadIn4bit?: boolean;
  onTensor?: (name: string) => void;
}

/** %load_4bit MODEL [--max_seq_length N] [--dtype bf16|f16] */
export async function loadModel4bit(nameOrPath: string, opts: LoadOptions = {}): Promise<Model> {
  const dtype = opts.dtype ?? "bf16";
  if (dtype !== "bf16" && dtype !== "f16") throw new Error(`tsloth: --dtype must be bf16 or f16, found ${String(dtype)}`);
  const dir = resolveModelDir(nameOrPath);
  const config = readHfConfig(dir);
  const maxSeqLength = opts.maxSeqLength ?? Math.min(2048, config.maxPositionEmbeddings);
  if (!Number.isInteger(maxSeqLength) || maxSeqLength < 2) throw new Error(`tsloth: --max_seq_length must be an integer ≥ 2, found ${maxSeqLength}`);
  if (config.slidingWindow !== null && maxSeqLength > config.slidingWindow)
    throw new Error(`tsloth: this model attends within a sliding window of ${config.slidingWindow} tokens, which tsloth's attention does not implement; use --max_seq_length ${config.slidingWindow} or less`);
  const tokenizer = await Tokenizer.fromDir(dir);
  const backend = typeof opts.backend === "object" ? opts.backend : chooseBackend(opts.backend) === "cuda" ? new CudaBackend() : new CpuBackend();
  const engine = loadLlamaModel(backend, dir, { linears: opts.loadIn4bit === false ? "dense" : "nf4", onTensor: opts.onTensor }, config);
  return { name: nameOrPath, dir, config, tokenizer, backend, engine, maxSeqLength, dtype, training: null };
}

export interface LoraSummary extends ResolvedLoraOptions {
  scale: number;
  trainableParams: number;
}

/** %lora [--r 16] [--alpha 16] [--targets q,k,v,o,gate,up,down] [--seed S] [--rslora] */
export function attachLora(model: Model, opts: LoraOptions = {}): LoraSummary {
  if (model.training) model.training.optimizer.free();
  model.training = null;
  const state = model.engine.attachLora(opts);
  return { ...state.options, scale: loraScale(state.options), trainableParams: countLoraParams(state) };
}

export interface TrainOptions {
  /** JSONL file, or "tsloth-tiny-data" for the built-in set. */
  data: string;
  steps?: number;
  epochs?: number;
  batch?: number;
  gradAccum?: number;
  lr?: number;
  schedule?: ScheduleName;
  /** Warmup steps (linear from 0). */
  warmup?: number;
  checkpoint?: CheckpointPolicy | boolean;
  packing?: boolean;
  maxSeqLength?: number;
  seed?: number;
  /** Max global gradient norm (0: no clipping). */
  clip?: number;
  weightDecay?: number;
  /** Over-long samples: "truncate" (warn) or "refuse". */
  truncation?: "truncate" | "refuse";
  /** Loss on assistant tokens only (default true). */
  completionOnly?: boolean;
  /** Continue from a directory written by saveTrainingState. */
  resumeFrom?: string;
}

export interface TrainHooksApi {
  onProgress?: (p: TrainProgress) => void;
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
}

function positiveInt(name: string, v: number | undefined, fallback: number): number {
  const x = v ?? fallback;
  if (!Number.isInteger(x) || x < 1) throw new Error(`tsloth: --${name} must be a positive integer, found ${x}`);
  return x;
}

/** %train --data FILE [--steps N | --epochs E] [--batch B] [--grad_accum G] [--lr X] [--checkpoint unsloth|true|off] [--packing] ... */
export async function train(model: Model, opts: TrainOptions, hooks: TrainHooksApi = {}): Promise<TrainSummary> {
  if (opts.steps !== undefined && opts.epochs !== undefined) throw new Error("tsloth: pass either --steps or --epochs, not both");
  if (opts.resumeFrom) model.training = loadTrainingCheckpoint(model.engine, opts.resumeFrom);
  if (!model.engine.lora) throw new Error("tsloth: attach LoRA adapters before training: run %lora (or attachLora(model, {...}))");
  const maxSeqLength = positiveInt("max_seq_length", opts.maxSeqLength, model.maxSeqLength);
  const records = readJsonlRecords(resolveDatasetPath(opts.data));
  const samples = tokenizeRecords(records, model.tokenizer, {
    maxSeqLength, overLength: opts.truncation ?? "truncate", completionOnly: opts.completionOnly ?? true,
    warn: hooks.onWarning ?? ((m) => console.warn(m)),
  });
  const weightDecay = opts.weightDecay ?? 0;
  model.training ??= createTrainingState(model.engine, weightDecay);
  const steps = opts.steps !== undefined ? positiveInt("steps", opts.steps, 1) : undefined;
  const epochs = opts.epochs ?? (steps === undefined ? 1 : undefined);
  if (epochs !== undefined && !(epochs > 0)) throw new Error(`tsloth: --epochs must be positive, found ${epochs}`);
  const lr = opts.lr ?? 2e-4;
  if (!(lr > 0)) throw new Error(`tsloth: --lr must be positive, found ${lr}`);
  return trainLoop(model.engine, samples, model.training, {
    steps, epochs, batchSize: positiveInt("batch", opts.batch, 1), gradAccum: positiveInt("grad_accum", opts.gradAccum, 4), lr,
    schedule: parseSchedule(opts.schedule), warmup: opts.warmup ?? 5, checkpoint: parseCheckpointPolicy(opts.checkpoint),
    packing: opts.packing ?? false, maxSeqLength, seed: opts.seed ?? 3407, clip: opts.clip ?? 1, weightDecay,
  }, hooks);
}

/** Writes adapters (PEFT names), optimizer state and step to `dir` for a later `train({resumeFrom})`. */
export function saveTrainingState(model: Model, dir: string): void {
  if (!model.training) throw new Error("tsloth: nothing to save yet: train first (adapters alone are saved by the adapter saver)");
  saveTrainingCheckpoint(model.engine, model.training, dir, model.name);
}

export interface GenerateOptions {
  /** New tokens per prompt at most (default 128). Generation also stops at the tokenizer's EOS. */
  maxNewTokens?: number;
  /** 0 (default): greedy. */
  temperature?: number;
  topP?: number;
  /** 0 keeps every token. */
  topK?: number;
  /** > 1 discourages repeating tokens of the prompt and output (1: off). */
  repetitionPenalty?: number;
  seed?: number;
  /** Wrap each string prompt as a user message and apply the model's chat template. */
  chat?: boolean;
  /** Stops every sequence cleanly at the next token; what was generated so far is returned. */
  signal?: AbortSignal;
  /** Each new piece of complete text (never half a multi-byte character), with the prompt's index. */
  onText?: (text: string, promptIndex: number) => void;
  /** Each new token id, with the prompt's index. */
  onToken?: (id: number, promptIndex: number) => void;
  /** KV cache layout: "contiguous" (one prompt at a time) or "paged" (all together); default by count. */
  kvCache?: KvLayout;
  /** Share of free device memory the paged KV pool may take, like vLLM's gpu_memory_utilization (default 0.9). */
  gpuMemoryUtilization?: number;
}

export interface Generation {
  text: string;
  ids: number[];
  promptTokens: number;
  finishReason: FinishReason;
}

export type Prompt = string | ChatMessage[];

function encodePrompt(model: Model, prompt: Prompt, chat: boolean): number[] {
  const tok = model.tokenizer;
  const messages = typeof prompt === "string" ? (chat ? [{ role: "user", content: prompt }] : null) : prompt;
  if (!messages) return tok.encode(prompt as string);
  return tok.encode(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), { addSpecialTokens: false });
}

/**
 * %generate "PROMPT" / %%generate: completes one prompt (a string or a chat) or several (an array
 * of them) with a KV cache, streaming text through `onText`. LoRA adapters, when attached, apply
 * unmerged.
 */
export async function generate(model: Model, prompt: Prompt, opts?: GenerateOptions): Promise<Generation>;
export async function generate(model: Model, prompts: Prompt[], opts?: GenerateOptions): Promise<Generation[]>;
export async function generate(model: Model, prompts: Prompt | Prompt[], opts: GenerateOptions = {}): Promise<Generation | Generation[]> {
  const several = Array.isArray(prompts) && (prompts.length === 0 || typeof prompts[0] === "string" || Array.isArray(prompts[0]));
  const list = (several ? prompts : [prompts]) as Prompt[];
  if (list.length === 0) throw new Error("tsloth: no prompts given; pass a string, a chat, or an array of them");
  const tok = model.tokenizer;
  const maxNewTokens = positiveInt("max_new_tokens", opts.maxNewTokens, 128);
  const encoded = list.map((p) => encodePrompt(model, p, opts.chat ?? false));
  encoded.forEach((ids, i) => {
    if (ids.length === 0) throw new Error(`tsloth: prompt ${i} encodes to no tokens; give it some text`);
    if (ids.length >= model.maxSeqLength)
      throw new Error(`tsloth: prompt ${i} is ${ids.length} tokens, at or over max_seq_length ${model.maxSeqLength}; shorten it or load with a larger --max_seq_length`);
  });
  // Each prompt may grow to max_seq_length; the budget is the smaller of that and max_new_tokens.
  const budget = Math.min(maxNewTokens, model.maxSeqLength - Math.max(...encoded.map((e) => e.length)));
  const streams = encoded.map(() => new TextStream(tok));
  const sampler = new Sampler(resolveSampling(opts));
  const decoded = await decodeWithKvCache(model.engine, encoded, {
    maxNewTokens: budget, eosTokenIds: tok.eosTokenIds, sampler, layout: opts.kvCache, kvMemoryShare: opts.gpuMemoryUtilization,
    signal: opts.signal,
    onToken: (i, id) => {
      opts.onToken?.(id, i);
      const text = streams[i].push(id);
      if (text) opts.onText?.(text, i);
    },
  });
  const out = decoded.map((d, i) => {
    const rest = streams[i].flush();
    if (rest) opts.onText?.(rest, i);
    return { text: tok.decode(d.ids, { skipSpecialTokens: true }), ids: d.ids, promptTokens: encoded[i].length, finishReason: d.finishReason };
  });
  return several ? out : out[0];
}

/** Greedy completion of one prompt (a chat always goes through the chat template); streams text pieces. */
export async function generateGreedy(
  model: Model, prompt: Prompt, opts: { maxNewTokens?: number; signal?: AbortSignal; onToken?: (text: string) => void } = {},
): Promise<Generation> {
  return generate(model, prompt, { maxNewTokens: opts.maxNewTokens ?? 64, signal: opts.signal, onText: opts.onToken && ((t) => opts.onToken!(t)) });
}

/** Bytes held by category, current and peak, on the model's backend. */
export function memoryReport(model: Model): MemoryReport {
  return model.backend.memory();
}

export { vram, env, estimate, trackMemory, MIME_BUNDLE, type Displayable, type EstimateApiOptions } from "./api/views.js";
export { LiveTraining, type DisplaySink } from "./api/live-training.js";
export type { VramSnapshot } from "./memory/vram-snapshot.js";
export type { MemoryEstimate } from "./memory/estimator.js";
export type { EnvReport } from "./env/env-report.js";
export { saveMerged, saveLora, recoverInterruptedSaves, type SaveOptions, type SaveSummary, type SaveProgress } from "./save/index.js";
