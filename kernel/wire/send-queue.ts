// zeromq 6 refuses a second send while one is in flight ("Socket is busy writing"), so every
// socket's sends go through one promise chain.
import type { Writable } from "zeromq";
import { logKernel } from "../log.js";

export class SendQueue {
  private tail: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly socket: Writable,
    private readonly name: string,
  ) {}

  send(frames: Buffer[]): Promise<void> {
    this.tail = this.tail.then(
      () => (this.closed ? undefined : this.socket.send(frames)),
    ).catch((e: unknown) => {
      if (!this.closed) logKernel(`send on ${this.name} failed: ${(e as Error).message}`);
    });
    return this.tail;
  }

  /** The socket is closing: what is still queued is dropped without a complaint per message. */
  close(): void {
    this.closed = true;
  }

  /** Resolves once every send queued so far has left. */
  drained(): Promise<void> {
    return this.tail;
  }
}
