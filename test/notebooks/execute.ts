// The two ways the tests execute a tutorial: `tsloth run`, and Debian's nbclient on the installed
// kernelspec. Each runs a copy in a fresh directory (the notebooks write files next to themselves)
// and returns the executed notebook.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { projectRoot } from "../../lib/paths.js";
import { tslothBin, type KernelTestEnv } from "../helpers/kernel-env.js";
import { jupyterPython } from "../helpers/python.js";

export interface Output { output_type: string; data?: Record<string, unknown>; text?: string | string[]; ename?: string; evalue?: string }
export interface Cell { cell_type: string; source: string | string[]; outputs?: Output[] }
export interface Notebook { nbformat: number; cells: Cell[] }

const joined = (t: unknown) => (Array.isArray(t) ? t.join("") : String(t ?? ""));

function copyToFreshDir(name: string): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), `tsloth-${basename(name, ".ipynb")}-`));
  const path = join(dir, name);
  copyFileSync(join(projectRoot(), "notebooks", name), path);
  return { dir, path };
}

function readExecuted(path: string): Notebook {
  const nb = JSON.parse(readFileSync(path, "utf8")) as Notebook;
  assert.equal(nb.nbformat, 4);
  const errors = nb.cells.flatMap((c) => (c.outputs ?? []).filter((o) => o.output_type === "error"));
  assert.deepEqual(errors.map((e) => `${e.ename}: ${e.evalue}`), [], "no cell failed");
  return nb;
}

/** `env` defaults to the CPU backend, which every tutorial but the GPU one is written for. */
export function runWithTsloth(name: string, env: NodeJS.ProcessEnv = { TSLOTH_BACKEND: "cpu" }): Notebook {
  const { dir, path } = copyToFreshDir(name);
  const out = join(dir, "executed.ipynb");
  const r = spawnSync(process.execPath, [tslothBin(), "run", path, "--out", out], { encoding: "utf8", timeout: 400_000, env: { ...process.env, ...env } });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  return readExecuted(out);
}

export function runWithNbclient(name: string, setup: KernelTestEnv): Notebook {
  const { dir, path } = copyToFreshDir(name);
  const out = join(dir, "executed.ipynb");
  const script = join(projectRoot(), "test", "notebooks", "run_with_nbclient.py");
  const r = spawnSync(jupyterPython(), [script, path, out, setup.messageKernel, dir], { encoding: "utf8", timeout: 400_000, env: { ...setup.env, TSLOTH_BACKEND: "cpu" } });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  return readExecuted(out);
}

/** The outputs of the first code cell whose source starts with `prefix`. */
export function outputsOf(nb: Notebook, prefix: string): Output[] {
  const cell = nb.cells.find((c) => c.cell_type === "code" && joined(c.source).startsWith(prefix));
  assert.ok(cell, `a cell starting with ${prefix}`);
  return cell.outputs ?? [];
}

export function textOf(outputs: Output[]): string {
  return outputs.map((o) => joined(o.text ?? o.data?.["text/plain"] ?? "")).join("\n");
}
