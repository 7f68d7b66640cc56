// Loads a Llama-family checkpoint directory onto a backend: config.json, then the safetensors
// weights tensor by tensor (quantized to NF4 on the way, or read pre-quantized from a
// bitsandbytes checkpoint).
import type { Backend } from "../backend/types.js";
import { readHfConfig, type ModelConfig } from "../formats/hf-config.js";
import { SafetensorsReader } from "../formats/safetensors-reader.js";
import { isBnb4bitCheckpoint, readBnb4bit, NF4_QUANT_STATE_SUFFIX } from "../quant/bnb-format.js";
import { LlamaModel } from "./llama.js";
import { uploadLlamaWeights, type WeightSource } from "./upload-weights.js";

export interface LoadModelOptions {
  linears: "nf4" | "dense";
  onTensor?: (name: string) => void;
}

export function safetensorsSource(reader: SafetensorsReader): WeightSource {
  const bnb = isBnb4bitCheckpoint(reader);
  return {
    has: (n) => reader.has(n),
    readF32: (n) => reader.readF32(n),
    readNf4: (n) => (bnb && reader.has(n + NF4_QUANT_STATE_SUFFIX) ? readBnb4bit(reader, n) : null),
  };
}

export function loadLlamaModel(be: Backend, dir: string, opts: LoadModelOptions, config: ModelConfig = readHfConfig(dir)): LlamaModel {
  const reader = SafetensorsReader.open(dir);
  try {
    const weights = uploadLlamaWeights(be, config, safetensorsSource(reader), opts);
    return new LlamaModel(be, config, weights);
  } finally {
    reader.close();
  }
}
