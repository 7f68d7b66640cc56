// The files around the weights that make a directory a normal Hugging Face checkpoint: config.json
// (without a quantization config for 16-bit, with bitsandbytes' for 4-bit), generation_config.json
// and the tokenizer files, copied from the base model's directory.
import { copyFileSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ModelConfig } from "../formats/hf-config.js";

/** Tokenizer files transformers' tokenizer.save_pretrained may write (any that exist are copied). */
export const TOKENIZER_FILES = [
  "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt",
  "added_tokens.json", "chat_template.jinja", "chat_template.json",
];

/** What transformers writes as quantization_config for load_in_4bit NF4 with double quantization. */
export function bnb4bitQuantizationConfig(computeDtype: string): Record<string, unknown> {
  return {
    quant_method: "bitsandbytes", _load_in_4bit: true, _load_in_8bit: false, load_in_4bit: true, load_in_8bit: false,
    bnb_4bit_compute_dtype: computeDtype, bnb_4bit_quant_storage: "uint8", bnb_4bit_quant_type: "nf4",
    bnb_4bit_use_double_quant: true, llm_int8_enable_fp32_cpu_offload: false, llm_int8_has_fp16_weight: false,
    llm_int8_skip_modules: null, llm_int8_threshold: 6.0,
  };
}

/** config.json of the saved model: the base config, quantization settings replaced for the method. */
export function savedModelConfig(config: ModelConfig, quantized4bit: boolean): Record<string, unknown> {
  const raw: Record<string, unknown> = { ...config.raw };
  delete raw.quantization_config;
  if (quantized4bit) raw.quantization_config = bnb4bitQuantizationConfig(config.torchDtype);
  return raw;
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, JSON.stringify(value, null, 2) + "\n");
}

/** Writes config.json and generation_config.json, copies the tokenizer files; returns the files written. */
export function writeCheckpointExtras(outDir: string, config: ModelConfig, baseDir: string | undefined, opts: { quantized4bit: boolean; modelConfig: boolean }): string[] {
  const written: string[] = [];
  if (opts.modelConfig) {
    // JSON has one number type; transformers checks llm_int8_threshold is a Python float, so write 6.0.
    const text = JSON.stringify(savedModelConfig(config, opts.quantized4bit), null, 2).replace(/("llm_int8_threshold": )(-?\d+)(,?\n)/, "$1$2.0$3");
    writeFileSync(join(outDir, "config.json"), text + "\n");
    written.push(join(outDir, "config.json"));
    const gen = baseDir && join(baseDir, "generation_config.json");
    if (gen && existsSync(gen)) copyFileSync(gen, join(outDir, "generation_config.json"));
    else {
      const raw = config.raw;
      const g: Record<string, unknown> = {};
      for (const k of ["bos_token_id", "eos_token_id", "pad_token_id"]) if (raw[k] !== undefined) g[k] = raw[k];
      writeJson(join(outDir, "generation_config.json"), g);
    }
    written.push(join(outDir, "generation_config.json"));
  }
  if (baseDir) {
    for (const f of TOKENIZER_FILES) {
      const src = join(baseDir, f);
      if (!existsSync(src)) continue;
      copyFileSync(src, join(outDir, f));
      written.push(join(outDir, f));
    }
  }
  return written;
}
