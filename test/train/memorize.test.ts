// Training then greedy decoding, end to end on a random 4-bit model whose every token embedding is
// distinct: the completions it was taught come back token for token.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { argmax, greedyDecode } from "../../lib/infer/greedy.js";
import { createTrainingState, trainLoop } from "../../lib/train/trainer.js";
import { randomModel, randomTokens, tinyConfig } from "../model/random-model.js";

describe("LoRA training + greedy decoding", () => {
  it("reproduces taught completions after their prompts", async () => {
    const config = tinyConfig("llama");
    const be = new CpuBackend();
    const model = randomModel(be, config, 1, "nf4");
    model.attachLora({ r: 8, alpha: 16, seed: 2 });
    const seqs = [0, 1, 2].map((i) => randomTokens(50 + i, 12, config.vocabSize));
    const samples = seqs.map((ids, i) => ({ ids, targetMask: ids.map((_, t) => t >= 4), line: i + 1 }));
    const untrained = await greedyDecode(model, seqs[0].slice(0, 4), { maxNewTokens: 8, eosTokenIds: [] });
    assert.notDeepEqual(untrained, seqs[0].slice(4));
    const s = await trainLoop(model, samples, createTrainingState(model, 0), {
      steps: 60, batchSize: 3, gradAccum: 1, lr: 2e-2, schedule: "linear", warmup: 0, checkpoint: "unsloth",
      packing: false, maxSeqLength: 64, seed: 1, clip: 1, weightDecay: 0,
    });
    assert.ok(s.finalLoss < 0.1 * s.firstLoss, `loss ${s.firstLoss} → ${s.finalLoss}`);
    for (const sq of seqs) assert.deepEqual(await greedyDecode(model, sq.slice(0, 4), { maxNewTokens: 8, eosTokenIds: [] }), sq.slice(4));
  });

  it("stops at an end-of-sequence token and includes it", async () => {
    const config = tinyConfig("llama");
    const model = randomModel(new CpuBackend(), config, 3);
    const prompt = randomTokens(4, 5, config.vocabSize);
    const free = await greedyDecode(model, prompt, { maxNewTokens: 6, eosTokenIds: [] });
    const stopped = await greedyDecode(model, prompt, { maxNewTokens: 6, eosTokenIds: [free[2]] });
    assert.deepEqual(stopped, free.slice(0, free.indexOf(free[2]) + 1));
  });

  it("argmax picks the first maximum", () => {
    assert.equal(argmax(Float32Array.from([1, 3, 3, 2])), 1);
  });
});
