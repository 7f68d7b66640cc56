// Kernel start-up and round-trip benchmark: tsloth beside Debian's ipykernel, in the same run.
//   npm run build && node dist/bench/kernel/startup.js [--runs 200] [--starts 5]
// Start: process spawn -> first kernel_info_reply. Round trip: execute_request "1 + 1" ->
// execute_reply and status idle, median of N. Both kernels are driven by the same client.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../../lib/paths.js";
import { KernelClient } from "../../kernel/client/kernel-client.js";
import type { ConnectionInfo } from "../../kernel/wire/connection.js";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = arg("runs", 200);
const STARTS = arg("starts", 5);

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

interface KernelUnderTest {
  name: string;
  argv: (connectionFile: string) => string[];
  code: string;
}

const kernels: KernelUnderTest[] = [
  { name: "tsloth", argv: (f) => [process.execPath, join(projectRoot(), "bin", "tsloth.js"), "kernel", "-f", f], code: "1 + 1" },
  { name: "ipykernel", argv: (f) => ["/usr/bin/python3", "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", f], code: "1 + 1" },
];

async function startKernel(k: KernelUnderTest): Promise<{ client: KernelClient; child: ChildProcess; startMs: number; file: string }> {
  const ports = await Promise.all([0, 1, 2, 3, 4].map(freePort));
  const connection: ConnectionInfo = {
    transport: "tcp", ip: "127.0.0.1", key: randomBytes(16).toString("hex"), signature_scheme: "hmac-sha256",
    shell_port: ports[0], control_port: ports[1], stdin_port: ports[2], iopub_port: ports[3], hb_port: ports[4],
  };
  const file = join(tmpdir(), `tsloth-bench-${randomBytes(4).toString("hex")}.json`);
  writeFileSync(file, JSON.stringify(connection));
  const client = new KernelClient(connection);
  client.connect();
  const [cmd, ...args] = k.argv(file);
  const t0 = performance.now();
  const child = spawn(cmd, args, { stdio: "ignore", env: { ...process.env, PYDEVD_DISABLE_FILE_VALIDATION: "1" } });
  const startMs = await new Promise<number>((resolve) => {
    const id = client.request("shell", "kernel_info_request", {}, (m) => {
      if (m.header.msg_type === "kernel_info_reply") {
        client.forget(id);
        resolve(performance.now() - t0);
      }
    });
  });
  return { client, child, startMs, file };
}

function executeOnce(client: KernelClient, code: string): Promise<number> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let replied = false;
    let idle = false;
    const id = client.request("shell", "execute_request", { code, silent: false, store_history: true, user_expressions: {}, allow_stdin: false }, (m) => {
      if (m.header.msg_type === "execute_reply") replied = true;
      if (m.header.msg_type === "status" && m.content.execution_state === "idle") idle = true;
      if (replied && idle) {
        client.forget(id);
        resolve(performance.now() - t0);
      }
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

async function measure(k: KernelUnderTest): Promise<{ start: number; rtt: number; p90: number }> {
  const starts: number[] = [];
  let rtts: number[] = [];
  for (let s = 0; s < STARTS; s++) {
    const { client, child, startMs, file } = await startKernel(k);
    starts.push(startMs);
    if (s === 0) {
      for (let i = 0; i < 10; i++) await executeOnce(client, k.code); // warm-up
      rtts = [];
      for (let i = 0; i < RUNS; i++) rtts.push(await executeOnce(client, k.code));
    }
    client.request("shell", "shutdown_request", { restart: false }, () => undefined);
    await new Promise((r) => setTimeout(r, 300));
    client.close();
    if (child.exitCode === null) child.kill("SIGKILL");
    rmSync(file, { force: true });
  }
  return { start: median(starts), rtt: median(rtts), p90: pct(rtts, 0.9) };
}

const hasIpykernel = spawnSync("/usr/bin/python3", ["-c", "import ipykernel"]).status === 0;
const results: Record<string, { start: number; rtt: number; p90: number }> = {};
for (const k of kernels) {
  if (k.name === "ipykernel" && !hasIpykernel) {
    console.log("ipykernel is not installed for /usr/bin/python3; baseline skipped");
    continue;
  }
  results[k.name] = await measure(k);
}
console.log(`kernel start -> first kernel_info_reply (median of ${STARTS}); execute "1 + 1" round trip (median / p90 of ${RUNS})`);
console.log("kernel      start ms   round trip ms   p90 ms");
for (const [name, r] of Object.entries(results)) {
  console.log(`${name.padEnd(10)} ${r.start.toFixed(0).padStart(8)} ${r.rtt.toFixed(2).padStart(15)} ${r.p90.toFixed(2).padStart(8)}`);
}
if (results.tsloth && results.ipykernel) {
  console.log(`ratio tsloth/ipykernel: start ${(results.tsloth.start / results.ipykernel.start).toFixed(2)}x, round trip ${(results.tsloth.rtt / results.ipykernel.rtt).toFixed(2)}x`);
}
console.log(`targets: start < 500 ms (${results.tsloth.start < 500 ? "met" : "missed"}), round trip < 3 ms (${results.tsloth.rtt < 3 ? "met" : "missed"})`);
process.exit(0);
