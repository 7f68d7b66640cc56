// The public API's argument checks and error messages (what %load_4bit / %lora / %train show).
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attachLora, loadModel4bit, saveTrainingState, train, type Model } from "../../lib/index.js";

describe("public API", () => {
  let model: Model;
  let dir: string;
  before(async () => {
    model = await loadModel4bit("tsloth-tiny", { maxSeqLength: 128, backend: "cpu" });
    dir = mkdtempSync(join(tmpdir(), "tsloth-api-"));
  });

  it("loads the tiny model in 4-bit on the CPU backend, accounting NF4 weights", () => {
    assert.equal(model.backend.name, "cpu");
    const m = model.backend.memory().current;
    assert.ok(m.base_weights > 0 && m.adapters === 0);
  });

  it("refuses to train before LoRA is attached", async () => {
    await assert.rejects(train(model, { data: "tsloth-tiny-data", steps: 1 }), /attach LoRA adapters before training/);
  });

  it("names a missing data file, a malformed line, and a sample over max_seq_length when refusal is asked", async () => {
    attachLora(model, { r: 2, targets: ["q", "v"] });
    await assert.rejects(train(model, { data: join(dir, "missing.jsonl"), steps: 1 }), /does not exist/);
    writeFileSync(join(dir, "bad.jsonl"), '{"text": "fine"}\n{"text": \n');
    await assert.rejects(train(model, { data: join(dir, "bad.jsonl"), steps: 1 }), /bad\.jsonl line 2: not valid JSON/);
    writeFileSync(join(dir, "long.jsonl"), JSON.stringify({ text: "word ".repeat(400) }) + "\n");
    await assert.rejects(train(model, { data: join(dir, "long.jsonl"), steps: 1, truncation: "refuse" }), /data line 1 is \d+ tokens, longer than max_seq_length 128/);
    const warnings: string[] = [];
    const s = await train(model, { data: join(dir, "long.jsonl"), steps: 1, gradAccum: 1 }, { onWarning: (w) => warnings.push(w) });
    assert.equal(s.steps, 1);
    assert.match(warnings[0], /truncated/);
  });

  it("refuses --steps together with --epochs, and bad numbers", async () => {
    await assert.rejects(train(model, { data: "tsloth-tiny-data", steps: 1, epochs: 1 }), /either --steps or --epochs/);
    await assert.rejects(train(model, { data: "tsloth-tiny-data", steps: 1, batch: 0 }), /--batch must be a positive integer, found 0/);
    await assert.rejects(train(model, { data: "tsloth-tiny-data", steps: 1, checkpoint: "sometimes" as never }), /checkpoint policy "sometimes" is not known/);
  });

  it("saves training state and resumes from it", async () => {
    await train(model, { data: "tsloth-tiny-data", steps: 2, gradAccum: 1 });
    saveTrainingState(model, join(dir, "ckpt"));
    const savedUpdates = model.training!.optimizer.step;
    const other = await loadModel4bit("tsloth-tiny", { maxSeqLength: 128, backend: "cpu" });
    const s = await train(other, { data: "tsloth-tiny-data", steps: 2, gradAccum: 1, resumeFrom: join(dir, "ckpt") });
    // The saved run had finished its 2 steps, so the resumed call starts a new 2-step schedule.
    assert.equal(s.steps, 2);
    assert.equal(other.training!.optimizer.step, savedUpdates + 2);
    assert.deepEqual(other.engine.lora!.options.targets, ["q", "v"]);
    rmSync(dir, { recursive: true, force: true });
  });
});
