// `tsloth run` when the kernel process dies: at start (an install without one of the kernel's
// packages) or in the middle of a cell. The runner must say so at once, with the kernel's own last
// words, and exit; before, it waited 30 s for kernel_info (and then for ZeroMQ's queued sends) or,
// mid-cell, forever.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { projectRoot } from "../../lib/paths.js";
import { tslothBin } from "../helpers/kernel-env.js";

function notebook(dir: string, sources: string[]): string {
  const cells = sources.map((s, i) => ({ id: `c${i}`, cell_type: "code", metadata: {}, source: s, outputs: [], execution_count: null }));
  const path = join(dir, "nb.ipynb");
  writeFileSync(path, JSON.stringify({ nbformat: 4, nbformat_minor: 5, metadata: {}, cells }));
  return path;
}

/** A copy of the built project whose node_modules lacks esbuild (the kernel's TypeScript transpiler). */
function installWithoutEsbuild(): string {
  const root = projectRoot(), dir = mkdtempSync(join(tmpdir(), "tsloth-broken-install-"));
  for (const part of ["dist", "bin", "package.json"]) cpSync(join(root, part), join(dir, part), { recursive: true });
  mkdirSync(join(dir, "node_modules"));
  for (const name of readdirSync(join(root, "node_modules"))) {
    if (name === "esbuild" || name === "@esbuild") continue;
    symlinkSync(join(root, "node_modules", name), join(dir, "node_modules", name));
  }
  return dir;
}

describe("tsloth run with a kernel that dies", () => {
  it("reports a kernel that cannot start, with its error, within seconds", () => {
    const install = installWithoutEsbuild();
    const input = notebook(mkdtempSync(join(tmpdir(), "tsloth-run-")), ["1 + 1"]);
    const t0 = Date.now();
    const r = spawnSync(process.execPath, [join(install, "bin", "tsloth.js"), "run", input], { encoding: "utf8", timeout: 60_000, env: { ...process.env, TSLOTH_BACKEND: "cpu" } });
    const seconds = (Date.now() - t0) / 1000;
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /the kernel process exited with code 1/);
    assert.match(r.stderr, /esbuild/, "the kernel's own message names what is missing");
    assert.doesNotMatch(r.stderr, /Socket is closed/, "no complaint per dropped request");
    assert.ok(seconds < 15, `took ${seconds} s`);
  });

  it("reports a kernel that dies during a cell instead of waiting for its reply", () => {
    const input = notebook(mkdtempSync(join(tmpdir(), "tsloth-run-")), ["const before = 1", "process.kill(process.pid, 'SIGKILL')", "'never'"]);
    const r = spawnSync(process.execPath, [tslothBin(), "run", input], { encoding: "utf8", timeout: 60_000, env: { ...process.env, TSLOTH_BACKEND: "cpu" } });
    assert.equal(r.signal, null, "finished on its own, not by the test's timeout");
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /the kernel process was killed by SIGKILL/);
  });
});
