// The connection file a Jupyter frontend writes for the kernel: where to bind and how to sign.
import { readFileSync } from "node:fs";

export interface ConnectionInfo {
  transport: "tcp" | "ipc";
  ip: string;
  shell_port: number;
  control_port: number;
  stdin_port: number;
  iopub_port: number;
  hb_port: number;
  key: string;
  signature_scheme: string;
}

export type SocketName = "shell" | "control" | "stdin" | "iopub" | "hb";

export function readConnectionFile(path: string): ConnectionInfo {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`cannot read the connection file ${path} (${code ?? (e as Error).message}); a Jupyter frontend writes it and passes it as -f FILE`);
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`the connection file ${path} is not valid JSON (${(e as Error).message})`);
  }
  const transport = raw.transport ?? "tcp";
  if (transport !== "tcp" && transport !== "ipc") throw new Error(`connection file ${path}: transport must be "tcp" or "ipc", found ${JSON.stringify(transport)}`);
  const info = { transport, ip: raw.ip ?? "127.0.0.1", key: raw.key ?? "", signature_scheme: raw.signature_scheme ?? "hmac-sha256" } as ConnectionInfo;
  for (const name of ["shell", "control", "stdin", "iopub", "hb"] as const) {
    const port = raw[`${name}_port`];
    if (typeof port !== "number" || !Number.isInteger(port) || port < 0) {
      throw new Error(`connection file ${path}: ${name}_port must be a port number, found ${JSON.stringify(port)}`);
    }
    info[`${name}_port`] = port;
  }
  if (typeof info.ip !== "string" || typeof info.key !== "string") throw new Error(`connection file ${path}: ip and key must be strings`);
  return info;
}

/** The ZeroMQ endpoint of one socket: tcp://IP:PORT, or for ipc the path IP-PORT as ipykernel uses. */
export function endpoint(info: ConnectionInfo, socket: SocketName): string {
  const port = info[`${socket}_port`];
  return info.transport === "tcp" ? `tcp://${info.ip}:${port}` : `ipc://${info.ip}-${port}`;
}
