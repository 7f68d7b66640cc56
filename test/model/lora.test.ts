import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { loraParams, loraScale, peftLoraKey, resolveLoraOptions } from "../../lib/model/lora.js";
import { randomModel, tinyConfig } from "./random-model.js";

describe("LoRA adapters", () => {
  it("name weights as PEFT does", () => {
    assert.equal(peftLoraKey(3, "q", "A"), "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight");
    assert.equal(peftLoraKey(0, "down", "B"), "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight");
  });
  it("default to r 16, alpha 16 on all seven projections; accept _proj names", () => {
    const o = resolveLoraOptions({});
    assert.deepEqual([o.r, o.alpha, o.targets], [16, 16, ["q", "k", "v", "o", "gate", "up", "down"]]);
    assert.deepEqual(resolveLoraOptions({ targets: ["q_proj", "v"] }).targets, ["q", "v"]);
  });
  it("scale by alpha/r, or alpha/sqrt(r) with rsLoRA", () => {
    assert.equal(loraScale(resolveLoraOptions({ r: 16, alpha: 32 })), 2);
    assert.equal(loraScale(resolveLoraOptions({ r: 16, alpha: 32, rslora: true })), 8);
  });
  it("refuse a target the model does not have, listing the valid ones", () => {
    assert.throws(() => resolveLoraOptions({ targets: ["q", "lm_head"] }), /LoRA target "lm_head" is not a projection of this model; expected some of q, k, v, o, gate, up, down/);
  });
  it("initialize A like PEFT (uniform within ±1/sqrt(in)), B zero, deterministically from the seed", () => {
    const config = tinyConfig("llama");
    const make = (seed: number) => {
      const be = new CpuBackend();
      const m = randomModel(be, config, 1);
      m.attachLora({ r: 4, seed });
      return loraParams(m.lora!).params.map((p) => be.download(p));
    };
    const a = make(1), b = make(1), c = make(2);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    const bound = 1 / Math.sqrt(config.hiddenSize);
    assert.ok(a[0].every((x) => Math.abs(x) <= bound) && a[0].some((x) => x !== 0));
    assert.ok(a[1].every((x) => x === 0));
    assert.equal(a.length, 2 * 7 * config.numLayers);
  });
  it("account adapters and their gradients in the adapters category", () => {
    const be = new CpuBackend();
    const m = randomModel(be, tinyConfig("llama"), 1);
    const before = be.memory().current.adapters;
    m.attachLora({ r: 2, targets: ["q"] });
    // q: A [2,16] + B [16,2], twice (weights and gradients), per layer, f32.
    assert.equal(be.memory().current.adapters - before, 2 * 2 * (2 * 16 + 16 * 2) * 4);
  });
});
