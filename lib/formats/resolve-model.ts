// Turns a model argument into a directory on disk: the embedded "tsloth-tiny", a local directory,
// or a hub id already in the local Hugging Face cache (the hub's models--org--name/snapshots
// layout). tsloth never downloads; a model that is not on disk gets the command that would fetch it.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { assetPath } from "../paths.js";

export const TINY_MODEL_NAME = "tsloth-tiny";
export const TINY_DATASET_NAME = "tsloth-tiny-data";

/** Hub cache roots in huggingface_hub's order of precedence. */
export function hfCacheDirs(cacheDir?: string): string[] {
  const env = process.env;
  const dirs: string[] = [];
  if (cacheDir) dirs.push(cacheDir);
  if (env.HF_HUB_CACHE) dirs.push(env.HF_HUB_CACHE);
  if (env.HUGGINGFACE_HUB_CACHE) dirs.push(env.HUGGINGFACE_HUB_CACHE);
  if (env.HF_HOME) dirs.push(join(env.HF_HOME, "hub"));
  if (env.XDG_CACHE_HOME) dirs.push(join(env.XDG_CACHE_HOME, "huggingface", "hub"));
  dirs.push(join(homedir(), ".cache", "huggingface", "hub"));
  return [...new Set(dirs)];
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$|^[A-Za-z0-9][\w.-]*$/;

/** The snapshot a cached repo's refs/<revision> points to, or its only/newest snapshot with a config. */
function snapshotIn(repoDir: string, revision: string): string | undefined {
  const snapshots = join(repoDir, "snapshots");
  if (!isDir(snapshots)) return undefined;
  const ref = join(repoDir, "refs", revision);
  if (existsSync(ref)) {
    const sha = readFileSync(ref, "utf8").trim();
    const dir = join(snapshots, sha);
    if (isDir(dir)) return dir;
  }
  // A revision given as a commit hash names the snapshot directly.
  if (isDir(join(snapshots, revision))) return join(snapshots, revision);
  if (revision !== "main") return undefined;
  const candidates = readdirSync(snapshots)
    .map((s) => join(snapshots, s))
    .filter((d) => existsSync(join(d, "config.json")))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return candidates[0];
}

function downloadHint(id: string): string {
  return `Download it first with \`hf download ${id}\` (or \`huggingface-cli download ${id}\`), or pass a local directory.`;
}

/**
 * "tsloth-tiny" -> the shipped model; an existing directory -> itself; "org/name" (optionally
 * "org/name@revision") -> its snapshot in the local Hugging Face cache.
 */
export function resolveModelDir(nameOrPath: string, opts: { cacheDir?: string } = {}): string {
  const arg = nameOrPath.trim();
  if (arg === TINY_MODEL_NAME) return assetPath(TINY_MODEL_NAME);
  const expanded = arg.startsWith("~/") ? join(homedir(), arg.slice(2)) : arg;
  if (existsSync(expanded)) {
    const dir = resolve(expanded);
    if (!isDir(dir)) throw new Error(`tsloth: ${dir} is a file; expected a model directory holding config.json and *.safetensors`);
    if (!existsSync(join(dir, "config.json")))
      throw new Error(`tsloth: ${dir} has no config.json; expected a Hugging Face model directory (config.json, *.safetensors, tokenizer.json)`);
    return dir;
  }
  const [id, revision = "main"] = expanded.split("@") as [string, string | undefined];
  if (isAbsolute(expanded) || expanded.startsWith(".") || !HUB_ID.test(id))
    throw new Error(`tsloth: model directory ${resolve(expanded)} does not exist; pass an existing directory, "${TINY_MODEL_NAME}", or a hub id like meta-llama/Llama-3.2-1B`);
  const roots = hfCacheDirs(opts.cacheDir);
  const repoFolder = `models--${id.replace(/\//g, "--")}`;
  for (const root of roots) {
    const repoDir = join(root, repoFolder);
    if (!isDir(repoDir)) continue;
    const snap = snapshotIn(repoDir, revision);
    if (snap && existsSync(join(snap, "config.json"))) return snap;
  }
  throw new Error(`tsloth: model "${id}"${revision !== "main" ? ` at revision ${revision}` : ""} is not on this machine ` +
    `(looked in ${roots.join(", ")}); tsloth never downloads. ${downloadHint(id)}`);
}

/** "tsloth-tiny-data" -> the shipped dataset; otherwise an existing JSONL file. */
export function resolveDatasetPath(nameOrPath: string): string {
  const arg = nameOrPath.trim();
  if (arg === TINY_DATASET_NAME) return assetPath(`${TINY_DATASET_NAME}.jsonl`);
  const expanded = arg.startsWith("~/") ? join(homedir(), arg.slice(2)) : arg;
  const p = resolve(expanded);
  if (!existsSync(p)) throw new Error(`tsloth: dataset ${p} does not exist; pass a .jsonl file (one {"messages": [...]} or {"text": ...} per line) or "${TINY_DATASET_NAME}"`);
  if (isDir(p)) throw new Error(`tsloth: dataset ${p} is a directory; pass a .jsonl file`);
  return p;
}
