// Writes a Llama-family checkpoint of a given shape with random bf16 weights (for the save
// benchmarks): config.json, sharded safetensors, and the tiny model's tokenizer files (loading
// needs a tokenizer; saving never looks at its vocabulary).
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ShardedSafetensorsWriter } from "../../lib/formats/safetensors-writer.js";
import { parseHfConfig } from "../../lib/formats/hf-config.js";
import { resolveModelDir } from "../../lib/formats/resolve-model.js";
import { mergePlan } from "../../lib/save/merge-plan.js";

/** Llama-3.2-1B's shape (meta-llama/Llama-3.2-1B config.json), and a small one for quick runs. */
export const SHAPES: Record<string, Record<string, unknown>> = {
  "1b": { hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256, head_dim: 64 },
  small: { hidden_size: 512, intermediate_size: 2048, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 2, vocab_size: 32000, head_dim: 64 },
};

/** xorshift32 uniform in ±0.05·√3 (std 0.05): enough for timing, much faster than normal draws. */
function fillRandomBf16(out: Uint16Array, seed: number): void {
  let s = seed >>> 0 || 1;
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  const scale = 0.05 * Math.sqrt(3) / 2 ** 31;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    f[0] = (s | 0) * scale;
    out[i] = u[0]! >>> 16;
  }
}

export function writeRandomModel(dir: string, shape: string): void {
  if (existsSync(join(dir, "config.json"))) return;
  const dims = SHAPES[shape];
  if (!dims) throw new Error(`unknown shape ${shape}; expected ${Object.keys(SHAPES).join(", ")}`);
  const raw = {
    architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_act: "silu", rms_norm_eps: 1e-5, max_position_embeddings: 2048,
    rope_theta: 500000.0, tie_word_embeddings: true, dtype: "bfloat16", bos_token_id: 0, eos_token_id: 1, attention_bias: false, mlp_bias: false, ...dims,
  };
  const config = parseHfConfig(raw, "bench shape");
  mkdirSync(dir, { recursive: true });
  const writer = new ShardedSafetensorsWriter(dir, { maxShardSize: "2GB" });
  let seed = 1;
  for (const e of mergePlan(config)) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    const data = new Uint16Array(n);
    if (e.name.endsWith("norm.weight")) data.fill(0x3f80); // 1.0
    else fillRandomBf16(data, seed++);
    writer.add(e.name, "BF16", [...e.shape], new Uint8Array(data.buffer));
  }
  writer.finish();
  const tiny = resolveModelDir("tsloth-tiny");
  for (const f of ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]) copyFileSync(join(tiny, f), join(dir, f));
  writeFileSync(join(dir, "config.json"), JSON.stringify(raw, null, 2));
}
