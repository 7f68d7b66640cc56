// Host RAM now, read synchronously so snapshots can be taken every step of a training loop.
import { readFileSync } from "node:fs";
import { freemem, totalmem } from "node:os";

export interface HostMemory {
  totalBytes: number;
  /** What new allocations can get: Linux MemAvailable (free + reclaimable cache), else os.freemem(). */
  availableBytes: number;
  /** Resident set of this process (pinned offload buffers and the CPU backend's tensors live here). */
  processRssBytes: number;
}

function memAvailableLinux(): number | undefined {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export function hostMemory(): HostMemory {
  return { totalBytes: totalmem(), availableBytes: memAvailableLinux() ?? freemem(), processRssBytes: process.memoryUsage.rss() };
}
