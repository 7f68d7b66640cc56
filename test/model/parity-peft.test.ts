// tsloth against transformers + peft: the same tiny random checkpoints, the same LoRA adapters
// (B non-zero) and batch; loss and every LoRA gradient must agree within float32 tolerance, with
// the base in 16-bit and in NF4 (bitsandbytes' dequantized weights on the reference side).
// test/cuda/parity-peft.test.ts holds the CUDA backend to the same references in bf16 bounds.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { PARITY_FAMILIES, PARITY_VARIANTS, runParityCase, VARIANT_TITLES, writeParityReferences } from "../helpers/peft-parity.js";
import { referencePython } from "../helpers/python.js";

const python = referencePython();
const skip = python ? false : "the reference virtual environment (.venv with torch, transformers, peft, bitsandbytes) is absent; run test/setup/python.sh to create it";

describe("parity with transformers + peft", { skip }, () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "tsloth-parity-"));
    const failure = writeParityReferences(python!, dir);
    assert.equal(failure, null, failure ?? "");
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const family of PARITY_FAMILIES) {
    for (const variant of PARITY_VARIANTS) {
      it(`${family}, ${VARIANT_TITLES[variant]}: loss and every LoRA gradient match`, async () => {
        const r = await runParityCase(new CpuBackend(), dir, family, variant);
        assert.equal(r.targets, r.referenceTargets);
        assert.ok(Math.abs(r.loss - r.referenceLoss) <= 2e-5 * Math.abs(r.referenceLoss), `loss ${r.loss} vs reference ${r.referenceLoss}`);
        for (const g of r.gradients) {
          assert.ok(g.scale > 0, `${g.name}: the reference gradient is zero`);
          assert.ok(g.worst <= 1e-4 * g.scale + 1e-7, `${g.name}: max difference ${g.worst} against gradient scale ${g.scale}`);
        }
      });
    }
  }
});
