// Messages between the main thread (user code, handlers) and the socket thread.
import type { Channel, JupyterMessage } from "./message.js";
import type { ConnectionInfo } from "./connection.js";

export interface SocketThreadData {
  connection: ConnectionInfo;
  session: string;
  /** Float64Array[1] over shared memory: when the main thread's event loop last turned (Date.now()). */
  mainTick: SharedArrayBuffer;
}

/** How often the main thread stamps mainTick while its event loop runs. */
export const MAIN_TICK_MS = 100;

export type ToSocketThread =
  /** With fence, the socket thread answers with the number of requests received before this send. */
  | { type: "send"; channel: Channel; message: JupyterMessage; fence?: boolean }
  | { type: "close" };

export type FromSocketThread =
  | { type: "ready" }
  | { type: "bind-failed"; error: string }
  | { type: "message"; channel: "shell" | "control" | "stdin"; message: JupyterMessage; seq: number }
  | { type: "fence"; seq: number }
  | { type: "shutdown"; restart: boolean };

/** Structured clone turns Buffers into Uint8Arrays; turn them back without copying. */
export function reviveBuffers(message: JupyterMessage): JupyterMessage {
  const asBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  message.identities = message.identities.map(asBuffer);
  message.buffers = message.buffers.map(asBuffer);
  return message;
}
