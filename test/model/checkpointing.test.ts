import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { packSamples } from "../../lib/model/batch.js";
import type { CheckpointPolicy } from "../../lib/model/checkpoint-policy.js";
import { loraParams } from "../../lib/model/lora.js";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { backends } from "../ops/backends.js";
import { randomizeLoraB, randomModel, randomTokens, tinyConfig } from "./random-model.js";

for (const { name, make } of backends()) {
  describe(`gradient checkpointing on ${name}`, () => {
    const config = tinyConfig("llama", { num_hidden_layers: 4 });
    const T = 48;
    const batch = packSamples([{ ids: randomTokens(21, 30, config.vocabSize) }, { ids: randomTokens(22, T - 30, config.vocabSize) }]);

    async function run(policy: CheckpointPolicy, keepAttention = false) {
      const be = make();
      const model = randomModel(be, config, 23, "nf4");
      model.attachLora({ r: 4, alpha: 8, seed: 24 });
      randomizeLoraB(be, model, 25);
      be.resetPeak();
      const before = be.memory().current;
      const res = await model.forwardBackward(batch, policy, 1 / 40, { keepAttention });
      const mem = be.memory();
      const grads = loraParams(model.lora!).grads.map((g) => be.download(g));
      return { res, grads, peak: mem.peak, before, after: mem.current };
    }

    it("off, true and unsloth give the same loss and the same LoRA gradients", async () => {
      const off = await run("off"), full = await run("true"), unsloth = await run("unsloth");
      for (const other of [full, unsloth]) {
        assert.equal(other.res.lossSum, off.res.lossSum);
        other.grads.forEach((g, k) => assert.deepEqual(g, off.grads[k]));
      }
      assert.ok(off.grads.some((g) => g.some((x) => x !== 0)));
    });

    it("activation memory follows theory: off keeps every layer, true keeps layer inputs, unsloth keeps them on the host", async () => {
      const off = await run("off"), full = await run("true"), unsloth = await run("unsloth");
      const layerInputBytes = T * config.hiddenSize * 4;
      const L = config.numLayers;
      // Every run returns to where it started: nothing leaks.
      for (const r of [off, full, unsloth]) assert.deepEqual(r.after, r.before);
      // true: L layer inputs stay on the device, plus one layer's activations at a time.
      // off: every layer's activations. The difference is at least (L − 1) layers' worth.
      assert.ok(off.peak.activations > full.peak.activations + (L - 1) * 4 * layerInputBytes,
        `off ${off.peak.activations} vs true ${full.peak.activations}`);
      // unsloth: the L − 1 other layer inputs live in host memory instead of on the device.
      assert.ok(unsloth.peak.activations <= full.peak.activations - (L - 2) * layerInputBytes,
        `unsloth ${unsloth.peak.activations} vs true ${full.peak.activations}`);
      assert.equal(unsloth.peak.offload_host, L * layerInputBytes);
      assert.equal(full.peak.offload_host, 0);
      assert.equal(off.peak.offload_host, 0);
      console.log(`activation peak bytes: off ${off.peak.activations}, true ${full.peak.activations}, unsloth ${unsloth.peak.activations} (+ host ${unsloth.peak.offload_host})`);
    });

    it("unsloth keeping attention outputs: same loss and gradients, attention outputs on the host, no attention forward in backward", async () => {
      const plain = await run("unsloth");
      let attentionCalls = 0;
      const counting = make();
      const attention = counting.attention.bind(counting);
      counting.attention = (...args) => { attentionCalls++; return attention(...args); };
      const model = randomModel(counting, config, 23, "nf4");
      model.attachLora({ r: 4, alpha: 8, seed: 24 });
      randomizeLoraB(counting, model, 25);
      counting.resetPeak();
      const before = counting.memory().current;
      const res = await model.forwardBackward(batch, "unsloth", 1 / 40, { keepAttention: true });
      const grads = loraParams(model.lora!).grads.map((g) => counting.download(g));
      assert.equal(res.lossSum, plain.res.lossSum);
      grads.forEach((g, k) => assert.deepEqual(g, plain.grads[k]));
      assert.equal(attentionCalls, config.numLayers, "one attention forward per layer, none in the recompute");
      const { hiddenSize, numHeads, headDim, numLayers: L } = config;
      // Per layer: the input, the attention output [T, heads·D] and its f32 log-sum-exp [heads, T].
      assert.equal(counting.memory().peak.offload_host, L * T * (hiddenSize + numHeads * headDim + numHeads) * 4);
      assert.deepEqual(counting.memory().current, before, "nothing leaks");
    });
  });
}

describe("unsloth checkpointing on short micro-batches", () => {
  it("keeps layer inputs on the device below the backend's offloadMinBytes", async () => {
    const config = tinyConfig("llama");
    class ShortSkippingBackend extends CpuBackend {
      readonly offloadMinBytes = 100 * config.hiddenSize * 4; // 100 tokens of f32 layer input
    }
    const be = new ShortSkippingBackend();
    const model = randomModel(be, config, 31, "nf4");
    model.attachLora({ r: 2, seed: 32 });
    await model.forwardBackward(packSamples([{ ids: randomTokens(33, 20, config.vocabSize) }]), "unsloth", 1);
    assert.equal(be.memory().peak.offload_host, 0);
    await model.forwardBackward(packSamples([{ ids: randomTokens(34, 120, config.vocabSize) }]), "unsloth", 1);
    assert.ok(be.memory().peak.offload_host > 0);
  });
});
