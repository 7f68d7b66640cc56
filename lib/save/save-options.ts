// The options of %save_merged and its TS twins, checked before any work starts: one clear error
// per bad value, saying what was expected, what was found and what to do.
import { resolve } from "node:path";
import { parseShardSize, DEFAULT_MAX_SHARD_SIZE } from "../formats/safetensors-layout.js";
import type { PlatformName } from "../env/platform.js";

export type SaveMethod = "merged_16bit" | "merged_4bit" | "lora";
export const SAVE_METHODS: readonly SaveMethod[] = ["merged_16bit", "merged_4bit", "lora"];

/** How merged tensors reach the disk (see serialization-path.ts for the measured choice). */
export type SerializationPath = "positioned" | "overlapped";

/** Unsloth's default share of free memory a merge may use; DESIGN.md caps it at 0.95. */
export const DEFAULT_MAXIMUM_MEMORY_USAGE = 0.9;
export const MAXIMUM_MEMORY_USAGE_LIMIT = 0.95;

export interface SaveProgress {
  phase: "merge" | "write" | "commit";
  /** Tensors finished of `total`. */
  done: number;
  total: number;
  tensor?: string;
  bytesWritten: number;
}

export interface SaveOptions {
  /** The output directory; replaced only once the new save is whole. */
  dir: string;
  method?: SaveMethod;
  /** "5GB" (transformers' default), "500MB", "2GiB" or bytes. */
  maxShardSize?: string | number;
  /** Share of free memory (GPU on GPU, host RAM otherwise) the merge may use, in (0, 0.95]. */
  maximumMemoryUsage?: number;
  /** Scratch space (spilled shards of merged_4bit); default: where the platform has space. */
  temporaryLocation?: string;
  /** merged_4bit loses accuracy a second time (requantizing merged weights); it needs force. */
  force?: boolean;
  /** Force the platform ("colab" | "kaggle" | "local") instead of detecting it. */
  platform?: PlatformName | false;
  onProgress?: (p: SaveProgress) => void;
  /** Lines for the user (serialization path, freed cache) as they happen. */
  onLine?: (line: string) => void;
  signal?: AbortSignal;
  /** Overrides for benchmarks and tests: the serialization path, CPUs, free memory to budget against. */
  serialization?: SerializationPath;
  physicalCpus?: number;
  availableMemoryBytes?: number;
  /** Free bytes of the disk holding a path (default: statfs). */
  freeDiskBytes?: (path: string) => number;
}

export interface ResolvedSaveOptions {
  dir: string;
  method: SaveMethod;
  maxShardSize: number;
  maximumMemoryUsage: number;
  temporaryLocation: string | undefined;
  force: boolean;
}

function userError(msg: string): Error {
  return new Error(`tsloth: ${msg}`);
}

/** Validates every option; nothing is touched on disk. */
export function resolveSaveOptions(opts: SaveOptions): ResolvedSaveOptions {
  if (typeof opts.dir !== "string" || opts.dir.trim() === "")
    throw userError("save needs an output directory, e.g. %save_merged ./merged (or saveMerged(model, { dir: \"./merged\" }))");
  const method = opts.method ?? "merged_16bit";
  if (!SAVE_METHODS.includes(method))
    throw userError(`--method must be one of ${SAVE_METHODS.join(", ")}, found "${String(method)}"`);
  const usage = opts.maximumMemoryUsage ?? DEFAULT_MAXIMUM_MEMORY_USAGE;
  if (typeof usage !== "number" || !Number.isFinite(usage) || usage <= 0 || usage > MAXIMUM_MEMORY_USAGE_LIMIT)
    throw userError(`--maximum_memory_usage must be a share of free memory in (0, ${MAXIMUM_MEMORY_USAGE_LIMIT}], found ${String(usage)}; ` +
      `the rest stays free for the notebook and the system. Try ${DEFAULT_MAXIMUM_MEMORY_USAGE} (the default) or lower.`);
  const maxShardSize = parseShardSize(opts.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE);
  if (method === "merged_4bit" && !opts.force)
    throw userError("merged_4bit requantizes the merged weights to 4-bit, which loses accuracy a second time (the LoRA was trained on " +
      "the original 4-bit base). Save merged_16bit (recommended) or lora instead, or pass --force (force: true) to save 4-bit anyway.");
  if (opts.temporaryLocation !== undefined && (typeof opts.temporaryLocation !== "string" || opts.temporaryLocation.trim() === ""))
    throw userError(`--temporary_location must be a directory path, found ${JSON.stringify(opts.temporaryLocation)}`);
  if (opts.serialization !== undefined && opts.serialization !== "positioned" && opts.serialization !== "overlapped")
    throw userError(`serialization must be "positioned" or "overlapped", found "${String(opts.serialization)}"`);
  return {
    dir: resolve(opts.dir),
    method,
    maxShardSize,
    maximumMemoryUsage: usage,
    temporaryLocation: opts.temporaryLocation === undefined ? undefined : resolve(opts.temporaryLocation),
    force: opts.force ?? false,
  };
}

/** The error an interrupted save ends with. */
export function saveInterrupted(dir: string): Error {
  const e = new Error(`tsloth: the save to ${dir} was interrupted; nothing was changed there (temporary files were removed). Run it again to save.`);
  e.name = "AbortError";
  return e;
}

/** What a save returns, and what %save_merged prints. */
export interface SaveSummary {
  dir: string;
  method: SaveMethod;
  /** Files in `dir`, weights and index included. */
  files: string[];
  /** Bytes of all files written. */
  bytes: number;
  seconds: number;
  /** Most host memory the merge held at once (every buffer it made is counted). */
  peakMemoryBytes: number;
  /** maximum_memory_usage × free memory at the start. */
  memoryBudgetBytes: number;
  /** merged_16bit: the measured path; merged_4bit streams shards of unknown size (append then copy); lora: one small file. */
  serialization: SerializationPath | "append-then-copy" | "single-file";
  /** Where base weights came from (original shards, or dequantized 4-bit). */
  baseSource: string;
  /** Bytes of the base model's cached download freed to make room (Colab/Kaggle). */
  freedCacheBytes: number;
  /** Lines to tell the user: serialization path, freed cache, recovered leftovers. */
  lines: string[];
}
