// Everything written to process.stdout / process.stderr on the main thread (console.*, user
// code, lib progress bars) becomes `stream` output of the current cell.
import type { KernelSession, StreamName } from "../session.js";

export function captureProcessStreams(session: KernelSession): void {
  for (const name of ["stdout", "stderr"] as StreamName[]) {
    const stream = process[name];
    const write = (chunk: unknown, encoding?: unknown, callback?: unknown): boolean => {
      const cb = typeof encoding === "function" ? encoding : callback;
      const text =
        typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString(typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
      session.stream(name, text);
      if (typeof cb === "function") queueMicrotask(() => (cb as () => void)());
      return true;
    };
    stream.write = write as typeof stream.write;
  }
}
