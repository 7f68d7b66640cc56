// Debian's classic Notebook server (jupyter-notebook 6) on a free loopback port, with its data,
// config and runtime folders under a temporary directory, for browser tests with chromium.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

export const CHROMIUM = process.env.TSLOTH_CHROMIUM ?? "/usr/bin/chromium";
export const NOTEBOOK = "/usr/bin/jupyter-notebook";

/** Why browser tests cannot run here, or false when they can. */
export function browserTestsUnavailable(): string | false {
  if (!existsSync(CHROMIUM)) return `chromium not found at ${CHROMIUM}`;
  if (!existsSync(NOTEBOOK)) return `${NOTEBOOK} not found (test/setup/system.sh installs jupyter-notebook)`;
  return false;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface NotebookServer {
  url: string;
  process: ChildProcess;
  env: NodeJS.ProcessEnv;
}

/** Jupyter folders of the server under `dir` (data, config, runtime), plus `extra` variables. */
export function notebookEnv(dir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  for (const d of ["data", "config", "runtime"]) mkdirSync(join(dir, d), { recursive: true });
  return { ...process.env, JUPYTER_DATA_DIR: join(dir, "data"), JUPYTER_CONFIG_DIR: join(dir, "config"), JUPYTER_RUNTIME_DIR: join(dir, "runtime"), ...extra };
}

/** Starts the server on `dir` without a token and resolves once it prints its URL. */
export async function startNotebookServer(dir: string, env: NodeJS.ProcessEnv): Promise<NotebookServer> {
  const port = await freePort();
  const proc = spawn(NOTEBOOK, ["--no-browser", `--port=${port}`, "--port-retries=0", "--ip=127.0.0.1", "--NotebookApp.token=", "--NotebookApp.password=", `--notebook-dir=${dir}`, "--allow-root"], { env, stdio: ["ignore", "pipe", "pipe"] });
  const url = await new Promise<string>((resolve, reject) => {
    let log = "";
    const timer = setTimeout(() => reject(new Error(`Notebook server did not start:\n${log}`)), 30000);
    const onData = (d: Buffer) => {
      log += d.toString();
      const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", onData);
  });
  return { url, process: proc, env };
}
