// Starts a tsloth kernel process on free local ports, as a Jupyter frontend would.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../../lib/paths.js";
import type { ConnectionInfo } from "../wire/connection.js";

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

export interface LaunchedKernel {
  connection: ConnectionInfo;
  process: ChildProcess;
  /** What the kernel wrote to stderr (its diagnostics), for error reports. */
  stderr(): string;
  /**
   * Rejects, with the kernel's stderr, if the process ends before dispose(): race it against anything
   * that waits on the kernel, so a kernel that dies (a missing package, a crash) is reported at once
   * instead of waited for.
   */
  exited: Promise<never>;
  dispose(): void;
}

export async function launchKernel(cwd: string): Promise<LaunchedKernel> {
  const [shell, control, stdin, iopub, hb] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const connection: ConnectionInfo = {
    transport: "tcp", ip: "127.0.0.1", key: randomBytes(16).toString("hex"), signature_scheme: "hmac-sha256",
    shell_port: shell, control_port: control, stdin_port: stdin, iopub_port: iopub, hb_port: hb,
  };
  const file = join(tmpdir(), `tsloth-run-${process.pid}-${randomBytes(4).toString("hex")}.json`);
  writeFileSync(file, JSON.stringify(connection), { mode: 0o600 });
  const child = spawn(process.execPath, [join(projectRoot(), "bin", "tsloth.js"), "kernel", "-f", file], {
    cwd,
    env: { ...process.env, JPY_PARENT_PID: String(process.pid) },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  let disposed = false;
  child.stderr!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-20000)));
  const exited = new Promise<never>((_, reject) => {
    child.once("exit", (code, signal) => {
      if (disposed) return;
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      // Its stderr may still be draining; give it a moment so the message holds the last words
      // (not "close": a process the kernel started may hold the pipe open).
      const report = () => reject(new Error(`the kernel process ${how}. Its output:\n${log.trim() || "(none)"}`));
      if (child.stderr!.readableEnded) report();
      else {
        const timer = setTimeout(report, 200);
        child.stderr!.once("end", () => (clearTimeout(timer), report()));
      }
    });
  });
  exited.catch(() => undefined);  // observed by whoever races it; never an unhandled rejection
  return {
    connection,
    process: child,
    stderr: () => log,
    exited,
    dispose: () => {
      disposed = true;
      if (child.exitCode === null) child.kill("SIGKILL");
      rmSync(file, { force: true });
    },
  };
}
