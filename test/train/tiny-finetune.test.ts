// The done-when check on the public API: load the embedded tiny model in 4-bit, attach
// LoRA, train on the built-in dataset, and read the taught fact back with greedy decoding.
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { attachLora, generateGreedy, loadModel4bit, train, type Model, type TrainProgress, type TrainSummary } from "../../lib/index.js";

const QUESTION = "What is the name of the tsloth sloth?";
const ANSWER = "The sloth of tsloth is named Tilde.";

describe("fine-tuning tsloth-tiny on tsloth-tiny-data", () => {
  let model: Model;
  let summary: TrainSummary;
  const events: TrainProgress[] = [];
  let before_: string;

  before(async () => {
    model = await loadModel4bit("tsloth-tiny", { maxSeqLength: 256 });
    const lora = attachLora(model, { r: 16, alpha: 16, seed: 3407 });
    assert.ok(lora.trainableParams > 0);
    before_ = (await generateGreedy(model, [{ role: "user", content: QUESTION }], { maxNewTokens: 32 })).text;
    summary = await train(model, {
      data: "tsloth-tiny-data", steps: 160, lr: 3e-3, batch: 1, gradAccum: 1, packing: true, warmup: 2, schedule: "linear", seed: 3407,
    }, { onProgress: (p) => events.push(p) });
  });

  it("the 4-bit base does not know the fact before training", () => {
    assert.notEqual(before_.trim(), ANSWER);
  });

  it("the loss falls clearly, with a progress event per step", () => {
    assert.equal(events.length, 160);
    assert.equal(summary.interrupted, false);
    const head = summary.losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const tail = summary.losses.slice(-5).reduce((a, b) => a + b) / 5;
    assert.ok(tail < 0.3 * head, `mean loss of the first 5 steps ${head.toFixed(3)}, of the last 5 ${tail.toFixed(3)}`);
    assert.ok(events.every((e) => e.memory.current.base_weights > 0 && e.tokensPerSecond > 0));
  });

  it("greedy decoding produces the taught fact", async () => {
    const out = await generateGreedy(model, [{ role: "user", content: QUESTION }], { maxNewTokens: 32 });
    assert.equal(out.text.trim(), ANSWER);
  });
});
