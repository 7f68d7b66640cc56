import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { loraParams } from "../../lib/model/lora.js";
import type { TokenSample } from "../../lib/train/tokenize-records.js";
import { createTrainingState, trainLoop, type TrainLoopOptions } from "../../lib/train/trainer.js";
import { loadTrainingCheckpoint, saveTrainingCheckpoint } from "../../lib/train/training-checkpoint.js";
import { AdamWState } from "../../lib/train/optimizer.js";
import type { TrainProgress } from "../../lib/train/progress.js";
import { planTrainingStep } from "../../lib/memory/estimate-plan.js";
import { randomModel, randomTokens, tinyConfig } from "../model/random-model.js";

const config = tinyConfig("llama");
/** Six short sequences; the loss covers the second half of each (a prompt/answer split). */
const samples: TokenSample[] = Array.from({ length: 6 }, (_, i) => {
  const ids = randomTokens(100 + i, 10, config.vocabSize);
  return { ids, targetMask: ids.map((_, t) => t >= 5), line: i + 1 };
});
const base: TrainLoopOptions = {
  steps: 6, batchSize: 1, gradAccum: 2, lr: 2e-2, schedule: "linear", warmup: 1, checkpoint: "unsloth",
  packing: false, maxSeqLength: 64, seed: 5, clip: 1, weightDecay: 0,
};

function fresh() {
  const be = new CpuBackend();
  const model = randomModel(be, config, 1, "nf4");
  model.attachLora({ r: 4, alpha: 8, seed: 9 });
  return { be, model, state: createTrainingState(model, 0) };
}

function adapterValues(m: ReturnType<typeof fresh>) {
  return loraParams(m.model.lora!).params.map((p) => m.be.download(p));
}

