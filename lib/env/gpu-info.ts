// GPU facts for %env and %vram, read from NVML (the driver's own numbers: all processes, not
// only this one). Absent NVML (CPU machine, no driver) gives { available: false } with a reason.
import { type NvmlDevice, openNvml } from "./nvml.js";

export interface GpuDeviceInfo extends NvmlDevice {
  /** Bytes this process holds on the device, when NVML lists per-process usage and finds our pid. */
  ownProcessBytes: number | undefined;
}

export type GpuInfo =
  | { available: true; driverVersion: string; cudaDriverVersion: string; devices: GpuDeviceInfo[] }
  | { available: false; reason: string };

/** Where to read from; tests pass a fake NVML. */
export interface GpuInfoOptions {
  nvml?: ReturnType<typeof openNvml> | null;
  pid?: number;
}

export function gpuInfo(opts: GpuInfoOptions = {}): GpuInfo {
  const nvml = opts.nvml === undefined ? openNvml() : opts.nvml ?? undefined;
  if (!nvml) return { available: false, reason: "NVML (libnvidia-ml.so.1) not found or no NVIDIA driver: no GPU visible" };
  const pid = opts.pid ?? process.pid;
  try {
    const count = nvml.deviceCount();
    const devices: GpuDeviceInfo[] = [];
    for (let i = 0; i < count; i++) {
      const d = nvml.device(i);
      const own = d.processes?.find((p) => p.pid === pid);
      devices.push({ ...d, ownProcessBytes: own?.usedBytes });
    }
    if (devices.length === 0) return { available: false, reason: "NVML reports no GPU devices" };
    return { available: true, driverVersion: nvml.driverVersion(), cudaDriverVersion: nvml.cudaDriverVersion(), devices };
  } catch (e) {
    return { available: false, reason: (e as Error).message };
  }
}

/**
 * Bytes a training run in this process may count on for device `index`: the total less what other
 * processes hold (what this process already holds stays usable to it). Undefined without a GPU.
 * %estimate compares its prediction with this.
 */
export function usableGpuBytes(info: GpuInfo = gpuInfo(), index = 0): number | undefined {
  if (!info.available) return undefined;
  const d = info.devices[index];
  if (!d) return undefined;
  const others = Math.max(0, d.usedBytes - (d.ownProcessBytes ?? 0));
  return d.totalBytes - others;
}
