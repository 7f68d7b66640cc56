// Random-init Llama shapes with 4-bit linears for the training and generation benchmarks: the
// shapes of their transformers baselines (Llama-3.2-1B/3B, Llama-3.1-8B), plus a tiny smoke shape. Values do not
// change the work, so the NF4 codes are random bytes with plausible scales (no host quantization
// of billions of values).
import { randomFillSync } from "node:crypto";
import type { Backend } from "../lib/backend/types.js";
import { parseHfConfig, type ModelConfig } from "../lib/formats/hf-config.js";
import { LlamaModel } from "../lib/model/llama.js";
import { uploadLlamaWeights, type WeightSource } from "../lib/model/upload-weights.js";
import { linearShape, LINEAR_NAMES, type LinearName } from "../lib/model/weights.js";
import { DYNAMIC_MAP_SIGNED } from "../lib/quant/dynamic-map.js";
import type { Nf4Tensor } from "../lib/quant/nf4.js";

export const SHAPES: Record<string, Record<string, number | boolean>> = {
  "3B": { hidden_size: 3072, num_hidden_layers: 28, num_attention_heads: 24, num_key_value_heads: 8, intermediate_size: 8192, vocab_size: 128256, tie_word_embeddings: true },
  "1B": { hidden_size: 2048, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, intermediate_size: 8192, vocab_size: 128256, tie_word_embeddings: true },
  "8B": { hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, intermediate_size: 14336, vocab_size: 128256, tie_word_embeddings: false },
  tiny: { hidden_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 256, vocab_size: 512, tie_word_embeddings: false },
};

export function shapeConfig(name: string): ModelConfig {
  if (!SHAPES[name]) throw new Error(`unknown shape ${name}; expected one of ${Object.keys(SHAPES).join(", ")}`);
  return parseHfConfig({ model_type: "llama", ...SHAPES[name], rms_norm_eps: 1e-5, rope_theta: 500000, max_position_embeddings: 131072 }, `${name} shape`);
}

/** Uniform values in [-a, a] from a fast LCG (init values only need the right scale). */
export function randomValues(n: number, a: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296 - 0.5) * 2 * a;
  }
  return out;
}

function randomNf4(shape: [number, number]): Nf4Tensor {
  const n = shape[0] * shape[1], blocks = Math.ceil(n / 64), nested = Math.ceil(blocks / 256);
  return {
    shape, packed: randomFillSync(new Uint8Array(n / 2)), blocksize: 64, absmax: new Float32Array(blocks).fill(0.05),
    nested: {
      quantizedAbsmax: randomFillSync(new Uint8Array(blocks)), nestedAbsmax: new Float32Array(nested).fill(0.01),
      nestedQuantMap: DYNAMIC_MAP_SIGNED, nestedBlocksize: 256, offset: 0.05,
    },
    quantMap: new Float32Array(16), dtype: "bfloat16",
  };
}

export function randomLlama4bit(be: Backend, config: ModelConfig): LlamaModel {
  let seed = 1;
  const src: WeightSource = {
    has: () => true,
    readF32: (name) => (name.includes("norm") ? new Float32Array(config.hiddenSize).fill(1) : randomValues(config.vocabSize * config.hiddenSize, 0.02, seed++)),
    readNf4: (name) => {
      const m = /layers\.\d+\.(?:self_attn|mlp)\.(\w+)\.weight$/.exec(name);
      return m ? randomNf4(linearShape(config, m[1].replace(/_proj$/, "") as LinearName)) : null;
    },
  };
  return new LlamaModel(be, config, uploadLlamaWeights(be, config, src, { linears: "nf4" }));
}

/** Bytes of the 4-bit linear weights one decode step streams (codes + 8-bit absmax + nested absmax). */
export function nf4WeightBytes(config: ModelConfig): number {
  let n = 0;
  for (const name of LINEAR_NAMES) {
    const [o, i] = linearShape(config, name);
    n += (o * i) / 2 + Math.ceil((o * i) / 64) + 4 * Math.ceil((o * i) / 64 / 256);
  }
  return n * config.numLayers;
}
