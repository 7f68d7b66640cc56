// One reading of memory for %vram and the history plot: the device's own numbers (NVML where the
// driver has it, else a CUDA-runtime reader the backend passes in), the engine's accounting by
// category, and host RAM.
import { type GpuInfo, gpuInfo } from "../env/gpu-info.js";
import { type CategoryBreakdown, type CategoryBytes, HOST_CATEGORIES, normalizeBreakdown } from "./categories.js";
import { type HostMemory, hostMemory } from "./host-memory.js";

/** cudaMemGetInfo as the CUDA backend exposes it. */
export type CudaMemInfoReader = () => { freeBytes: number; totalBytes: number } | undefined;

export interface DeviceMemory {
  name: string | undefined;
  totalBytes: number;
  usedBytes: number;
  freeBytes: number;
}

export interface VramSnapshot {
  /** Milliseconds since the epoch. */
  time: number;
  /** Where the device numbers came from; "none" on a machine without a GPU. */
  source: "nvml" | "cuda-runtime" | "none";
  device: DeviceMemory | undefined;
  /** Engine categories plus other_processes (when the device is known), current and peak. */
  categories: Record<string, CategoryBytes>;
  /** Sum of the engine's device-resident categories now (offload_host excluded). */
  engineDeviceBytes: number;
  /**
   * How other_processes was found: "per-process" sums NVML's list of other processes;
   * "remainder" is device used minus this process (its NVML figure, or the engine's total, which
   * then also counts this process's CUDA context and allocator slack).
   */
  otherProcessesMethod: "per-process" | "remainder" | undefined;
  host: HostMemory;
  backend: string | undefined;
  /** A line for the user about what they are looking at. */
  note: string;
}

export interface VramSnapshotOptions {
  /** The backend's memory() report (or any per-category breakdown). */
  engine?: CategoryBreakdown;
  backend?: string;
  /** The CUDA runtime's free/total, used when NVML is absent. */
  cudaMemInfo?: CudaMemInfoReader;
  deviceIndex?: number;
  /** Injected readings (tests, or a caller that already has them). */
  gpu?: GpuInfo;
  host?: HostMemory;
  pid?: number;
  now?: number;
}

function deviceSum(categories: Record<string, CategoryBytes>, key: "current" | "peak"): number {
  let s = 0;
  for (const [c, b] of Object.entries(categories)) if (!HOST_CATEGORIES.has(c) && c !== "other_processes") s += b[key];
  return s;
}

export function vramSnapshot(opts: VramSnapshotOptions = {}): VramSnapshot {
  const categories = normalizeBreakdown(opts.engine);
  const engineDeviceBytes = deviceSum(categories, "current");
  const gpu = opts.gpu ?? gpuInfo({ pid: opts.pid });
  const index = opts.deviceIndex ?? 0;
  let source: VramSnapshot["source"] = "none";
  let device: DeviceMemory | undefined;
  let other: number | undefined;
  let method: VramSnapshot["otherProcessesMethod"];

  const nvmlDevice = gpu.available ? gpu.devices[index] : undefined;
  if (nvmlDevice) {
    source = "nvml";
    device = { name: nvmlDevice.name, totalBytes: nvmlDevice.totalBytes, usedBytes: nvmlDevice.usedBytes, freeBytes: nvmlDevice.freeBytes };
    const pid = opts.pid ?? process.pid;
    if (nvmlDevice.processes && nvmlDevice.ownProcessBytes !== undefined) {
      other = nvmlDevice.processes.filter((p) => p.pid !== pid).reduce((s, p) => s + (p.usedBytes ?? 0), 0);
      method = "per-process";
    } else {
      other = Math.max(0, nvmlDevice.usedBytes - (nvmlDevice.ownProcessBytes ?? engineDeviceBytes));
      method = "remainder";
    }
  } else {
    const info = opts.cudaMemInfo?.();
    if (info) {
      source = "cuda-runtime";
      const used = info.totalBytes - info.freeBytes;
      device = { name: undefined, totalBytes: info.totalBytes, usedBytes: used, freeBytes: info.freeBytes };
      other = Math.max(0, used - engineDeviceBytes);
      method = "remainder";
    }
  }
  if (other !== undefined) {
    const prev = categories.other_processes;
    categories.other_processes = { current: other, peak: Math.max(other, prev?.peak ?? 0) };
  }

  const backend = opts.backend;
  const note =
    source === "none"
      ? `No GPU visible: showing the ${backend ?? "CPU"} backend's accounting (bytes its tensors hold by category) and host RAM.`
      : source === "nvml"
        ? `Device numbers from NVML (all processes on GPU ${index}); categories from tsloth's accounting.`
        : "Device numbers from the CUDA runtime (cudaMemGetInfo); categories from tsloth's accounting.";
  return {
    time: opts.now ?? Date.now(),
    source,
    device,
    categories,
    engineDeviceBytes,
    otherProcessesMethod: method,
    host: opts.host ?? hostMemory(),
    backend,
    note,
  };
}
