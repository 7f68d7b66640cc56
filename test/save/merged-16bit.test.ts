import assert from "node:assert/strict";
import { cpSync, existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { bf16ToF32, f32ToBf16 } from "../../lib/formats/dtype.js";
import { SafetensorsReader } from "../../lib/formats/safetensors-reader.js";
import { loadModel4bit, resolveModelDir } from "../../lib/index.js";
import { saveMerged } from "../../lib/save/index.js";
import { maxAbs, maxAbsDiff, PROBE_IDS, scratchDir, trainedTinyModel } from "./save-fixtures.js";

async function reload(dir: string) {
  return loadModel4bit(dir, { backend: new CpuBackend(), loadIn4bit: false });
}

describe("merged_16bit", () => {
  it("reloads with the outputs of the trained 16-bit-base model within bf16 tolerance", async () => {
    const model = await trainedTinyModel({ loadIn4bit: false, seed: 11 });
    const dir = join(scratchDir("m16"), "out");
    const summary = await saveMerged(model, { dir, physicalCpus: 2 });
    assert.match(summary.baseSource, /original shards/);
    const before = model.engine.lastTokenLogits(PROBE_IDS);
    const after = (await reload(dir)).engine.lastTokenLogits(PROBE_IDS);
    const base = (await reload(resolveModelDir("tsloth-tiny"))).engine.lastTokenLogits(PROBE_IDS);
    assert.ok(maxAbsDiff(before, base) > 0.2, "the LoRA changes the outputs (B is non-zero)");
    assert.ok(maxAbsDiff(before, after) < 0.02 * maxAbs(before), `merged logits differ by ${maxAbsDiff(before, after)}`);
  });

  it("merges dequantized NF4 when the original shards are not on disk, matching the trained 4-bit model", async () => {
    const root = scratchDir("m16nf4");
    cpSync(resolveModelDir("tsloth-tiny"), join(root, "base"), { recursive: true });
    const model = await trainedTinyModel({ loadIn4bit: true, seed: 12, dir: join(root, "base") });
    rmSync(join(root, "base", "model.safetensors"));
    const dir = join(root, "out");
    const summary = await saveMerged(model, { dir, physicalCpus: 2 });
    assert.match(summary.baseSource, /4-bit weights, dequantized/);
    const before = model.engine.lastTokenLogits(PROBE_IDS);
    const after = (await reload(dir)).engine.lastTokenLogits(PROBE_IDS);
    assert.ok(maxAbsDiff(before, after) < 0.02 * maxAbs(before), `merged logits differ by ${maxAbsDiff(before, after)}`);
  });

  it("writes base + scale·B·A in fp32, rounded once to the model dtype", async () => {
    const model = await trainedTinyModel({ loadIn4bit: false, seed: 13 });
    const dir = join(scratchDir("exact"), "out");
    await saveMerged(model, { dir, physicalCpus: 2 });
    const be = model.backend, slot = model.engine.lora!.byLayer[1]!.down!;
    const a = be.download(slot.adapter.a), b = be.download(slot.adapter.b);
    const [out, r] = slot.adapter.b.shape as [number, number], inF = slot.adapter.a.shape[1]!;
    const src = SafetensorsReader.open(resolveModelDir("tsloth-tiny"));
    const w = src.readF32("model.layers.1.mlp.down_proj.weight");
    src.close();
    const expected = new Float32Array(out * inF);
    for (let i = 0; i < out; i++) for (let j = 0; j < inF; j++) {
      let d = 0;
      for (let k = 0; k < r; k++) d += b[i * r + k]! * a[k * inF + j]!;
      expected[i * inF + j] = w[i * inF + j]! + slot.adapter.scale * d;
    }
    const saved = SafetensorsReader.open(dir);
    const info = saved.info("model.layers.1.mlp.down_proj.weight");
    assert.equal(info.dtype, "BF16");
    const got = saved.readF32(info.name);
    saved.close();
    const rounded = bf16ToF32(f32ToBf16(expected));
    let mismatches = 0;
    for (let i = 0; i < got.length; i++) if (got[i] !== rounded[i]) mismatches++;
    // fp32 summation order may move a handful of values across a bf16 rounding boundary.
    assert.ok(mismatches <= got.length * 0.002, `${mismatches} of ${got.length} values differ from round(W + scale·B·A)`);
  });

  it("writes a normal Hugging Face checkpoint: config without quantization, tokenizer, generation config, shards and index", async () => {
    const model = await trainedTinyModel({ loadIn4bit: true });
    const dir = join(scratchDir("layout"), "out");
    const summary = await saveMerged(model, { dir, maxShardSize: "100KB", physicalCpus: 2 });
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    assert.equal(config.quantization_config, undefined);
    assert.equal(config.model_type, "llama");
    for (const f of ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "model.safetensors.index.json"])
      assert.ok(existsSync(join(dir, f)), `${f} is saved`);
    const index = JSON.parse(readFileSync(join(dir, "model.safetensors.index.json"), "utf8"));
    const shards = [...new Set(Object.values(index.weight_map as Record<string, string>))].sort();
    assert.ok(shards.length >= 3, "100KB shards split the tiny model");
    for (const s of shards) assert.match(s, /^model-\d{5}-of-\d{5}\.safetensors$/);
    assert.ok(!("lm_head.weight" in index.weight_map), "the tied LM head is not saved, as transformers does");
    const reader = SafetensorsReader.open(dir);
    const biggest = Math.max(...reader.names().map((n) => reader.info(n).byteLength));
    reader.close();
    for (const s of shards) assert.ok(statSync(join(dir, s)).size <= 100_000 + biggest + 4096, `${s} respects max_shard_size`);
    assert.equal(summary.files.length, shards.length + 6, "shards, index, config, generation config and 3 tokenizer files");
    assert.equal(summary.bytes, summary.files.reduce((n, f) => n + statSync(f).size, 0));
  });

  it("writes identical files through both serialization paths", async () => {
    const model = await trainedTinyModel({ loadIn4bit: false });
    const root = scratchDir("paths");
    const sync = await saveMerged(model, { dir: join(root, "a"), maxShardSize: "60KB", serialization: "positioned" });
    const overlapped = await saveMerged(model, { dir: join(root, "b"), maxShardSize: "60KB", serialization: "overlapped" });
    assert.deepEqual([sync.serialization, overlapped.serialization], ["positioned", "overlapped"]);
    for (const f of sync.files) {
      const name = f.slice(f.lastIndexOf("/") + 1);
      assert.deepEqual(readFileSync(join(root, "b", name)), readFileSync(f), `${name} is the same on both paths`);
    }
  });

  it("with two physical CPUs or fewer picks the path measured cheapest and says so in one line", async () => {
    const model = await trainedTinyModel({ loadIn4bit: false });
    const root = scratchDir("cpus");
    const one = await saveMerged(model, { dir: join(root, "one"), physicalCpus: 1 });
    const two = await saveMerged(model, { dir: join(root, "two"), physicalCpus: 2 });
    const many = await saveMerged(model, { dir: join(root, "many"), physicalCpus: 16 });
    assert.equal(one.serialization, "positioned");
    assert.equal(two.serialization, "overlapped");
    assert.equal(many.serialization, "overlapped");
    for (const s of [one, two]) assert.equal(s.lines.filter((l) => /physical CPUs?: .*the cheapest path measured/.test(l)).length, 1, s.lines.join("\n"));
    assert.ok(!many.lines.some((l) => /cheapest/.test(l)));
  });
});
