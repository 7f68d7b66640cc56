// notebooks/quickstart.ipynb as a newcomer runs it: through `tsloth run` and through Debian's
// nbclient with the installed kernelspec. Both must run clean, show the training plots, a falling
// loss, and the taught answers before saving and after reloading the saved model.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { projectRoot } from "../../lib/paths.js";
import { installTestKernelspecs, kernelTestsUnavailable, tslothBin, type KernelTestEnv } from "../helpers/kernel-env.js";
import { jupyterPython } from "../helpers/python.js";

const skip = kernelTestsUnavailable() ?? false;

interface Output { output_type: string; data?: Record<string, unknown>; text?: string | string[]; ename?: string; evalue?: string }
interface Cell { cell_type: string; source: string | string[]; outputs?: Output[] }

const join_ = (t: unknown) => (Array.isArray(t) ? t.join("") : String(t ?? ""));

function outputsOf(cells: Cell[], startsWith: string): Output[] {
  const cell = cells.find((c) => c.cell_type === "code" && join_(c.source).startsWith(startsWith));
  assert.ok(cell, `a cell starting with ${startsWith}`);
  return cell.outputs ?? [];
}

function textOf(outputs: Output[]): string {
  return outputs.map((o) => join_(o.text ?? o.data?.["text/plain"] ?? "")).join("\n");
}

function checkExecuted(path: string): void {
  const nb = JSON.parse(readFileSync(path, "utf8")) as { nbformat: number; cells: Cell[] };
  assert.equal(nb.nbformat, 4);
  const errors = nb.cells.flatMap((c) => (c.outputs ?? []).filter((o) => o.output_type === "error"));
  assert.deepEqual(errors.map((e) => `${e.ename}: ${e.evalue}`), [], "no cell failed");
  const train = outputsOf(nb.cells, "%train");
  assert.ok(train.some((o) => o.data?.["image/svg+xml"] && o.data["application/vnd.plotly.v1+json"]), "the training display kept its plots");
  const m = /loss ([\d.]+) -> ([\d.]+)/.exec(textOf(train));
  assert.ok(m && Number(m[2]) < 0.3 * Number(m[1]), `the loss falls clearly: ${textOf(train)}`);
  const answers = textOf(outputsOf(nb.cells, "%%generate"));
  for (const a of ["The sloth of tsloth is named Tilde.", "Tilde lives in Mossvale.", "Tilde likes to eat hibiscus."]) assert.ok(answers.includes(a), answers);
  assert.ok(outputsOf(nb.cells, "%vram").some((o) => o.data?.["image/svg+xml"]), "%vram shows its plot");
  const last = nb.cells.filter((c) => c.cell_type === "code").at(-1)!;
  assert.match(textOf(last.outputs ?? []), /The sloth of tsloth is named Tilde\./, "the reloaded merged model answers");
}

describe("notebooks/quickstart.ipynb", { skip }, () => {
  let setup: KernelTestEnv;
  before(() => {
    setup = installTestKernelspecs();
  });

  it("runs clean through tsloth run", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsloth-quickstart-"));
    copyFileSync(join(projectRoot(), "notebooks", "quickstart.ipynb"), join(dir, "quickstart.ipynb"));
    const out = join(dir, "executed.ipynb");
    const r = spawnSync(process.execPath, [tslothBin(), "run", join(dir, "quickstart.ipynb"), "--out", out], { encoding: "utf8", timeout: 400_000, env: { ...process.env, TSLOTH_BACKEND: "cpu" } });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    checkExecuted(out);
  });

  it("runs clean through nbclient with the installed kernelspec", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsloth-quickstart-nbclient-"));
    const out = join(dir, "executed.ipynb");
    const script = join(projectRoot(), "test", "notebooks", "run_with_nbclient.py");
    const r = spawnSync(jupyterPython(), [script, join(projectRoot(), "notebooks", "quickstart.ipynb"), out, setup.messageKernel, dir],
      { encoding: "utf8", timeout: 400_000, env: { ...setup.env, TSLOTH_BACKEND: "cpu" } });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    checkExecuted(out);
  });
});
