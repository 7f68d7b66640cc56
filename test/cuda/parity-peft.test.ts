// The CUDA backend against transformers + peft: the engine issue's parity references (tiny random
// Llama / Qwen2 / Qwen3, 16-bit and NF4 bases, LoRA with B non-zero) on the GPU, where activations
// are bf16. The yardstick is PyTorch itself computing the same step in bf16 (autocast), which
// parity_peft.py measures against its float32 results: attention's q/k gradients lose 3–5% there
// (softmax backward subtracts nearly equal terms). Each LoRA gradient must land within twice
// PyTorch's own bf16 error on it (or BF16_TOL, whichever is larger), the loss within LOSS_TOL.
// References come from TSLOTH_PARITY_REFERENCE (a directory test/py/parity_peft.py wrote, for
// machines without bitsandbytes) or are written here with the reference virtual environment.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CudaBackend } from "../../lib/backend/cuda/index.js";
import { PARITY_FAMILIES, PARITY_VARIANTS, runParityCase, VARIANT_TITLES, writeParityReferences } from "../helpers/peft-parity.js";
import { referencePython } from "../helpers/python.js";
import { BF16_TOL, skipWithoutGpu } from "./parity-helpers.js";

/** The loss is a mean over every target token: its rounding errors average out. */
const LOSS_TOL = 5e-3;

const given = process.env.TSLOTH_PARITY_REFERENCE;
const python = referencePython();
const skip = skipWithoutGpu
  || (given ? (existsSync(join(given, "llama", "reference.json")) ? false : `TSLOTH_PARITY_REFERENCE=${given} holds no parity references`)
    : python ? false : "no parity references: set TSLOTH_PARITY_REFERENCE or create the reference virtual environment (test/setup/python.sh)");

describe("CUDA backend: parity with transformers + peft", { skip }, () => {
  let dir = given ?? "";
  before(() => {
    if (given) return;
    dir = mkdtempSync(join(tmpdir(), "tsloth-parity-cuda-"));
    const failure = writeParityReferences(python!, dir);
    assert.equal(failure, null, failure ?? "");
  });
  after(() => { if (!given) rmSync(dir, { recursive: true, force: true }); });

  for (const family of PARITY_FAMILIES) {
    for (const variant of PARITY_VARIANTS) {
      it(`${family}, ${VARIANT_TITLES[variant]}: loss and every LoRA gradient within bf16 bounds`, async (t) => {
        const be = new CudaBackend();
        const r = await runParityCase(be, dir, family, variant);
        be.releaseWorkspace();
        const lossGap = Math.abs(r.loss - r.referenceLoss) / Math.abs(r.referenceLoss);
        const worst = r.gradients.reduce((a, g) => (g.relL2 > a.relL2 ? g : a));
        const ratio = (g: { name: string; relL2: number }) => g.relL2 / r.torchBf16.grad_rel_l2[g.name];
        const worstRatio = r.gradients.reduce((a, g) => (ratio(g) > ratio(a) ? g : a));
        t.diagnostic(`loss ${r.loss.toFixed(6)} vs ${r.referenceLoss.toFixed(6)} (relative gap ${lossGap.toExponential(2)}; PyTorch bf16 ${r.torchBf16.loss_gap.toExponential(2)}); ` +
          `worst gradient ${worst.name}: relative L2 ${worst.relL2.toExponential(2)} (PyTorch bf16 ${r.torchBf16.grad_rel_l2[worst.name].toExponential(2)}); ` +
          `largest ratio to PyTorch bf16 ${ratio(worstRatio).toFixed(2)} on ${worstRatio.name}`);
        assert.equal(r.targets, r.referenceTargets);
        assert.ok(lossGap <= LOSS_TOL, `loss ${r.loss} vs reference ${r.referenceLoss}`);
        for (const g of r.gradients) {
          assert.ok(g.scale > 0, `${g.name}: the reference gradient is zero`);
          const torch16 = r.torchBf16.grad_rel_l2[g.name];
          assert.ok(torch16 !== undefined, `${g.name}: the references lack PyTorch's bf16 error (rewrite them with parity_peft.py)`);
          const bound = Math.max(BF16_TOL, 2 * torch16);
          assert.ok(g.relL2 <= bound, `${g.name}: relative L2 error ${g.relL2.toExponential(2)} > ${bound.toExponential(2)} (PyTorch in bf16: ${torch16.toExponential(2)})`);
        }
      });
    }
  }
});
