// Deciding, before a merged save starts, whether freeing the base model's cached download as the
// merge reads it makes the save fit on the disk: the disk use is simulated in plan order (bytes
// written so far minus blobs already freed), and its peak must fit in what is free now.
import { join } from "node:path";
import type { Platform } from "../env/platform.js";
import type { BaseWeightReader } from "./base-weights.js";
import { deviceOf, diskSpaceError, formatGB, type DiskShortfall } from "./disk-preflight.js";
import { CachedDownloadFreer, cachedDownloadOf } from "./hf-cache-freeing.js";
import type { MergePlanEntry } from "./merge-plan.js";

const LOCAL_HINT = "Free space on that disk or choose another directory. (On Colab and Kaggle tsloth frees the base model's cached download " +
  "as the merge reads it when that is enough; force the platform with platform: \"colab\" or TSLOTH_PLATFORM=colab to allow it here.)";

/** Peak bytes on the disk while merging with freeing: Σ written so far − Σ blobs released so far. */
export function peakDiskWithFreeing(plan: readonly MergePlanEntry[], bytesOf: (e: MergePlanEntry) => number, fileOf: (name: string) => string | undefined,
  blobBytes: (file: string) => number): number {
  const last = new Map<string, number>();
  plan.forEach((e, i) => { const f = fileOf(e.name); if (f) last.set(f, i); });
  let used = 0, peak = 0;
  plan.forEach((e, i) => {
    used += bytesOf(e);
    peak = Math.max(peak, used);
    const f = fileOf(e.name);
    if (f && last.get(f) === i) used -= blobBytes(f);
  });
  return peak;
}

/**
 * Returns a freer when the platform is Colab/Kaggle, the base model is a hub-cache snapshot read
 * from its original shards on the short disk, and freeing as the merge goes makes the save fit;
 * otherwise throws the disk-space error (nothing has been written).
 */
export function planCacheFreeing(args: {
  platform: Platform; modelDir: string | undefined; base: BaseWeightReader; plan: readonly MergePlanEntry[];
  shortfalls: DiskShortfall[]; bytesOf: (e: MergePlanEntry) => number; extraBytes: number; allowed: boolean;
}): CachedDownloadFreer {
  const { platform, shortfalls: short } = args;
  if (platform.name === "local" || !args.allowed) throw diskSpaceError(short, LOCAL_HINT);
  const download = cachedDownloadOf(args.modelDir);
  const files = args.base.sourceFiles();
  if (!download || files.length === 0 || short.length !== 1 || short[0]!.device !== deviceOf(join(download.repoDir, "blobs")))
    throw diskSpaceError(short, `On ${platform.name} tsloth frees the base model's cached download to make room, but it is not on that disk ` +
      `(or the base weights are not read from it). Free space or choose a directory on another disk.`);
  const freer = new CachedDownloadFreer(download, files);
  const sizes = new Map(files.map((f) => [f, freer.bytesOf(f)]));
  const peak = peakDiskWithFreeing(args.plan, args.bytesOf, (n) => args.base.sourceFileOf(n), (f) => sizes.get(f) ?? 0) + args.extraBytes;
  const free = short[0]!.freeBytes;
  if (peak > free)
    throw diskSpaceError([{ ...short[0]!, needBytes: peak }], `Even freeing the cached download of the base model (${formatGB(freer.freeableBytes())}) ` +
      `as the merge reads it leaves ${formatGB(peak - free)} missing. Free space or choose a directory on another disk.`);
  return freer;
}
