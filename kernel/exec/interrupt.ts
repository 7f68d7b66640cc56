// Interrupting a cell: SIGINT (sent by the frontend, or by the socket thread for an
// interrupt_request) breaks synchronous user code through vm's breakOnSigint, and here aborts
// the running cell's AbortSignal, which ends a long await and which lib/ work (training,
// generation, saving) checks at step boundaries.
export class KeyboardInterrupt extends Error {
  constructor() {
    super("the cell was interrupted");
    this.name = "KeyboardInterrupt";
  }
}

let controller = new AbortController();
let cellRunning = false;

/**
 * The abort signal of the running cell: hand it to long lib/ calls (`{ signal }`). A fresh one
 * is made for every cell, so an interrupt never leaks into the next cell.
 */
export function kernelAbortSignal(): AbortSignal {
  return controller.signal;
}

export function beginCell(): AbortSignal {
  controller = new AbortController();
  cellRunning = true;
  return controller.signal;
}

export function endCell(): void {
  cellRunning = false;
}

/** Rejects when the running cell is interrupted; race the cell's own promise against it. */
export function whenInterrupted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

export function interruptRunningCell(): boolean {
  if (!cellRunning || controller.signal.aborted) return false;
  controller.abort(new KeyboardInterrupt());
  return true;
}

export function installSigintHandler(log: (m: string) => void): void {
  process.on("SIGINT", () => {
    if (!interruptRunningCell()) log("SIGINT while no cell runs: ignored");
  });
}
