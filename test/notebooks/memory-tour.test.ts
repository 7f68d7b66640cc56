// notebooks/memory-tour.ipynb through both runners: the three checkpointing modes, the estimator,
// batch against accumulation and the KV cache, with the measurements the notebook's text promises.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { installTestKernelspecs, kernelTestsUnavailable, type KernelTestEnv } from "../helpers/kernel-env.js";
import { outputsOf, runWithNbclient, runWithTsloth, textOf, type Notebook } from "./execute.js";

const NAME = "memory-tour.ipynb";
const kibOf = (text: string, label: string): number[] =>
  [...text.matchAll(new RegExp(`'${label}': '([\\d.]+) KiB'`, "g"))].map((m) => Number(m[1]));

function checkTour(nb: Notebook): void {
  const modes = textOf(outputsOf(nb, 'import { train }'));
  const [off, full, unsloth] = kibOf(modes, "peak activations");
  assert.ok(off! > full! && full! >= unsloth!, `off keeps the most activations: ${modes}`);
  const host = kibOf(modes, "peak host copies");
  assert.deepEqual(host.map((h) => h > 0), [false, false, true], `only unsloth copies layer inputs to the host: ${modes}`);
  assert.match(textOf(outputsOf(nb, "%estimate")), /predicted peak/);
  const [batch4, accum4] = kibOf(textOf(outputsOf(nb, "const batchVsAccumulation")), "peak activations");
  assert.ok(accum4! < batch4!, "accumulation holds fewer activations than the same rows at once");
  const kv = textOf(outputsOf(nb, 'import { generate, memoryReport }'));
  assert.ok(kibOf(kv, "contiguous cache while generating")[0]! > 0 && kibOf(kv, "kv cache after generation")[0] === 0, kv);
  assert.ok(outputsOf(nb, "%vram").some((o) => o.data?.["image/svg+xml"]));
}

describe("notebooks/memory-tour.ipynb", { skip: kernelTestsUnavailable() ?? false }, () => {
  let setup: KernelTestEnv;
  before(() => {
    setup = installTestKernelspecs();
  });
  it("runs clean through tsloth run", () => checkTour(runWithTsloth(NAME)));
  it("runs clean through nbclient with the installed kernelspec", () => checkTour(runWithNbclient(NAME, setup)));
});
