// Atomic replacement of an output directory (DESIGN.md: write under a temporary name beside the
// target, then rename). A save is built in `.NAME.tsloth-staging-PID` beside DIR; on commit the
// staging directory and an old DIR swap places in one step (exchange-directories.ts) and the old
// save, now under the staging name, is removed. Where the filesystem cannot swap, an old DIR is
// renamed to `.NAME.tsloth-replaced-PID` first and the staging directory renamed to DIR. Whatever
// point a save is killed at, DIR is the old save or the new one, never a partial one (or, between
// the two renames of the fallback, absent with the old save beside it); leftovers of a killed save
// are cleaned, and an old DIR put back, by the next save to the same place.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { exchangeDirectories } from "./exchange-directories.js";

const STAGING = "tsloth-staging";
const REPLACED = "tsloth-replaced";

/** Files whose presence says a directory holds a model or adapter save that may be replaced. */
const SAVE_MARKERS = ["config.json", "adapter_config.json", "model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors"];

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some filesystems (FUSE mounts such as Google Drive) refuse fsync on directories; rename still orders.
  }
}

/** Removes what killed saves to `target` left behind, putting a replaced DIR back if the new one never arrived. */
export function recoverInterruptedSaves(target: string): string[] {
  const parent = dirname(target);
  const base = basename(target);
  if (!existsSync(parent)) return [];
  const lines: string[] = [];
  const pattern = new RegExp(`^\\.${base.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.(${STAGING}|${REPLACED})-(\\d+)$`);
  for (const entry of readdirSync(parent)) {
    const m = pattern.exec(entry);
    if (!m || alive(Number(m[2]))) continue;
    const path = join(parent, entry);
    if (m[1] === REPLACED && !existsSync(target)) {
      renameSync(path, target);
      lines.push(`tsloth: an earlier save to ${target} was interrupted while replacing it; the previous save was put back.`);
    } else {
      rmSync(path, { recursive: true, force: true });
      lines.push(`tsloth: removed ${path}, left by an interrupted save.`);
    }
  }
  return lines;
}

/** Refuses to replace a directory that is not an earlier save (it might hold the user's other files). */
function checkReplaceable(target: string): void {
  if (!existsSync(target)) return;
  if (!statSync(target).isDirectory())
    throw new Error(`tsloth: ${target} is a file; the save needs a directory there. Choose another path or remove the file.`);
  const entries = readdirSync(target);
  if (entries.length === 0 || entries.some((e) => SAVE_MARKERS.includes(e))) return;
  throw new Error(`tsloth: ${target} exists and does not look like a saved model (no config.json or adapter_config.json); ` +
    `tsloth replaces a directory only when it holds an earlier save. Choose another directory or empty this one.`);
}

export class StagedDirectory {
  private done = false;

  private constructor(readonly target: string, readonly path: string) {}

  /** Cleans leftovers of killed saves, checks DIR may be replaced, and creates the staging directory. */
  static begin(target: string): { staged: StagedDirectory; lines: string[] } {
    const lines = recoverInterruptedSaves(target);
    checkReplaceable(target);
    const parent = dirname(target);
    mkdirSync(parent, { recursive: true });
    const path = join(parent, `.${basename(target)}.${STAGING}-${process.pid}`);
    rmSync(path, { recursive: true, force: true });
    mkdirSync(path);
    return { staged: new StagedDirectory(target, path), lines };
  }

  /** Puts the whole new save in place of DIR; the old DIR is removed only after the swap. */
  commit(): void {
    if (this.done) throw new Error(`tsloth: internal: the save to ${this.target} is already finished`);
    fsyncDir(this.path);
    const replacing = existsSync(this.target);
    if (replacing && exchangeDirectories(this.path, this.target)) {
      fsyncDir(dirname(this.target));
      this.done = true;
      rmSync(this.path, { recursive: true, force: true });
      return;
    }
    const old = join(dirname(this.target), `.${basename(this.target)}.${REPLACED}-${process.pid}`);
    if (replacing) renameSync(this.target, old);
    renameSync(this.path, this.target);
    fsyncDir(dirname(this.target));
    this.done = true;
    if (replacing) rmSync(old, { recursive: true, force: true });
  }

  /** The files of a finished save, sorted. */
  static listFiles(dir: string): string[] {
    return readdirSync(dir).sort().map((f) => join(dir, f));
  }

  /** Drops the staging directory; DIR is left as it was. */
  discard(): void {
    if (this.done) return;
    this.done = true;
    rmSync(this.path, { recursive: true, force: true });
  }
}
