// Kernel diagnostics go straight to file descriptor 2: process.stderr is captured into the
// running cell's output, and a worker's console is relayed through the (possibly busy) main thread.
import { writeSync } from "node:fs";

export function logKernel(message: string): void {
  try {
    writeSync(2, `[tsloth kernel] ${message}\n`);
  } catch {
    // stderr closed: nothing useful left to do with a diagnostic
  }
}
