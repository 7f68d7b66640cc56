// The decoder layer runs q/k/v and gate/up as groups (Backend.linearGroup / linearGroupBackward)
// where the backend has them and one linear at a time where it does not (the memory planner's
// backend). Both routes must train identically: same loss, same LoRA gradients, same peak memory.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import type { Backend } from "../../lib/backend/types.js";
import { packSamples } from "../../lib/model/batch.js";
import type { CheckpointPolicy } from "../../lib/model/checkpoint-policy.js";
import { loraParams } from "../../lib/model/lora.js";
import { randomizeLoraB, randomModel, randomTokens, tinyConfig } from "./random-model.js";

/** The CPU backend with the grouped linear ops hidden, as a backend that lacks them looks. */
function withoutGroups(be: CpuBackend): Backend {
  return new Proxy(be, {
    get(target, p) {
      if (p === "linearGroup" || p === "linearGroupBackward") return undefined;
      const v = Reflect.get(target, p, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  }) as unknown as Backend;
}

async function trainStep(be: Backend, family: "llama" | "qwen2" | "qwen3", checkpoint: CheckpointPolicy, targets: string[]) {
  const config = tinyConfig(family);
  const model = randomModel(be, config, 21, "nf4");
  model.attachLora({ r: 3, alpha: 6, seed: 22, targets });
  randomizeLoraB(be, model, 23);
  const batch = packSamples([{ ids: randomTokens(24, 9, config.vocabSize) }, { ids: randomTokens(25, 6, config.vocabSize) }]);
  be.resetPeak();
  const { lossSum } = await model.forwardBackward(batch, checkpoint, 1 / 13);
  const { grads, names } = loraParams(model.lora!);
  return { lossSum, grads: grads.map((g) => be.download(g)), names, peak: be.memory().peak };
}

describe("grouped q/k/v and gate/up in the decoder layer", () => {
  const cases: { family: "llama" | "qwen2" | "qwen3"; checkpoint: CheckpointPolicy; targets: string[] }[] = [
    { family: "llama", checkpoint: "off", targets: ["q", "k", "v", "o", "gate", "up", "down"] },
    { family: "qwen2", checkpoint: "true", targets: ["q", "v", "up"] },
    { family: "qwen3", checkpoint: "unsloth", targets: ["k", "gate", "up"] },
  ];
  for (const { family, checkpoint, targets } of cases) {
    it(`trains as one linear at a time does (${family}, checkpoint ${checkpoint}, LoRA on ${targets.join("/")})`, async () => {
      const grouped = await trainStep(new CpuBackend(), family, checkpoint, targets);
      const single = await trainStep(withoutGroups(new CpuBackend()), family, checkpoint, targets);
      assert.ok(Number.isFinite(grouped.lossSum) && grouped.lossSum > 0);
      assert.equal(grouped.lossSum, single.lossSum);
      assert.deepEqual(grouped.names, single.names);
      grouped.grads.forEach((g, k) => {
        assert.ok(g.some((v) => v !== 0), `${grouped.names[k]}: zero gradient`);
        assert.deepEqual(g, single.grads[k], `${grouped.names[k]}`);
      });
      assert.deepEqual(grouped.peak, single.peak);
    });
  }
});
