// Where a step's time goes, library call by library call. With TSLOTH_CUDA_PROFILE=1 every checked
// call waits for the device to finish, and the wall time since the previous call (its kernels, its
// launch, and the host work in between) is added to that call's total. Serializing host and device
// slows the step down; the shares are the point, not the sum.

export interface OpTime {
  op: string;
  calls: number;
  ms: number;
}

const enabled = process.env.TSLOTH_CUDA_PROFILE === "1";
const totals = new Map<string, OpTime>();
let last = 0;

/** True when TSLOTH_CUDA_PROFILE=1: check() then calls record() after every library call. */
export function opProfileEnabled(): boolean {
  return enabled;
}

/** Charges the time since the previous call to `op`, after `sync` has drained the device. */
export function record(op: string, sync: () => void): void {
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
  return [...totals.values()].sort((a, b) => b.ms - a.ms);
}

export function resetOpProfile(): void {
  totals.clear();
  last = 0;
}
