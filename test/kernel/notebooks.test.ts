// Whole notebooks: nbclient, `jupyter nbconvert --execute`, `jupyter console`, and `tsloth run`.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { installTestKernelspecs, kernelTestsUnavailable, runKernelScript, scriptReport, tslothBin, type KernelTestEnv } from "../helpers/kernel-env.js";
import { jupyterPython } from "../helpers/python.js";

const skip = kernelTestsUnavailable();

function writeNotebook(dir: string, name: string, sources: string[]): string {
  const nb = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {},
    cells: [
      { id: "intro", cell_type: "markdown", metadata: {}, source: ["# A notebook\n"] },
      ...sources.map((s, i) => ({ id: `code-${i}`, cell_type: "code", metadata: {}, source: s, outputs: [], execution_count: null })),
    ],
  };
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(nb));
  return path;
}

function validate(path: string): void {
  const r = spawnSync(jupyterPython(), ["-c", "import nbformat, sys; nbformat.validate(nbformat.read(sys.argv[1], as_version=4))", path], { encoding: "utf8" });
  assert.equal(r.status, 0, `invalid notebook ${path}: ${r.stderr}`);
}

describe("notebooks through the kernel", { skip }, () => {
  let setup: KernelTestEnv;
  before(() => {
    setup = installTestKernelspecs();
  });

  it("runs with nbclient, jupyter nbconvert --execute and jupyter console", async () => {
    const r = await runKernelScript("notebooks.py", [mkdtempSync(join(tmpdir(), "tsloth-nb-"))], setup.env);
    assert.equal(r.code, 0, scriptReport(r));
    assert.deepEqual(r.passed, ["nbclient executes a notebook", "nbclient reports a failing cell", "jupyter nbconvert --execute", "jupyter console answers piped input"]);
  });

  it("tsloth run writes a valid nbformat 4 notebook with every output", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsloth-run-"));
    const input = writeNotebook(dir, "good.ipynb", [
      "const total: number = [1, 2, 3].reduce((a, b) => a + b)\nconsole.log('total', total)",
      "const shown = display('first', { displayId: 'progress' })\nshown.update('final')\ntotal * 7",
      "%%writefile from-run.txt\nwritten\n",
    ]);
    const out = join(dir, "good.out.ipynb");
    const r = spawnSync(process.execPath, [tslothBin(), "run", input, "--out", out, "--timeout", "60"], { encoding: "utf8", env: setup.env });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    validate(out);
    const nb = JSON.parse(readFileSync(out, "utf8"));
    const [, c1, c2] = nb.cells;
    assert.deepEqual(c1.outputs, [{ output_type: "stream", name: "stdout", text: "total 6\n" }]);
    assert.equal(c1.execution_count, 1);
    assert.equal(c2.outputs[0].output_type, "display_data");
    assert.equal(c2.outputs[0].data["text/plain"], "'final'", "update_display_data replaced the display");
    assert.deepEqual(c2.outputs[1], { output_type: "execute_result", data: { "text/plain": "42" }, metadata: {}, execution_count: 2 });
    assert.ok(existsSync(join(dir, "from-run.txt")), "cells run in the notebook's directory");
    assert.equal(nb.metadata.kernelspec.name, "tsloth");
  });

  it("tsloth run exits non-zero and shows the failing cell", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsloth-run-"));
    const input = writeNotebook(dir, "bad.ipynb", ["const ready = true", "if (ready) {\n  JSON.parse('{not json')\n}", "console.log('never runs')"]);
    const r = spawnSync(process.execPath, [tslothBin(), "run", input], { encoding: "utf8", env: setup.env });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /cell 3 of .*bad\.ipynb failed/);
    assert.match(r.stderr, /JSON\.parse\('\{not json'\)/);
    assert.match(r.stderr, /SyntaxError/);
    assert.match(r.stderr, /line 2/);
    const out = join(dir, "bad.executed.ipynb");
    validate(out);
    const nb = JSON.parse(readFileSync(out, "utf8"));
    assert.equal(nb.cells[2].outputs[0].output_type, "error");
    assert.deepEqual(nb.cells[3].outputs, [], "cells after the failure do not run");
  });

  it("tsloth run --timeout interrupts a cell that runs too long", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsloth-run-"));
    const input = writeNotebook(dir, "slow.ipynb", ["let spins = 0\nwhile (true) { spins++ }"]);
    const r = spawnSync(process.execPath, [tslothBin(), "run", input, "--timeout", "1"], { encoding: "utf8", env: setup.env });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /ran longer than --timeout 1 s/);
    const nb = JSON.parse(readFileSync(join(dir, "slow.executed.ipynb"), "utf8"));
    assert.ok(nb.cells[1].outputs.some((o: { ename?: string }) => o.ename === "KeyboardInterrupt"), JSON.stringify(nb.cells[1].outputs));
  });
});
