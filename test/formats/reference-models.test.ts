// tsloth against transformers and the safetensors package (test/py/check_formats_models.py).
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dtypeSize, TENSOR_DTYPES } from "../../lib/formats/dtype.js";
import { readHfConfig } from "../../lib/formats/hf-config.js";
import { SafetensorsReader } from "../../lib/formats/safetensors-reader.js";
import { ShardedSafetensorsWriter, writeSafetensorsFile, type TensorToWrite } from "../../lib/formats/safetensors-writer.js";
import { referenceSkip, runReference } from "./reference-python.js";

const skip = referenceSkip(["torch", "transformers", "safetensors"]);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const f32Sha = (a: Float32Array) => sha(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));

interface Expected {
  config: Record<string, unknown>;
  ropeTheta: number;
  tensors: Record<string, { dtype: string; shape: number[]; sha256: string; f32_sha256: string }>;
  sharded: boolean;
}

describe("models saved by transformers", { skip }, () => {
  const out = mkdtempSync(join(tmpdir(), "tsloth-ref-models-"));
  before(() => {
    runReference("check_formats_models.py", ["make", out]);
  });

  for (const name of ["llama", "llama-sharded", "mistral", "qwen2", "qwen3"]) {
    it(`reads ${name} with identical tensors and config`, () => {
      const dir = join(out, name);
      const expected = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as Expected;
      const config = readHfConfig(dir);
      for (const [k, v] of Object.entries(expected.config)) assert.equal((config as unknown as Record<string, unknown>)[k], v, `config ${k}`);
      assert.equal(config.ropeTheta, expected.ropeTheta);
      if (name === "llama")
        assert.deepEqual(config.ropeScaling, { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 32 });
      const r = SafetensorsReader.open(dir);
      assert.equal(r.info(r.names()[0]!).file.endsWith(".safetensors"), true);
      assert.equal(readdirSync(dir).includes("model.safetensors.index.json"), expected.sharded);
      assert.deepEqual(new Set(r.names()), new Set(Object.keys(expected.tensors)));
      for (const [t, want] of Object.entries(expected.tensors)) {
        const info = r.info(t);
        assert.equal(info.dtype, want.dtype, t);
        assert.deepEqual(info.shape, want.shape, t);
        assert.equal(sha(r.readRaw(t)), want.sha256, `${t} bytes`);
        assert.equal(f32Sha(r.readF32(t)), want.f32_sha256, `${t} as f32 equals torch's .float()`);
      }
      r.close();
    });
  }

  it("writes files the safetensors package reads, and a sharded model transformers loads", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsloth-ref-written-"));
    const files: { file: string; metadata: Record<string, string>; tensors: Record<string, { dtype: string; shape: number[]; sha256: string }> }[] = [];
    // One file with every dtype.
    const tensors: TensorToWrite[] = TENSOR_DTYPES.filter((d) => d !== "BOOL").map((dtype, i) => {
      const shape = [i + 1, 3];
      const data = new Uint8Array(shape[0]! * 3 * dtypeSize(dtype)).map(() => Math.floor(Math.random() * 256));
      // Keep float8 bytes away from NaN encodings, which torch may canonicalize.
      if (dtype.startsWith("F8")) data.forEach((b, j) => (data[j] = b & 0x3f));
      return { name: `t_${dtype}`, dtype, shape, data };
    });
    tensors.push({ name: "t_BOOL", dtype: "BOOL", shape: [5], data: Uint8Array.of(0, 1, 1, 0, 1) });
    writeSafetensorsFile(join(dir, "all-dtypes.safetensors"), tensors, { format: "pt", written_by: "tsloth" });
    files.push({ file: "all-dtypes.safetensors", metadata: { format: "pt", written_by: "tsloth" },
      tensors: Object.fromEntries(tensors.map((t) => [t.name, { dtype: t.dtype, shape: t.shape, sha256: sha(t.data) }])) });
    // The transformers Llama re-written by tsloth in shards of 20 KB.
    const src = join(out, "llama");
    const modelDir = join(dir, "llama-by-tsloth");
    const r = SafetensorsReader.open(src);
    const w = new ShardedSafetensorsWriter(modelDir, { maxShardSize: "20KB" });
    const hfTensors: Record<string, string> = {};
    for (const name of r.names()) {
      const info = r.info(name);
      const bytes = r.readRaw(name);
      w.add(name, info.dtype, info.shape, bytes);
      hfTensors[name] = sha(bytes);
    }
    r.close();
    const { files: shards } = w.finish();
    assert.ok(shards.length > 1);
    copyFileSync(join(src, "config.json"), join(modelDir, "config.json"));
    const rr = SafetensorsReader.open(modelDir);
    for (const shard of shards) {
      const file = shard.slice(dir.length + 1);
      const names = rr.names().filter((n) => rr.info(n).file === shard);
      files.push({ file, metadata: { format: "pt" },
        tensors: Object.fromEntries(names.map((n) => [n, { dtype: rr.info(n).dtype, shape: rr.info(n).shape, sha256: sha(rr.readRaw(n)) }])) });
    }
    rr.close();
    writeFileSync(join(dir, "manifest.json"), JSON.stringify({ files, hf_model_dir: "llama-by-tsloth", hf_model_tensors: hfTensors }));
    const stdout = runReference("check_formats_models.py", ["verify", dir]);
    assert.match(stdout, /verified \d+ files and a sharded model/);
  });
});
