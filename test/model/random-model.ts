// Tiny random Llama-family models built in memory, for graph tests that need no files.
import type { Backend } from "../../lib/backend/types.js";
import { parseHfConfig, type ModelConfig } from "../../lib/formats/hf-config.js";
import { LlamaModel } from "../../lib/model/llama.js";
import { Rng, randomNormalArray } from "../../lib/model/random.js";
import { uploadLlamaWeights, type WeightSource } from "../../lib/model/upload-weights.js";
import { hasBias, hfLinearKey, LINEAR_NAMES, linearShape } from "../../lib/model/weights.js";

export function tinyConfig(family: "llama" | "qwen2" | "qwen3" = "llama", extra: Record<string, unknown> = {}): ModelConfig {
  return parseHfConfig({
    model_type: family, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, vocab_size: 40, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: family !== "qwen2",
    max_position_embeddings: 128, ...extra,
  }, "test config");
}

/** Random weights by Hugging Face name (std 0.2 linears, norms near 1). */
export function randomWeights(config: ModelConfig, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const m = new Map<string, Float32Array>();
  const { hiddenSize: h, vocabSize: v, headDim: d } = config;
  const norm = (n: number) => Float32Array.from({ length: n }, () => 1 + 0.1 * rng.normal());
  m.set("model.embed_tokens.weight", randomNormalArray(rng, v * h, 0.5));
  for (let l = 0; l < config.numLayers; l++) {
    for (const n of LINEAR_NAMES) {
      const [o, i] = linearShape(config, n);
      m.set(`${hfLinearKey(l, n)}.weight`, randomNormalArray(rng, o * i, 0.2));
      if (hasBias(config, n)) m.set(`${hfLinearKey(l, n)}.bias`, randomNormalArray(rng, o, 0.1));
    }
    m.set(`model.layers.${l}.input_layernorm.weight`, norm(h));
    m.set(`model.layers.${l}.post_attention_layernorm.weight`, norm(h));
    if (config.qkNorm) {
      m.set(`model.layers.${l}.self_attn.q_norm.weight`, norm(d));
      m.set(`model.layers.${l}.self_attn.k_norm.weight`, norm(d));
    }
  }
  m.set("model.norm.weight", norm(h));
  if (!config.tieWordEmbeddings) m.set("lm_head.weight", randomNormalArray(rng, v * h, 0.5));
  return m;
}

export function mapSource(m: Map<string, Float32Array>): WeightSource {
  return { has: (n) => m.has(n), readF32: (n) => m.get(n)!, readNf4: () => null };
}

export function randomModel(be: Backend, config: ModelConfig, seed: number, linears: "nf4" | "dense" = "dense"): LlamaModel {
  return new LlamaModel(be, config, uploadLlamaWeights(be, config, mapSource(randomWeights(config, seed)), { linears }));
}

/** Makes every LoRA B non-zero so gradients flow through both A and B (PEFT's init has B = 0). */
export function randomizeLoraB(be: Backend, model: LlamaModel, seed: number, std = 0.1): void {
  const rng = new Rng(seed);
  for (const s of model.lora!.slots) {
    const t = be.upload(randomNormalArray(rng, s.adapter.b.shape[0] * s.adapter.b.shape[1], std), s.adapter.b.shape, "f32", "adapters");
    be.copyInto(s.adapter.b, t);
    be.free(t);
  }
}

export function randomTokens(seed: number, n: number, vocab: number): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => rng.int(vocab));
}
