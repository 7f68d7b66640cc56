import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseHfConfig, readHfConfig } from "../../lib/formats/hf-config.js";

// Abbreviated copies of the configs the hub ships for these models.
const LLAMA_31_8B = {
  architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 4096, intermediate_size: 14336,
  num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256,
  rms_norm_eps: 1e-5, rope_theta: 500000.0, max_position_embeddings: 131072, tie_word_embeddings: false,
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: "llama3" },
  torch_dtype: "bfloat16", bos_token_id: 128000, eos_token_id: [128001, 128008, 128009], hidden_act: "silu", attention_bias: false,
};
const LLAMA_32_1B = { ...LLAMA_31_8B, hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32,
  head_dim: 64, tie_word_embeddings: true, rope_scaling: { ...LLAMA_31_8B.rope_scaling, factor: 32.0 } };
const LLAMA_2_7B = { architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 4096, intermediate_size: 11008,
  num_hidden_layers: 32, num_attention_heads: 32, vocab_size: 32000, rms_norm_eps: 1e-5, max_position_embeddings: 4096,
  rope_scaling: null, torch_dtype: "float16", bos_token_id: 1, eos_token_id: 2 };
const MISTRAL_7B = { architectures: ["MistralForCausalLM"], model_type: "mistral", hidden_size: 4096, intermediate_size: 14336,
  num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 32768, rms_norm_eps: 1e-5,
  rope_theta: 1000000.0, max_position_embeddings: 32768, sliding_window: null, tie_word_embeddings: false, torch_dtype: "bfloat16", eos_token_id: 2 };
const QWEN25_7B = { architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", hidden_size: 3584, intermediate_size: 18944,
  num_hidden_layers: 28, num_attention_heads: 28, num_key_value_heads: 4, vocab_size: 152064, rms_norm_eps: 1e-6,
  rope_theta: 1000000.0, max_position_embeddings: 32768, tie_word_embeddings: false, torch_dtype: "bfloat16", eos_token_id: 151643 };
const QWEN3_8B = { architectures: ["Qwen3ForCausalLM"], model_type: "qwen3", hidden_size: 4096, intermediate_size: 12288,
  num_hidden_layers: 36, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, vocab_size: 151936, rms_norm_eps: 1e-6,
  rope_theta: 1000000, max_position_embeddings: 40960, tie_word_embeddings: false, attention_bias: false, torch_dtype: "bfloat16",
  bos_token_id: 151643, eos_token_id: 151645 };

describe("parseHfConfig", () => {
  it("reads Llama 3.1 with llama3 rope scaling and untied embeddings", () => {
    const c = parseHfConfig(LLAMA_31_8B, "llama31");
    assert.equal(c.family, "llama");
    assert.equal(c.headDim, 128);
    assert.equal(c.numKvHeads, 8);
    assert.equal(c.ropeTheta, 500000);
    assert.deepEqual(c.ropeScaling, { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    assert.equal(c.tieWordEmbeddings, false);
    assert.deepEqual(c.eosTokenIds, [128001, 128008, 128009]);
    assert.equal(c.bosTokenId, 128000);
    assert.equal(c.attentionBias, false);
    assert.equal(c.qkNorm, false);
  });
  it("reads Llama 3.2 with tied embeddings and an explicit head_dim", () => {
    const c = parseHfConfig(LLAMA_32_1B, "llama32");
    assert.equal(c.tieWordEmbeddings, true);
    assert.equal(c.headDim, 64);
    assert.equal(c.ropeScaling?.factor, 32);
  });
  it("reads Llama 2 defaults: kv heads = heads, rope theta 10000, no scaling, float16", () => {
    const c = parseHfConfig(LLAMA_2_7B, "llama2");
    assert.equal(c.numKvHeads, 32);
    assert.equal(c.ropeTheta, 10000);
    assert.equal(c.ropeScaling, null);
    assert.equal(c.torchDtype, "float16");
    assert.deepEqual(c.eosTokenIds, [2]);
  });
  it("reads Mistral, Qwen2.5 (q/k/v bias, no o bias) and Qwen3 (q/k norm, head_dim 128)", () => {
    const m = parseHfConfig(MISTRAL_7B, "mistral");
    assert.equal(m.family, "mistral");
    assert.equal(m.slidingWindow, null);
    assert.equal(m.attentionBias, false);
    const q2 = parseHfConfig(QWEN25_7B, "qwen2");
    assert.equal(q2.attentionBias, true);
    assert.equal(q2.outputBias, false);
    assert.equal(q2.headDim, 128);
    const q3 = parseHfConfig(QWEN3_8B, "qwen3");
    assert.equal(q3.qkNorm, true);
    assert.equal(q3.attentionBias, false);
    assert.equal(q3.headDim, 128);
    assert.equal(q3.hiddenSize / q3.numHeads, 128);
  });
  it("reads transformers 5's rope_parameters", () => {
    const { rope_theta: _t, rope_scaling: _s, ...rest } = LLAMA_31_8B;
    const c = parseHfConfig({ ...rest, rope_parameters: { rope_type: "llama3", rope_theta: 500000.0, factor: 8.0, low_freq_factor: 1.0,
      high_freq_factor: 4.0, original_max_position_embeddings: 8192 } }, "v5");
    assert.equal(c.ropeTheta, 500000);
    assert.equal(c.ropeScaling?.type, "llama3");
    const d = parseHfConfig({ ...rest, rope_parameters: { rope_type: "default", rope_theta: 10000.0 } }, "v5");
    assert.equal(d.ropeScaling, null);
  });
  it("refuses other architectures, listing what is supported", () => {
    assert.throws(() => parseHfConfig({ model_type: "gpt2", architectures: ["GPT2LMHeadModel"] }, "/m/config.json"),
      /\/m\/config.json: model_type "gpt2" \(GPT2LMHeadModel\) is not supported; tsloth supports llama, mistral, qwen2, qwen3/);
    assert.throws(() => parseHfConfig({ ...LLAMA_31_8B, rope_scaling: { rope_type: "yarn", factor: 4 } }, "c"), /rope scaling "yarn" is not supported/);
    assert.throws(() => parseHfConfig({ ...LLAMA_31_8B, hidden_size: "big" }, "c"), /"hidden_size" must be a positive integer/);
    assert.throws(() => parseHfConfig({ ...LLAMA_31_8B, num_key_value_heads: 5 }, "c"), /multiple of num_key_value_heads/);
    assert.throws(() => parseHfConfig([], "c"), /expected a JSON object/);
  });
  it("reads a config.json from a directory and names a missing one", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsloth-cfg-"));
    assert.throws(() => readHfConfig(dir), /has no config.json/);
    writeFileSync(join(dir, "config.json"), JSON.stringify(QWEN3_8B));
    assert.equal(readHfConfig(dir).family, "qwen3");
    writeFileSync(join(dir, "config.json"), "{not json");
    assert.throws(() => readHfConfig(dir), /config.json: is not valid JSON/);
  });
});
