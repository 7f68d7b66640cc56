// input() in cells: an input_request on the stdin channel, answered by the frontend's input_reply.
import { KeyboardInterrupt, kernelAbortSignal } from "../exec/interrupt.js";
import type { KernelSession } from "../session.js";
import type { JupyterMessage } from "../wire/message.js";

export class StdinNotAllowed extends Error {
  constructor() {
    super("this frontend does not accept input (allow_stdin is false); pass values in code instead");
    this.name = "StdinNotImplementedError";
  }
}

export class InputBroker {
  /** The execute_request that runs now, and whether it allows stdin. */
  request: { parent: JupyterMessage; allowStdin: boolean } | undefined;
  private pending: ((value: string) => void) | undefined;

  constructor(private readonly session: KernelSession) {}

  input = (prompt = "", options: { password?: boolean } = {}): Promise<string> => {
    const request = this.request;
    if (!request?.allowStdin) return Promise.reject(new StdinNotAllowed());
    if (this.pending) return Promise.reject(new Error("input(): another input() is already waiting for the user"));
    this.session.flushStreams();
    this.session.send("stdin", "input_request", { prompt, password: options.password === true }, request.parent);
    const signal = kernelAbortSignal();
    return new Promise<string>((resolve, reject) => {
      const onAbort = () => {
        this.pending = undefined;
        reject(new KeyboardInterrupt());
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.pending = (value) => {
        signal.removeEventListener("abort", onAbort);
        this.pending = undefined;
        resolve(value);
      };
    });
  };

  /** An input_reply arrived on stdin. */
  reply(message: JupyterMessage): void {
    const value = message.content.value;
    this.pending?.(typeof value === "string" ? value : "");
  }
}
