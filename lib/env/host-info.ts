// The host side of %env: CPUs, RAM, OS (from systeminformation) and free disk where models and
// outputs go. GPU numbers come from NVML (gpu-info.ts), never from systeminformation.
import { statfsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import si from "systeminformation";

export interface DiskSpace {
  path: string;
  freeBytes: number;
  totalBytes: number;
}

export interface HostInfo {
  physicalCpus: number;
  logicalCpus: number;
  cpuModel: string;
  ramTotalBytes: number;
  /** Memory available to new allocations (MemAvailable on Linux), not just unused pages. */
  ramAvailableBytes: number;
  os: string;
  disks: DiskSpace[];
}

/**
 * Free space of the filesystem holding `path`. A path that does not exist yet (an output folder
 * about to be made) reports the filesystem of its nearest existing parent. statfs answers for the
 * right mount directly, where matching systeminformation's mount list by prefix can pick the wrong
 * one inside containers with bind mounts.
 */
export function diskSpace(path: string): DiskSpace {
  let p = resolve(path);
  for (;;) {
    try {
      const s = statfsSync(p);
      return { path: resolve(path), freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
    } catch (e) {
      const up = dirname(p);
      if (up === p) throw new Error(`tsloth: cannot read free disk space for ${path}: ${(e as Error).message}`);
      p = up;
    }
  }
}

/** Host facts for %env; `diskPaths` are where models and outputs go (default: the working directory). */
export async function hostInfo(opts: { diskPaths?: readonly string[] } = {}): Promise<HostInfo> {
  const [cpu, mem, os] = await Promise.all([si.cpu(), si.mem(), si.osInfo()]);
  const paths = opts.diskPaths?.length ? opts.diskPaths : [process.cwd()];
  return {
    physicalCpus: cpu.physicalCores || cpu.cores,
    logicalCpus: cpu.cores,
    cpuModel: [cpu.manufacturer, cpu.brand].filter(Boolean).join(" ").trim(),
    ramTotalBytes: mem.total,
    ramAvailableBytes: mem.available,
    os: [os.distro, os.release, `(${os.platform} ${os.kernel}, ${os.arch})`].filter(Boolean).join(" "),
    disks: paths.map((p) => diskSpace(p)),
  };
}
