import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { SafetensorsReader } from "../../lib/formats/safetensors-reader.js";
import { loadLlamaModel } from "../../lib/model/load-model.js";
import { saveMerged } from "../../lib/save/index.js";
import { randomizeLoraB, randomModel, tinyConfig } from "../model/random-model.js";
import { maxAbs, maxAbsDiff, scratchDir } from "./save-fixtures.js";

describe("merged saves of every supported family, from a model built in memory", () => {
  for (const family of ["qwen2", "qwen3"] as const) {
    it(`${family}: biases, q/k norms and an untied LM head come from the backend and reload with the trained outputs`, async () => {
      const be = new CpuBackend();
      const config = tinyConfig(family);
      const engine = randomModel(be, config, 5, "nf4");
      engine.attachLora({ r: 4, alpha: 8, seed: 2 });
      randomizeLoraB(be, engine, 3);
      const dir = join(scratchDir(family), "out");
      const summary = await saveMerged({ config, engine }, { dir, physicalCpus: 2 });
      assert.match(summary.baseSource, /dequantized/);
      const reader = SafetensorsReader.open(dir);
      const names = reader.names();
      reader.close();
      if (family === "qwen2") {
        assert.ok(names.includes("model.layers.0.self_attn.q_proj.bias") && names.includes("lm_head.weight"), "biases and the untied head are saved");
      } else assert.ok(names.includes("model.layers.1.self_attn.k_norm.weight"), "Qwen3's q/k norms are saved");
      const ids = Int32Array.from([3, 9, 27, 1, 14, 30]);
      const before = engine.lastTokenLogits(ids);
      const after = loadLlamaModel(new CpuBackend(), dir, { linears: "dense" }).lastTokenLogits(ids);
      assert.ok(maxAbsDiff(before, after) < 0.02 * maxAbs(before), `${family}: merged logits differ by ${maxAbsDiff(before, after)}`);
    });
  }
});
