// Whether the CUDA backend can run here, and which backend a run should use. The engine calls
// `cudaAvailable()` to pick CUDA automatically when a GPU and the library are present; the
// environment variable TSLOTH_BACKEND=cpu|cuda (or an explicit option) overrides the choice.
import { existsSync } from "node:fs";
import { cudaLibraryPath, lastError, native } from "./native.js";

export interface CudaAvailability {
  ok: boolean;
  /** Why not (or, when ok, the device that will be used). */
  reason: string;
}

let cached: CudaAvailability | null = null;

/** Probes once: library file, library load, a visible GPU, the device start-up, cuBLASLt. */
export function cudaAvailable(): CudaAvailability {
  if (cached) return cached;
  cached = probe();
  return cached;
}

function probe(): CudaAvailability {
  const path = cudaLibraryPath();
  if (!existsSync(path)) return { ok: false, reason: `no CUDA library: ${path} is not built (kernels-cuda/build.sh)` };
  let lib;
  try {
    lib = native();
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  if (lib.deviceCount() === 0) return { ok: false, reason: "no GPU: no CUDA device is visible (driver missing or no GPU)" };
  if (lib.init(0) !== 0) return { ok: false, reason: `no GPU: ${lastError()}` };
  if (lib.gemmAvailable() !== 0) return { ok: false, reason: `no cuBLASLt: ${lastError()}` };
  return { ok: true, reason: "CUDA device 0" };
}

export type BackendChoice = "cpu" | "cuda";

/**
 * The backend to use: an explicit option wins, then TSLOTH_BACKEND, then CUDA when available.
 * Asking for CUDA where it cannot run is an error that says why.
 */
export function chooseBackend(option?: BackendChoice | "auto"): BackendChoice {
  const env = process.env.TSLOTH_BACKEND;
  const wanted = option && option !== "auto" ? option : env === "cpu" || env === "cuda" ? env : "auto";
  if (env && env !== "cpu" && env !== "cuda" && env !== "auto") {
    throw new Error(`tsloth: TSLOTH_BACKEND must be cpu, cuda or auto, found "${env}"`);
  }
  if (wanted === "cpu") return "cpu";
  const avail = cudaAvailable();
  if (wanted === "cuda" && !avail.ok) {
    throw new Error(`tsloth: the CUDA backend was asked for but cannot run: ${avail.reason}. Use the cpu backend or fix the above.`);
  }
  return avail.ok ? "cuda" : "cpu";
}
