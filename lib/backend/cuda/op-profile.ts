// Where a step's time goes, library call by library call (TSLOTH_CUDA_PROFILE):
//   "gpu": device time. A timing event is recorded on the compute stream after every call (the
//     library also marks named points inside composite calls, e.g. a linear's base GEMM and its
//     LoRA part), and the time between consecutive events is that call's: exact while the host
//     stays ahead of the device, as in training; nothing waits until the totals are read.
//   "1" (or "host"): every call waits for the device, and the wall time since the previous call
//     (its kernels, its launch, and the host work in between) is charged to it. Serializing host
//     and device slows the step down and charges host gaps to small ops; the shares are the point.
// Either mode turns off recorded step graphs (a capture cannot be synchronized or timed per call).

export interface OpTime {
  op: string;
  calls: number;
  ms: number;
}

/** What the gpu mode needs from the library (bound by native.ts when it loads). */
export interface DeviceProfiler {
  mark(op: string): void;
  collect(): OpTime[];
  reset(): void;
}

type Mode = "host" | "gpu" | null;
const raw = process.env.TSLOTH_CUDA_PROFILE;
const mode: Mode = raw === "gpu" ? "gpu" : raw === "1" || raw === "host" ? "host" : null;
const totals = new Map<string, OpTime>();
let last = 0;
let device: DeviceProfiler | null = null;

/** True when TSLOTH_CUDA_PROFILE is set to a mode: check() then calls record() after every library call. */
export function opProfileEnabled(): boolean {
  return mode !== null;
}

/** "gpu" when the profile reads device time (the library must be told to record events). */
export function opProfileMode(): Mode {
  return mode;
}

/** Called by native.ts once the library is loaded and its profile switched on. */
export function bindDeviceProfiler(p: DeviceProfiler): void {
  device = p;
}

/** After a successful call: marks it on the device (gpu), or charges the wall time since the previous call after `sync` drained the device (host). */
export function record(op: string, sync: () => void): void {
  if (mode === "gpu") {
    device?.mark(op);
    return;
  }
  sync();
  const now = performance.now();
  if (last > 0) {
    const t = totals.get(op) ?? { op, calls: 0, ms: 0 };
    t.calls++;
    t.ms += now - last;
    totals.set(op, t);
  }
  last = now;
}

/** Totals since the last reset, largest first. */
export function opProfile(): OpTime[] {
  if (mode === "gpu") return device ? device.collect() : [];
  return [...totals.values()].sort((a, b) => b.ms - a.ms);
}

export function resetOpProfile(): void {
  if (mode === "gpu") device?.reset();
  totals.clear();
  last = 0;
}
