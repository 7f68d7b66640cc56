// Hugging Face config.json for the Llama family tsloth runs: Llama 2/3/3.1/3.2, Mistral,
// Qwen2/2.5 (q/k/v bias) and Qwen3 (per-head q/k RMSNorm). Field names and defaults follow
// transformers' LlamaConfig, MistralConfig, Qwen2Config and Qwen3Config.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

export type ModelFamily = "llama" | "mistral" | "qwen2" | "qwen3";
export const SUPPORTED_MODEL_TYPES: readonly ModelFamily[] = ["llama", "mistral", "qwen2", "qwen3"];

export type RopeScaling =
  | { type: "llama3"; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number }
  | { type: "linear"; factor: number };

export type TorchDtype = "bfloat16" | "float16" | "float32";

export interface ModelConfig {
  family: ModelFamily;
  modelType: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2 always; Llama/Qwen3 when attention_bias is set). */
  attentionBias: boolean;
  /** o_proj carries a bias (Llama and Qwen3 when attention_bias is set; never Qwen2 or Mistral). */
  outputBias: boolean;
  /** Per-head RMSNorm on q and k before RoPE (Qwen3). */
  qkNorm: boolean;
  /** Mistral's sliding attention window, when the config sets one (null: full attention). */
  slidingWindow: number | null;
  torchDtype: TorchDtype;
  bosTokenId?: number;
  eosTokenIds: number[];
  raw: Record<string, unknown>;
}

type Raw = Record<string, unknown>;

function bad(source: string, msg: string): never {
  throw new Error(`tsloth: ${source}: ${msg}`);
}

function int(raw: Raw, key: string, source: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) bad(source, `"${key}" must be a positive integer, found ${JSON.stringify(raw[key])}`);
  return v;
}

function num(raw: Raw, key: string, source: string, fallback: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) bad(source, `"${key}" must be a positive number, found ${JSON.stringify(raw[key])}`);
  return v;
}

function parseRopeScaling(raw: Raw, source: string): RopeScaling | null {
  // transformers 5 moves rope settings into `rope_parameters` ({rope_type, rope_theta, ...}).
  const rs = (raw.rope_scaling ?? raw.rope_parameters) as Raw | null | undefined;
  if (rs == null) return null;
  if (typeof rs !== "object") bad(source, `"rope_scaling" must be an object or null, found ${JSON.stringify(rs)}`);
  const type = rs.rope_type ?? rs.type;
  if (type === undefined || type === "default") return null;
  if (type === "llama3") {
    return {
      type: "llama3",
      factor: num(rs, "factor", source, NaN),
      lowFreqFactor: num(rs, "low_freq_factor", source, 1),
      highFreqFactor: num(rs, "high_freq_factor", source, 4),
      originalMaxPositionEmbeddings: int(rs, "original_max_position_embeddings", source, 8192),
    };
  }
  if (type === "linear") return { type: "linear", factor: num(rs, "factor", source, NaN) };
  bad(source, `rope scaling "${String(type)}" is not supported; tsloth supports "llama3" and "linear" (or none)`);
}

function parseDtype(raw: Raw): TorchDtype {
  const d = raw.torch_dtype ?? raw.dtype;
  if (d === "float16" || d === "float32" || d === "bfloat16") return d;
  return "bfloat16";
}

function eosIds(v: unknown): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number");
  return [];
}

/** Parses a config.json object; refuses architectures outside the Llama family, listing what is supported. */
export function parseHfConfig(json: unknown, source: string): ModelConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) bad(source, "expected a JSON object (a Hugging Face config.json)");
  const raw = json as Raw;
  const modelType = raw.model_type;
  if (typeof modelType !== "string" || !(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    const arch = Array.isArray(raw.architectures) ? ` (${raw.architectures.join(", ")})` : "";
    bad(source, `model_type ${JSON.stringify(modelType)}${arch} is not supported; tsloth supports ${SUPPORTED_MODEL_TYPES.join(", ")} ` +
      `(Llama 2/3/3.1/3.2, Mistral, Qwen2/2.5, Qwen3). Pick a model of one of these families.`);
  }
  const family = modelType as ModelFamily;
  const hiddenSize = int(raw, "hidden_size", source);
  const numHeads = int(raw, "num_attention_heads", source);
  const numKvHeads = int(raw, "num_key_value_heads", source, numHeads);
  if (numHeads % numKvHeads !== 0) bad(source, `num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`);
  const headDim = raw.head_dim == null ? hiddenSize / numHeads : int(raw, "head_dim", source);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) bad(source, `head dimension ${headDim} must be an even integer (hidden_size / num_attention_heads or head_dim)`);
  const ropeParams = raw.rope_parameters as Raw | undefined;
  const ropeTheta = num(raw, "rope_theta", source, typeof ropeParams?.rope_theta === "number" ? ropeParams.rope_theta : 10000);
  const sliding = family === "mistral" && typeof raw.sliding_window === "number" ? raw.sliding_window : null;
  const config: ModelConfig = {
    family,
    modelType,
    hiddenSize,
    intermediateSize: int(raw, "intermediate_size", source),
    numLayers: int(raw, "num_hidden_layers", source),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: int(raw, "vocab_size", source),
    rmsNormEps: num(raw, "rms_norm_eps", source, 1e-6),
    ropeTheta,
    ropeScaling: parseRopeScaling(raw, source),
    maxPositionEmbeddings: int(raw, "max_position_embeddings", source, 2048),
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    // transformers' Qwen2Attention hard-codes bias on q/k/v only; Mistral has none; Llama and Qwen3
    // put `attention_bias` on all four projections.
    attentionBias: family === "qwen2" || (family !== "mistral" && raw.attention_bias === true),
    outputBias: (family === "llama" || family === "qwen3") && raw.attention_bias === true,
    qkNorm: family === "qwen3",
    slidingWindow: sliding,
    torchDtype: parseDtype(raw),
    eosTokenIds: eosIds(raw.eos_token_id),
    raw,
  };
  if (typeof raw.bos_token_id === "number") config.bosTokenId = raw.bos_token_id;
  const act = raw.hidden_act ?? "silu";
  if (act !== "silu") bad(source, `hidden_act "${String(act)}" is not supported; tsloth's Llama-family MLP uses silu (SwiGLU)`);
  if (raw.mlp_bias === true) bad(source, `mlp_bias=true is not supported; tsloth supports Llama-family MLPs without bias`);
  return config;
}

/** Reads `<dir>/config.json`. */
export function readHfConfig(dir: string): ModelConfig {
  const path = join(dir, "config.json");
  if (!existsSync(path)) throw new Error(`tsloth: ${dir} has no config.json; expected a Hugging Face model directory`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    bad(path, `is not valid JSON (${(e as Error).message})`);
  }
  return parseHfConfig(json, path);
}
