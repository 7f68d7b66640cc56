// transformers and peft load what tsloth saves (test/py/check_save_reference.py), on CPU, with the
// project's reference virtual environment; skipped with a clear message where it is absent.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { loadModel4bit } from "../../lib/index.js";
import { projectRoot } from "../../lib/paths.js";
import { saveMerged } from "../../lib/save/index.js";
import { referencePython } from "../helpers/python.js";
import { PROBE_IDS, scratchDir, trainedTinyModel } from "./save-fixtures.js";

const python = referencePython();

describe("transformers and peft load tsloth's saves", { skip: python ? false : "no reference Python (.venv with torch, transformers, peft): run test/setup/python.sh" }, () => {
  it("merged_16bit, lora and merged_4bit give the logits tsloth computes", { timeout: 300_000 }, async () => {
    const root = scratchDir("python");
    const model = await trainedTinyModel({ loadIn4bit: false, seed: 41 });
    const m16 = join(root, "merged16"), lora = join(root, "lora"), m4 = join(root, "merged4");
    await saveMerged(model, { dir: m16, maxShardSize: "100KB" });
    await saveMerged(model, { dir: lora, method: "lora" });
    await saveMerged(model, { dir: m4, method: "merged_4bit", force: true });
    const logits = async (dir: string, loadIn4bit: boolean) =>
      Array.from((await loadModel4bit(dir, { backend: new CpuBackend(), loadIn4bit })).engine.lastTokenLogits(PROBE_IDS));
    const spec = {
      ids: Array.from(PROBE_IDS), base: model.dir,
      checks: [
        // Same bf16 weights, both computing in float32: only summation order differs.
        { kind: "merged_16bit", dir: m16, tsloth_logits: await logits(m16, false), tolerance: 1e-3 },
        { kind: "lora", dir: lora, tsloth_logits: Array.from(model.engine.lastTokenLogits(PROBE_IDS)), tolerance: 1e-3 },
        // bitsandbytes on CPU computes the 4-bit layers in bfloat16; tsloth's reference computes in float32.
        { kind: "merged_4bit", dir: m4, merged16_dir: m16, tsloth_logits: await logits(m4, true), tolerance: 0.2 },
      ],
    };
    const specPath = join(root, "spec.json");
    writeFileSync(specPath, JSON.stringify(spec));
    const run = spawnSync(python!, [join(projectRoot(), "test", "py", "check_save_reference.py"), specPath], { encoding: "utf8", timeout: 280_000 });
    const results = run.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
    assert.equal(run.status, 0, `reference check failed:\n${run.stdout}\n${run.stderr.slice(-3000)}`);
    const byKind = Object.fromEntries(results.map((r) => [r.kind, r]));
    assert.ok(byKind.merged_16bit?.ok, JSON.stringify(byKind.merged_16bit));
    assert.ok(byKind.lora?.ok, JSON.stringify(byKind.lora));
    console.log(`# ${JSON.stringify(results)}`);
    if (byKind.merged_4bit?.skipped) console.log(`# merged_4bit in transformers skipped: ${byKind.merged_4bit.skipped}`);
    else assert.ok(byKind.merged_4bit?.ok, JSON.stringify(byKind.merged_4bit));
  });
});
