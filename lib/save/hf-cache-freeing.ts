// Frees the cached download of the base model while a merged save runs (Colab and Kaggle disks
// hold a model's download or its merged copy, often not both). The Hugging Face cache keeps each
// file once as blobs/<hash>, with snapshots/<sha>/<file> a symlink to it; a blob is removed only
// after the merge has read every tensor it holds, and only when no other snapshot links to it.
import { existsSync, lstatSync, readdirSync, readlinkSync, realpathSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";

export interface CachedDownload {
  /** models--org--name */
  repoDir: string;
  snapshotDir: string;
}

/** The hub cache repo a model directory is a snapshot of, or undefined for a plain directory. */
export function cachedDownloadOf(modelDir: string | undefined): CachedDownload | undefined {
  if (!modelDir) return undefined;
  const snapshotDir = resolve(modelDir);
  const snapshots = dirname(snapshotDir);
  const repoDir = dirname(snapshots);
  if (basename(snapshots) !== "snapshots" || !basename(repoDir).startsWith("models--") || !existsSync(join(repoDir, "blobs"))) return undefined;
  return { repoDir, snapshotDir };
}

/** Blobs linked from snapshots other than `except` (those must stay). */
function blobsUsedElsewhere(d: CachedDownload): Set<string> {
  const used = new Set<string>();
  const root = join(d.repoDir, "snapshots");
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isSymbolicLink()) {
        try {
          used.add(realpathSync(p));
        } catch {
          // A dangling link (its blob already freed) keeps nothing alive.
        }
      }
    }
  };
  for (const snap of readdirSync(root)) if (join(root, snap) !== d.snapshotDir) walk(join(root, snap));
  return used;
}

export class CachedDownloadFreer {
  private readonly blobs = new Map<string, { blob: string; bytes: number }>();
  freedBytes = 0;

  /** `files`: the snapshot's weight files the merge reads (absolute paths inside the snapshot). */
  constructor(readonly download: CachedDownload, files: readonly string[]) {
    const keep = blobsUsedElsewhere(download);
    const blobsDir = realpathSync(join(download.repoDir, "blobs"));
    for (const f of files) {
      if (!lstatSync(f).isSymbolicLink()) continue;
      const blob = realpathSync(f);
      if (dirname(blob) !== blobsDir || keep.has(blob)) continue;
      this.blobs.set(resolve(f), { blob, bytes: statSync(blob).size });
    }
  }

  /** Bytes that freeing every read file would give back. */
  freeableBytes(): number {
    let n = 0;
    for (const b of this.blobs.values()) n += b.bytes;
    return n;
  }

  /** Bytes freeing `file` would give back (0 when its blob must stay). */
  bytesOf(file: string): number {
    return this.blobs.get(resolve(file))?.bytes ?? 0;
  }

  /** Called once the merge has read everything in `file`: removes its blob and the snapshot link. */
  release(file: string): void {
    const entry = this.blobs.get(resolve(file));
    if (!entry) return;
    this.blobs.delete(resolve(file));
    if (readlinkSync(file) && existsSync(entry.blob)) rmSync(entry.blob, { force: true });
    rmSync(file, { force: true });
    this.freedBytes += entry.bytes;
  }
}
