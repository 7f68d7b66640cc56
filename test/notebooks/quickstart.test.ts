// notebooks/quickstart.ipynb as a newcomer runs it, through both runners: it must run clean, keep
// the training plots, show a falling loss, and the taught answers before saving and after
// reloading the saved model.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { installTestKernelspecs, kernelTestsUnavailable, type KernelTestEnv } from "../helpers/kernel-env.js";
import { outputsOf, runWithNbclient, runWithTsloth, textOf, type Notebook } from "./execute.js";

const NAME = "quickstart.ipynb";

function checkQuickstart(nb: Notebook): void {
  const train = outputsOf(nb, "%train");
  assert.ok(train.some((o) => o.data?.["image/svg+xml"] && o.data["application/vnd.plotly.v1+json"]), "the training display kept its plots");
  const m = /loss ([\d.]+) -> ([\d.]+)/.exec(textOf(train));
  assert.ok(m && Number(m[2]) < 0.3 * Number(m[1]), `the loss falls clearly: ${textOf(train)}`);
  const answers = textOf(outputsOf(nb, "%%generate"));
  for (const a of ["The sloth of tsloth is named Tilde.", "Tilde lives in Mossvale.", "Tilde likes to eat hibiscus."]) assert.ok(answers.includes(a), answers);
  assert.ok(outputsOf(nb, "%vram").some((o) => o.data?.["image/svg+xml"]), "%vram shows its plot");
  const last = nb.cells.filter((c) => c.cell_type === "code").at(-1)!;
  assert.match(textOf(last.outputs ?? []), /The sloth of tsloth is named Tilde\./, "the reloaded merged model answers");
}

describe("notebooks/quickstart.ipynb", { skip: kernelTestsUnavailable() ?? false }, () => {
  let setup: KernelTestEnv;
  before(() => {
    setup = installTestKernelspecs();
  });
  it("runs clean through tsloth run", () => checkQuickstart(runWithTsloth(NAME)));
  it("runs clean through nbclient with the installed kernelspec", () => checkQuickstart(runWithNbclient(NAME, setup)));
});