describe("trainer", () => {
  it("lowers the loss on a small memorization task and reports progress every step", async () => {
    const m = fresh();
    const events: TrainProgress[] = [];
    const s = await trainLoop(m.model, samples, m.state, { ...base, steps: 25, lr: 5e-2 }, { onProgress: (p) => events.push(p) });
    assert.equal(s.steps, 25);
    assert.equal(events.length, 25);
    assert.ok(s.finalLoss < 0.5 * s.firstLoss, `loss ${s.firstLoss} → ${s.finalLoss}`);
    const last = events[24];
    assert.equal(last.step, 25);
    assert.equal(last.totalSteps, 25);
    assert.ok(last.tokensPerSecond > 0 && last.memory.current.adapters > 0 && last.memory.current.optimizer > 0);
    assert.equal(events[0].lr, 0); // warmup starts at zero
  });

  it("is deterministic: the same seed gives the same losses and adapters", async () => {
    const a = fresh(), b = fresh();
    const sa = await trainLoop(a.model, samples, a.state, base);
    const sb = await trainLoop(b.model, samples, b.state, base);
    assert.deepEqual(sa.losses, sb.losses);
    assert.deepEqual(adapterValues(a), adapterValues(b));
    const c = fresh();
    const sc = await trainLoop(c.model, samples, c.state, { ...base, seed: 6 });
    assert.notDeepEqual(sc.losses, sa.losses);
  });

  it("accumulates gradients: batch 1 × accumulation 2 equals batch 2 × accumulation 1", async () => {
    const a = fresh(), b = fresh();
    const sa = await trainLoop(a.model, samples, a.state, { ...base, batchSize: 1, gradAccum: 2, steps: 3 });
    const sb = await trainLoop(b.model, samples, b.state, { ...base, batchSize: 2, gradAccum: 1, steps: 3 });
    sa.losses.forEach((l, i) => assert.ok(Math.abs(l - sb.losses[i]) < 1e-5, `step ${i}: ${l} vs ${sb.losses[i]}`));
    const va = adapterValues(a), vb = adapterValues(b);
    va.forEach((v, k) => v.forEach((x, i) => assert.ok(Math.abs(x - vb[k][i]) < 1e-4)));
  });

  it("stops at a step boundary when aborted, and continues to the same result", async () => {
    const straight = fresh();
    const full = await trainLoop(straight.model, samples, straight.state, base);
    const m = fresh();
    const ctl = new AbortController();
    const first = await trainLoop(m.model, samples, m.state, base, { onProgress: (p) => { if (p.step === 2) ctl.abort(); }, signal: ctl.signal });
    assert.equal(first.interrupted, true);
    assert.equal(first.steps, 2);
    const rest = await trainLoop(m.model, samples, m.state, base);
    assert.equal(rest.interrupted, false);
    assert.deepEqual([...first.losses, ...rest.losses], full.losses);
    assert.deepEqual(adapterValues(m), adapterValues(straight));
  });

  it("saves adapters + optimizer + step and resumes to the same result as an uninterrupted run", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsloth-resume-"));
    try {
      const straight = fresh();
      const full = await trainLoop(straight.model, samples, straight.state, base);
      const m = fresh();
      const ctl = new AbortController();
      await trainLoop(m.model, samples, m.state, base, { onProgress: (p) => { if (p.step === 3) ctl.abort(); }, signal: ctl.signal });
      saveTrainingCheckpoint(m.model, m.state, dir);
      // A new process's view: a freshly loaded base without adapters, then resume.
      const be = new CpuBackend();
      const model = randomModel(be, config, 1, "nf4");
      const state = loadTrainingCheckpoint(model, dir);
      assert.equal(state.completedSteps, 3);
      const rest = await trainLoop(model, samples, state, base);
      assert.deepEqual(rest.losses, full.losses.slice(3));
      assert.deepEqual(adapterValues({ be, model, state }), adapterValues(straight));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports out of memory with what was asked, what was free and settings that would fit", async () => {
    const opts = { ...base, batchSize: 4, gradAccum: 1, checkpoint: "off" as const, steps: 1 };
    // What the failing settings take, measured; what batch 1 with unsloth checkpointing takes, planned.
    const probe = fresh();
    await trainLoop(probe.model, samples, probe.state, opts);
    const failingPeak = probe.be.memory().peakDeviceTotal;
    const planned = planTrainingStep(config, { batch: 1, seq: 10, r: 4, targets: probe.model.lora!.options.targets, checkpoint: "unsloth" });
    const fitting = Object.entries(planned).reduce((n, [c, b]) => (c === "offload_host" ? n : n + b), 0);
    assert.ok(fitting < failingPeak);
    const be = new CpuBackend({ deviceBytes: fitting + 64 });
    const model = randomModel(be, config, 1, "nf4");
    model.attachLora({ r: 4, alpha: 8, seed: 9 });
    const state = createTrainingState(model, 0);
    await assert.rejects(trainLoop(model, samples, state, opts),
      /out of memory while training a micro-batch of 40 tokens \(--batch 4, --max_seq_length 64, --checkpoint off\): asked for .* of (activations|workspace) with .* free\. --batch 1 --grad_accum 4 --checkpoint unsloth would fit/);
  });

  it("starts a new schedule when a finished run is followed by one of another length", async () => {
    const m = fresh();
    await trainLoop(m.model, samples, m.state, { ...base, steps: 2 });
    const events: TrainProgress[] = [];
    const next = await trainLoop(m.model, samples, m.state, { ...base, steps: 4 }, { onProgress: (p) => events.push(p) });
    assert.equal(next.losses.length, 4);
    assert.deepEqual(events.map((e) => e.step), [1, 2, 3, 4]);
    assert.equal(m.state.optimizer.step, 6);
  });

  it("plans steps from epochs: every micro-batch of each epoch once, grouped by accumulation", async () => {
    const m = fresh();
    // 6 samples, batch 1, no packing: 6 micro-batches per epoch; 2 epochs with accumulation 4 → 3 steps.
    const s = await trainLoop(m.model, samples, m.state, { ...base, steps: undefined, epochs: 2, gradAccum: 4 });
    assert.equal(s.totalSteps, 3);
    assert.equal(s.tokens, 6 * 10 * 2);
  });

  it("clips the global gradient norm across all adapter tensors, as torch.nn.utils.clip_grad_norm_", () => {
    const be = new CpuBackend();
    const params = [be.zeros([3], "f32", "adapters"), be.zeros([2], "f32", "adapters")];
    const grads = [be.upload(Float32Array.from([3, 0, 0]), [3], "f32", "adapters"), be.upload(Float32Array.from([0, 4]), [2], "f32", "adapters")];
    const opt = new AdamWState(be, params, grads);
    assert.equal(opt.clip(10), 5);
    assert.deepEqual([...be.download(grads[0]), ...be.download(grads[1])], [3, 0, 0, 0, 4]);
    assert.equal(opt.clip(1), 5);
    assert.ok(Math.abs(opt.gradNorm() - 1) < 1e-5);
    assert.ok(Math.abs(be.download(grads[1])[1] - 0.8) < 1e-5);
  });
});
