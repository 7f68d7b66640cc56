// A thin binding to NVML (libnvidia-ml.so.1, shipped with the NVIDIA driver) through koffi.
// Loaded on first use; where the library is absent (no driver, CPU machine) openNvml() returns
// undefined and callers fall back. Only calls present since NVML 11 are bound, so old drivers work.
import koffi from "koffi";

const NVML_SUCCESS = 0;
// Buffer sizes from nvml.h (NVML_DEVICE_NAME_V2_BUFFER_SIZE, NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE).
const NAME_BUFFER = 96;
const VERSION_BUFFER = 80;
// nvmlProcessInfo_t (v2 layout): uint32 pid, uint64 usedGpuMemory, uint32 gpuInstanceId,
// uint32 computeInstanceId, padded to 24 bytes.
const PROCESS_INFO_BYTES = 24;

export interface NvmlProcess {
  pid: number;
  /** undefined when NVML cannot tell (NVML_VALUE_NOT_AVAILABLE, e.g. without permission). */
  usedBytes: number | undefined;
}

export interface NvmlDevice {
  index: number;
  name: string;
  totalBytes: number;
  freeBytes: number;
  usedBytes: number;
  computeCapability: [number, number];
  processes: NvmlProcess[] | undefined;
}

export interface Nvml {
  driverVersion(): string;
  /** e.g. "12.4": the newest CUDA version the driver supports. */
  cudaDriverVersion(): string;
  deviceCount(): number;
  device(index: number): NvmlDevice;
}

type Fn = (...args: unknown[]) => unknown;
let cached: Nvml | null | undefined;

function bind(): Nvml | null {
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load("libnvidia-ml.so.1");
  } catch {
    return null;
  }
  const handle = koffi.pointer("tslothNvmlDevice", koffi.opaque());
  const f = (proto: string): Fn => lib.func(proto) as Fn;
  const init = f("int nvmlInit_v2()");
  const errorString = f("const char *nvmlErrorString(int result)");
  const getDriverVersion = f("int nvmlSystemGetDriverVersion(_Out_ uint8_t *version, uint32_t length)");
  const getCudaVersion = f("int nvmlSystemGetCudaDriverVersion_v2(_Out_ int *version)");
  const getCount = f("int nvmlDeviceGetCount_v2(_Out_ uint32_t *count)");
  const getHandle = f(`int nvmlDeviceGetHandleByIndex_v2(uint32_t index, _Out_ ${koffi.type(handle).name} *device)`);
  const getName = f(`int nvmlDeviceGetName(${koffi.type(handle).name} device, _Out_ uint8_t *name, uint32_t length)`);
  const getMemory = f(`int nvmlDeviceGetMemoryInfo(${koffi.type(handle).name} device, _Out_ uint64_t *memory)`);
  const getCapability = f(`int nvmlDeviceGetCudaComputeCapability(${koffi.type(handle).name} device, _Out_ int *major, _Out_ int *minor)`);
  let getProcesses: Fn | undefined;
  try {
    getProcesses = f(`int nvmlDeviceGetComputeRunningProcesses_v3(${koffi.type(handle).name} device, _Inout_ uint32_t *count, _Out_ uint8_t *infos)`);
  } catch {
    getProcesses = undefined; // drivers before R510 lack _v3; per-process numbers are optional
  }

  const check = (rc: unknown, what: string) => {
    if (rc !== NVML_SUCCESS) throw new Error(`NVML ${what} failed: ${String(errorString(rc))} (${String(rc)})`);
  };
  const cString = (buf: Buffer) => {
    const end = buf.indexOf(0);
    return buf.subarray(0, end < 0 ? buf.length : end).toString("utf8");
  };
  try {
    check(init(), "nvmlInit_v2");
  } catch {
    return null; // library present but no usable driver (e.g. a container without the GPU)
  }

  const deviceHandle = (index: number): unknown => {
    const out: unknown[] = [null];
    check(getHandle(index, out), `nvmlDeviceGetHandleByIndex_v2(${index})`);
    return out[0];
  };

  const processes = (h: unknown): NvmlProcess[] | undefined => {
    if (!getProcesses) return undefined;
    for (let capacity = 16; capacity <= 1024; capacity *= 4) {
      const count = [capacity];
      const buf = Buffer.alloc(capacity * PROCESS_INFO_BYTES);
      const rc = getProcesses(h, count, buf);
      if (rc === 7 /* NVML_ERROR_INSUFFICIENT_SIZE */) continue;
      if (rc !== NVML_SUCCESS) return undefined;
      const list: NvmlProcess[] = [];
      for (let i = 0; i < count[0]; i++) {
        const o = i * PROCESS_INFO_BYTES;
        const used = buf.readBigUInt64LE(o + 8);
        list.push({ pid: buf.readUInt32LE(o), usedBytes: used === 0xffffffffffffffffn ? undefined : Number(used) });
      }
      return list;
    }
    return undefined;
  };

  return {
    driverVersion() {
      const buf = Buffer.alloc(VERSION_BUFFER);
      check(getDriverVersion(buf, VERSION_BUFFER), "nvmlSystemGetDriverVersion");
      return cString(buf);
    },
    cudaDriverVersion() {
      const v = [0];
      check(getCudaVersion(v), "nvmlSystemGetCudaDriverVersion_v2");
      return `${Math.floor(v[0] / 1000)}.${Math.floor((v[0] % 1000) / 10)}`;
    },
    deviceCount() {
      const n = [0];
      check(getCount(n), "nvmlDeviceGetCount_v2");
      return n[0];
    },
    device(index: number): NvmlDevice {
      const h = deviceHandle(index);
      const name = Buffer.alloc(NAME_BUFFER);
      check(getName(h, name, NAME_BUFFER), "nvmlDeviceGetName");
      const mem = new BigUint64Array(3); // nvmlMemory_t: total, free, used
      check(getMemory(h, mem), "nvmlDeviceGetMemoryInfo");
      const major = [0];
      const minor = [0];
      check(getCapability(h, major, minor), "nvmlDeviceGetCudaComputeCapability");
      return {
        index,
        name: cString(name),
        totalBytes: Number(mem[0]),
        freeBytes: Number(mem[1]),
        usedBytes: Number(mem[2]),
        computeCapability: [major[0], minor[0]],
        processes: processes(h),
      };
    },
  };
}

/** NVML bound and initialized, or undefined where the driver library is absent or unusable. */
export function openNvml(): Nvml | undefined {
  if (cached === undefined) cached = bind();
  return cached ?? undefined;
}
