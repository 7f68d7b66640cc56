// The kernel over the real protocol, driven by Debian's jupyter_client (test/kernel/py/).
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { installTestKernelspecs, kernelTestsUnavailable, runKernelScript, scriptReport, type KernelTestEnv } from "../helpers/kernel-env.js";

const skip = kernelTestsUnavailable();

/** A notebook directory with an ESM-only package and a CommonJS package in node_modules. */
function notebookDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "tsloth-notebook-"));
  const pkg = (name: string, manifest: object, file: string, text: string) => {
    mkdirSync(join(dir, "node_modules", name), { recursive: true });
    writeFileSync(join(dir, "node_modules", name, "package.json"), JSON.stringify(manifest));
    writeFileSync(join(dir, "node_modules", name, file), text);
  };
  pkg("esm-only", { name: "esm-only", type: "module", exports: { ".": { import: "./index.js" } } }, "index.js",
    "export const answer = 42; export default function answerOf() { return answer; }\n");
  pkg("cjs-pkg", { name: "cjs-pkg", main: "main.js" }, "main.js", "exports.plus = (n) => n + 1;\n");
  return dir;
}

describe("kernel protocol (jupyter_client)", { skip }, () => {
  let setup: KernelTestEnv;
  before(() => {
    setup = installTestKernelspecs();
  });

  it("answers every shell message type as jupyter_client expects", async () => {
    const r = await runKernelScript("messages.py", [notebookDir()], setup.env);
    assert.equal(r.code, 0, scriptReport(r));
    for (const check of [
      "kernel_info",
      "execute keeps state; const/function/class can be declared again",
      "silent and store_history",
      "user_expressions",
      "execute_result mime bundles",
      "stream output from console, timers and promises",
      "errors point into the cell; type errors do not block execution",
      "stop_on_error",
      "complete and inspect are type-aware",
      "is_complete",
      "history tail/range/search",
      "comm_info/open/msg/close",
      "display, update_display, clear_output",
      "stdin input_request",
      "magics: help, usage errors, typed options, bound result, cell magics",
      "import and require from the notebook directory (ESM-only too)",
    ]) {
      assert.ok(r.passed.includes(check), `missing check "${check}"\n${scriptReport(r)}`);
    }
  });

  it("drops unsigned, wrongly signed and malformed messages and stays up", async () => {
    const r = await runKernelScript("bad_input.py", [], setup.env);
    assert.equal(r.code, 0, scriptReport(r));
    assert.equal(r.passed.length, 3, scriptReport(r));
    for (const reason of ["missing signature", "wrong signature", "malformed header frame", "malformed content frame", 'unknown message type "no_such_request"']) {
      assert.ok(r.stderr.includes(reason), `the kernel did not log "${reason}"\n${scriptReport(r)}`);
    }
  });
});
