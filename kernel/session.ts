// The main thread's side of the socket thread: sends replies and iopub messages, and keeps the
// parent that stream and display output belongs to (the running or last execute_request).
import type { Worker } from "node:worker_threads";
import { makeMessage, type Channel, type JupyterMessage } from "./wire/message.js";
import type { ToSocketThread } from "./wire/thread-protocol.js";

export type StreamName = "stdout" | "stderr";

// Output written while user code keeps the main thread busy still leaves at this pace: each
// write checks the age of the buffer, so a synchronous training loop shows progress live.
const STREAM_FLUSH_MS = 30;
const STREAM_MAX_BUFFER = 1 << 20;

export class KernelSession {
  /** Parent of stream, display and comm output: the execute_request that runs (or ran last). */
  outputParent: JupyterMessage | undefined;
  private pendingName: StreamName | undefined;
  private pendingText = "";
  private bufferedSince = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private fenceWaiters: Array<(seq: number) => void> = [];

  constructor(
    private readonly socketThread: Worker,
    /** Also the session of every message the kernel sends. */
    readonly id: string,
  ) {}

  send(
    channel: Channel,
    msgType: string,
    content: Record<string, unknown>,
    parent?: JupyterMessage,
    extra: { metadata?: Record<string, unknown>; buffers?: Buffer[] } = {},
  ): JupyterMessage {
    if (channel === "iopub") this.flushStreams();
    const message = makeMessage(msgType, content, this.id, parent, extra);
    this.socketThread.postMessage({ type: "send", channel, message } satisfies ToSocketThread);
    return message;
  }

  /**
   * Sends like send(), and resolves with the sequence number of the last request the socket
   * thread had received when this message left: requests numbered above it were sent by a
   * frontend that could already see this message.
   */
  sendFenced(channel: Channel, msgType: string, content: Record<string, unknown>, parent?: JupyterMessage): Promise<number> {
    const message = makeMessage(msgType, content, this.id, parent);
    const fence = new Promise<number>((resolve) => this.fenceWaiters.push(resolve));
    this.socketThread.postMessage({ type: "send", channel, message, fence: true } satisfies ToSocketThread);
    return fence;
  }

  /** The socket thread's answer to a fenced send (they come back in order). */
  fenceReached(seq: number): void {
    this.fenceWaiters.shift()?.(seq);
  }

  publish(msgType: string, content: Record<string, unknown>, parent = this.outputParent, extra: { metadata?: Record<string, unknown>; buffers?: Buffer[] } = {}): void {
    this.send("iopub", msgType, content, parent, extra);
  }

  status(state: "busy" | "idle", parent: JupyterMessage): void {
    this.publish("status", { execution_state: state }, parent);
  }

  /** Buffers stream text; consecutive writes to one stream leave as one `stream` message. */
  stream(name: StreamName, text: string): void {
    if (text === "") return;
    if (this.pendingName !== name) {
      this.flushStreams();
      this.pendingName = name;
      this.bufferedSince = Date.now();
    }
    this.pendingText += text;
    if (Date.now() - this.bufferedSince >= STREAM_FLUSH_MS || this.pendingText.length > STREAM_MAX_BUFFER) this.flushStreams();
    else this.flushTimer ??= setTimeout(() => this.flushStreams(), STREAM_FLUSH_MS);
  }

  flushStreams(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const [name, text] = [this.pendingName, this.pendingText];
    this.pendingName = undefined;
    this.pendingText = "";
    if (!name || !text) return;
    const message = makeMessage("stream", { name, text }, this.id, this.outputParent);
    this.socketThread.postMessage({ type: "send", channel: "iopub", message } satisfies ToSocketThread);
  }
}
