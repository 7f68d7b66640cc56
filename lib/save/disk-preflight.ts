// Disk preflight: before a save starts, the space it will write is compared with what is free on
// each filesystem it writes to (needs on one filesystem add up), so a save never dies half-way
// with a full disk. The error says how much is missing where.
import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { diskSpace } from "../env/host-info.js";

export interface DiskNeed {
  path: string;
  bytes: number;
  what: string;
}

export interface DiskShortfall {
  path: string;
  device: number;
  needBytes: number;
  freeBytes: number;
  what: string[];
}

export type FreeBytesOf = (path: string) => number;

export const freeDiskBytes: FreeBytesOf = (path) => diskSpace(path).freeBytes;

/** The filesystem id of a path, or of its nearest existing parent (an output dir not made yet). */
export function deviceOf(path: string): number {
  let p = resolve(path);
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return statSync(p).dev;
}

/** Decimal gigabytes as disks are sold and `df -H` shows them; megabytes below 0.1 GB. */
export function formatGB(bytes: number): string {
  return bytes >= 1e8 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(2)} MB`;
}

/** Filesystems where the needs exceed the free space (empty when everything fits). */
export function diskShortfalls(needs: readonly DiskNeed[], freeOf: FreeBytesOf = freeDiskBytes): DiskShortfall[] {
  const byDevice = new Map<number, DiskShortfall>();
  for (const n of needs) {
    if (n.bytes <= 0) continue;
    const device = deviceOf(n.path);
    const s = byDevice.get(device) ?? { path: n.path, device, needBytes: 0, freeBytes: freeOf(n.path), what: [] };
    if (!s.path.split(" and ").includes(n.path)) s.path += ` and ${n.path}`;
    s.needBytes += n.bytes;
    s.what.push(`${n.what} ${formatGB(n.bytes)}`);
    byDevice.set(device, s);
  }
  return [...byDevice.values()].filter((s) => s.needBytes > s.freeBytes);
}

export function diskSpaceError(shortfalls: readonly DiskShortfall[], hint: string): Error {
  const parts = shortfalls.map((s) =>
    `${s.path} needs ${formatGB(s.needBytes)} (${s.what.join(", ")}) but its disk has ${formatGB(s.freeBytes)} free: ${formatGB(s.needBytes - s.freeBytes)} missing`);
  return new Error(`tsloth: not enough disk space to save: ${parts.join("; ")}. Nothing was written. ${hint}`);
}
