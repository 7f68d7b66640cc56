import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { SafetensorsReader } from "../../lib/formats/safetensors-reader.js";
import { loadModel4bit } from "../../lib/index.js";
import { peftLoraKey } from "../../lib/model/lora.js";
import { saveLora, saveMerged } from "../../lib/save/index.js";
import { maxAbs, maxAbsDiff, PROBE_IDS, scratchDir, trainedTinyModel, visibleEntries } from "./save-fixtures.js";

describe("lora", () => {
  it("writes a PEFT adapter: PEFT's config fields and key names, no adapter name in the keys, exact fp32 values", async () => {
    const model = await trainedTinyModel({ loadIn4bit: true, targets: ["q", "v", "down"] });
    const dir = join(scratchDir("lora"), "adapter");
    const summary = await saveMerged(model, { dir, method: "lora" });
    assert.equal(summary.method, "lora");
    const config = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
    assert.deepEqual(
      { peft_type: config.peft_type, task_type: config.task_type, r: config.r, lora_alpha: config.lora_alpha, use_rslora: config.use_rslora,
        bias: config.bias, fan_in_fan_out: config.fan_in_fan_out, lora_dropout: config.lora_dropout, target_modules: config.target_modules },
      { peft_type: "LORA", task_type: "CAUSAL_LM", r: 4, lora_alpha: 8, use_rslora: false, bias: "none", fan_in_fan_out: false, lora_dropout: 0,
        target_modules: ["q_proj", "v_proj", "down_proj"] });
    assert.equal(config.base_model_name_or_path, model.dir);
    const reader = SafetensorsReader.open(join(dir, "adapter_model.safetensors"));
    assert.equal(reader.names().length, 2 * 3 * 2);
    assert.ok(reader.names().every((n) => /^base_model\.model\.model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.lora_[AB]\.weight$/.test(n)));
    assert.ok(!reader.names().some((n) => n.includes(".default")));
    const slot = model.engine.lora!.byLayer[1]!.down!;
    assert.deepEqual(reader.readF32(peftLoraKey(1, "down", "B")), model.backend.download(slot.adapter.b));
    assert.deepEqual(reader.info(peftLoraKey(1, "down", "A")).shape, [4, 192]);
    reader.close();
    assert.ok(visibleEntries(dir).includes("tokenizer.json"), "tokenizer files travel with the adapter");
  });

  it("saveLora is the same save as method lora, and refuses a model without adapters", async () => {
    const model = await trainedTinyModel({ loadIn4bit: true });
    const root = scratchDir("lora2");
    await saveLora(model, { dir: join(root, "a") });
    await saveMerged(model, { dir: join(root, "b"), method: "lora" });
    assert.deepEqual(readFileSync(join(root, "a", "adapter_model.safetensors")), readFileSync(join(root, "b", "adapter_model.safetensors")));
    const bare = await loadModel4bit("tsloth-tiny", { backend: new CpuBackend() });
    await assert.rejects(saveLora(bare, { dir: join(root, "c") }), /no LoRA adapters to save; attach them with %lora/);
  });
});

describe("merged_4bit (forced)", () => {
  it("writes bitsandbytes 4-bit weights with HF's quantization_config, and reloads close to the merged model", async () => {
    const model = await trainedTinyModel({ loadIn4bit: true, seed: 31 });
    const root = scratchDir("m4");
    const summary = await saveMerged(model, { dir: join(root, "out"), method: "merged_4bit", force: true, temporaryLocation: join(root, "tmp"), maxShardSize: "60KB" });
    assert.deepEqual(visibleEntries(join(root, "tmp")), [], "scratch shards are moved out of the temporary location");
    const config = JSON.parse(readFileSync(join(root, "out", "config.json"), "utf8"));
    assert.equal(config.quantization_config.quant_method, "bitsandbytes");
    assert.equal(config.quantization_config.load_in_4bit, true);
    assert.equal(config.quantization_config.bnb_4bit_quant_type, "nf4");
    assert.equal(config.quantization_config.bnb_4bit_use_double_quant, true);
    const reader = SafetensorsReader.open(join(root, "out"));
    const q = "model.layers.0.self_attn.q_proj.weight";
    for (const suffix of ["", ".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ".quant_state.bitsandbytes__nf4"])
      assert.ok(reader.has(q + suffix), `${q}${suffix} is saved`);
    assert.equal(reader.info("model.embed_tokens.weight").dtype, "BF16");
    reader.close();
    assert.ok(summary.files.some((f) => f.endsWith("model.safetensors.index.json")));
    await saveMerged(model, { dir: join(root, "m16") });
    const merged16 = (await loadModel4bit(join(root, "m16"), { backend: new CpuBackend(), loadIn4bit: false })).engine.lastTokenLogits(PROBE_IDS);
    const reloaded = (await loadModel4bit(join(root, "out"), { backend: new CpuBackend() })).engine.lastTokenLogits(PROBE_IDS);
    const requantized = (await loadModel4bit(join(root, "m16"), { backend: new CpuBackend() })).engine.lastTokenLogits(PROBE_IDS);
    // tsloth's 4-bit load of the merged 16-bit model quantizes the same way: the 4-bit save must equal it.
    assert.ok(maxAbsDiff(reloaded, requantized) < 1e-3 * maxAbs(requantized), `4-bit save vs 4-bit load: ${maxAbsDiff(reloaded, requantized)}`);
    const base4 = (await loadModel4bit("tsloth-tiny", { backend: new CpuBackend() })).engine.lastTokenLogits(PROBE_IDS);
    assert.ok(maxAbsDiff(reloaded, base4) > 0.2, "the 4-bit save carries the LoRA delta");
    assert.ok(maxAbsDiff(merged16, base4) > 0.2);
  });
});
