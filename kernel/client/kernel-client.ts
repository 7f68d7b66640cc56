// A minimal Jupyter client over ZeroMQ: what `tsloth run` uses to drive a kernel process.
import { randomUUID } from "node:crypto";
import * as zmq from "zeromq";
import { decodeFrames, encodeFrames } from "../wire/codec.js";
import { endpoint, type ConnectionInfo } from "../wire/connection.js";
import { MessageSigner } from "../wire/hmac.js";
import { makeMessage, type JupyterMessage } from "../wire/message.js";
import { SendQueue } from "../wire/send-queue.js";

type Listener = (message: JupyterMessage) => void;

export class KernelClient {
  private readonly session = randomUUID();
  private readonly signer: MessageSigner;
  private readonly shell = new zmq.Dealer();
  private readonly control = new zmq.Dealer();
  private readonly iopub = new zmq.Subscriber();
  private readonly shellQueue: SendQueue;
  private readonly controlQueue: SendQueue;
  private readonly listeners = new Map<string, Listener>();
  private closed = false;

  constructor(private readonly connection: ConnectionInfo) {
    this.signer = new MessageSigner(connection.key, connection.signature_scheme);
    this.shellQueue = new SendQueue(this.shell, "client shell");
    this.controlQueue = new SendQueue(this.control, "client control");
  }

  connect(): void {
    // A kernel that is still starting binds late; retry the connection quickly (default 100 ms).
    for (const s of [this.shell, this.control, this.iopub]) s.reconnectInterval = 10;
    this.shell.connect(endpoint(this.connection, "shell"));
    this.control.connect(endpoint(this.connection, "control"));
    this.iopub.connect(endpoint(this.connection, "iopub"));
    this.iopub.subscribe();
    void this.pump(this.shell);
    void this.pump(this.control);
    void this.pump(this.iopub);
  }

  /** Sends a request; `onMessage` sees its reply and every iopub message it caused. */
  request(channel: "shell" | "control", msgType: string, content: Record<string, unknown>, onMessage: Listener): string {
    const message = makeMessage(msgType, content, this.session);
    this.listeners.set(message.header.msg_id, onMessage);
    void (channel === "shell" ? this.shellQueue : this.controlQueue).send(encodeFrames(message, this.signer));
    return message.header.msg_id;
  }

  forget(msgId: string): void {
    this.listeners.delete(msgId);
  }

  /** Waits until the kernel answers kernel_info and its iopub messages reach us. */
  async waitForReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !this.closed) {
      const ok = await new Promise<boolean>((resolve) => {
        let replied = false;
        let published = false;
        const id = this.request("shell", "kernel_info_request", {}, (m) => {
          if (m.header.msg_type === "kernel_info_reply") replied = true;
          if (m.header.msg_type === "status") published = true;
          if (replied && published) (this.forget(id), resolve(true));
        });
        setTimeout(() => (this.forget(id), resolve(false)), 500);
      });
      if (ok) return;
    }
    if (this.closed) throw new Error("the client was closed before the kernel answered kernel_info");
    throw new Error(`the kernel did not answer kernel_info within ${timeoutMs / 1000} s`);
  }

  close(): void {
    this.closed = true;
    // Drop what a dead kernel never took: with the default linger, ZeroMQ holds the process open
    // until queued requests are delivered, which never happens.
    this.shellQueue.close();
    this.controlQueue.close();
    for (const s of [this.shell, this.control, this.iopub]) {
      s.linger = 0;
      s.close();
    }
  }

  private async pump(socket: zmq.Dealer | zmq.Subscriber): Promise<void> {
    try {
      for await (const frames of socket) {
        const decoded = decodeFrames(frames as Buffer[], this.signer);
        if (!decoded.ok) continue;
        const parent = decoded.message.parent_header.msg_id;
        if (typeof parent === "string") this.listeners.get(parent)?.(decoded.message);
      }
    } catch {
      // socket closed
    }
  }
}
