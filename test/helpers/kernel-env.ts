// Test set-up for the kernel: kernelspecs installed into a temporary prefix (never the user's
// Jupyter), and the python scripts of test/kernel/py run against them with Debian's python3.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../../lib/paths.js";
import { jupyterPython } from "./python.js";

export interface KernelTestEnv {
  env: NodeJS.ProcessEnv;
  prefix: string;
  /** Kernelspec names: interrupt_mode "message" and "signal". */
  messageKernel: string;
  signalKernel: string;
}

export const tslothBin = () => join(projectRoot(), "bin", "tsloth.js");

/** Why the kernel tests cannot run here, or undefined when they can. */
export function kernelTestsUnavailable(): string | undefined {
  const probe = spawnSync(jupyterPython(), ["-c", "import jupyter_client, nbclient, nbformat, zmq"], { encoding: "utf8" });
  if (probe.status !== 0) return `${jupyterPython()} lacks jupyter_client/nbclient (run test/setup/system.sh as root)`;
  if (spawnSync(process.execPath, [tslothBin(), "--version"]).status !== 0) return "dist/ is not built (npm run build)";
  return undefined;
}

export function installTestKernelspecs(): KernelTestEnv {
  const prefix = mkdtempSync(join(tmpdir(), "tsloth-kernelspec-"));
  const install = (name: string, mode: string) => {
    const r = spawnSync(process.execPath, [tslothBin(), "install", "--prefix", prefix, "--name", name, "--interrupt-mode", mode], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`tsloth install failed: ${r.stderr}`);
  };
  install("tsloth-test", "message");
  install("tsloth-test-signal", "signal");
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    JUPYTER_PATH: join(prefix, "share", "jupyter"),
    JUPYTER_RUNTIME_DIR: join(prefix, "runtime"),
    TSLOTH_KERNEL_NAME: "tsloth-test",
    TSLOTH_ROOT: projectRoot(),
    PYDEVD_DISABLE_FILE_VALIDATION: "1",
    PYTHONDONTWRITEBYTECODE: "1",
  };
  return { env, prefix, messageKernel: "tsloth-test", signalKernel: "tsloth-test-signal" };
}

export interface ScriptResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Names of the checks the script passed (its "PASS name" lines). */
  passed: string[];
}

export async function runKernelScript(script: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 180_000): Promise<ScriptResult> {
  const path = join(projectRoot(), "test", "kernel", "py", script);
  return await new Promise((resolve) => {
    const child = spawn(jupyterPython(), ["-Xfrozen_modules=off", path, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    // A kernel the script failed to stop inherits its pipes, so "close" could wait forever:
    // finish on "exit", once the pipes had a moment to drain.
    child.on("exit", (code) => {
      clearTimeout(timer);
      setTimeout(() => {
        const passed = stdout.split("\n").filter((l) => l.startsWith("PASS ")).map((l) => l.slice(5));
        resolve({ code, stdout, stderr, passed });
      }, 300);
    });
  });
}

/** One assertion message with everything needed to see why a script failed. */
export function scriptReport(r: ScriptResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr.slice(-6000)}`;
}
