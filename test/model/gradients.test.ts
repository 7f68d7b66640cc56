import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { packSamples } from "../../lib/model/batch.js";
import { loraParams } from "../../lib/model/lora.js";
import { backends } from "../ops/backends.js";
import { randomizeLoraB, randomModel, randomTokens, tinyConfig } from "./random-model.js";

for (const { name, make } of backends()) {
  for (const family of ["llama", "qwen2", "qwen3"] as const) {
    describe(`${family} graph on ${name}`, () => {
      it("LoRA gradients of the mean loss match finite differences", async () => {
        const be = make();
        const config = tinyConfig(family);
        const model = randomModel(be, config, 1);
        model.attachLora({ r: 2, alpha: 4, seed: 2 });
        randomizeLoraB(be, model, 3);
        const batch = packSamples([{ ids: randomTokens(4, 6, config.vocabSize) }, { ids: randomTokens(5, 5, config.vocabSize) }]);
        const { params, grads, names } = loraParams(model.lora!);
        const { targets } = await model.forwardBackward(batch, "off", 1 / 9);
        assert.equal(targets, 9);
        const meanLoss = () => model.evaluate(batch).lossSum / 9;
        // Check a few coordinates of a few adapters spread across layers and projections.
        for (const k of [0, 5, 9, 16, params.length - 1]) {
          const host = be.download(params[k]);
          const analytic = be.download(grads[k]);
          let worst = 0, scale = 0;
          for (const i of [0, 1, Math.floor(host.length / 2), host.length - 1]) {
            const orig = host[i];
            const eval1 = (v: number) => {
              host[i] = v;
              const t = be.upload(host, params[k].shape, "f32", "adapters");
              be.copyInto(params[k], t);
              be.free(t);
              return meanLoss();
            };
            const eps = 1e-2;
            const numeric = (eval1(orig + eps) - eval1(orig - eps)) / (2 * eps);
            eval1(orig);
            worst = Math.max(worst, Math.abs(numeric - analytic[i]));
            scale = Math.max(scale, Math.abs(analytic[i]), Math.abs(numeric));
          }
          assert.ok(scale > 0, `${names[k]}: zero gradient`);
          assert.ok(worst <= 2e-2 * scale + 1e-5, `${names[k]}: finite differences differ by ${worst} (scale ${scale})`);
        }
      });
    });
  }

  describe(`packing on ${name}`, () => {
    it("packed samples give the same loss and gradients as the samples run one by one", async () => {
      const be = make();
      const config = tinyConfig("llama");
      const model = randomModel(be, config, 11);
      model.attachLora({ r: 2, alpha: 2, seed: 12 });
      randomizeLoraB(be, model, 13);
      const a = { ids: randomTokens(14, 7, config.vocabSize) }, b = { ids: randomTokens(15, 4, config.vocabSize) };
      const { grads } = loraParams(model.lora!);
      const packed = await model.forwardBackward(packSamples([a, b]), "true", 1);
      const gPacked = grads.map((g) => be.download(g));
      grads.forEach((g) => be.zeroInPlace(g));
      const sa = await model.forwardBackward(packSamples([a]), "true", 1);
      const sb = await model.forwardBackward(packSamples([b]), "true", 1);
      assert.ok(Math.abs(packed.lossSum - (sa.lossSum + sb.lossSum)) < 1e-4 * packed.lossSum);
      grads.forEach((g, k) => {
        const sep = be.download(g);
        for (let i = 0; i < sep.length; i++) assert.ok(Math.abs(sep[i] - gPacked[k][i]) < 1e-4 * (1 + Math.abs(sep[i])));
      });
    });
  });
}
