// Model files: safetensors, Hugging Face configs, the hub cache, tokenizers, datasets.
export * from "./dtype.js";
export * from "./hf-config.js";
export * from "./jsonl-dataset.js";
export * from "./resolve-model.js";
export * from "./safetensors-layout.js";
export * from "./safetensors-planned-writer.js";
export * from "./safetensors-reader.js";
export * from "./safetensors-writer.js";
export * from "./tokenizer.js";
