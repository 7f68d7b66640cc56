// The engine through the kernel with the real client: load in 4-bit, LoRA, train with a live
// display, the taught fact decoded afterwards, memory views, saving, and clear engine errors.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { installTestKernelspecs, kernelTestsUnavailable, runKernelScript, scriptReport, type KernelTestEnv } from "../helpers/kernel-env.js";

const skip = kernelTestsUnavailable();

describe("fine-tuning through the kernel (jupyter_client)", { skip }, () => {
  let setup: KernelTestEnv;
  before(() => {
    setup = installTestKernelspecs();
  });

  it("loads, trains with a live display, answers the taught fact, shows memory and saves", async () => {
    const workdir = mkdtempSync(join(tmpdir(), "tsloth-finetune-"));
    const r = await runKernelScript("finetune.py", [workdir], { ...setup.env, TSLOTH_TEST_TIMEOUT: "120" }, 400_000);
    assert.equal(r.code, 0, scriptReport(r));
    for (const check of [
      "%load_4bit binds the model",
      "%lora",
      "%train shows one live display updated in place, and the loss falls",
      "greedy decoding produces the taught fact",
      "%generate and %%generate stream the answers",
      "%vram",
      "%estimate and %env",
      "%save_merged --method lora",
      "engine errors are one clear message and the kernel keeps its state",
    ]) assert.ok(r.passed.includes(check), `missing check "${check}"\n${scriptReport(r)}`);
  });
});
