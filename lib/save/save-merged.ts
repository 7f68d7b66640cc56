// %save_merged DIR [--method merged_16bit|merged_4bit|lora] [--max_shard_size 5GB]
// [--maximum_memory_usage 0.9] [--temporary_location DIR] [--force]: the one library call the magic
// parses into. Every check (options, memory budget, disk space) runs before anything is written;
// the save is built in a staging directory beside DIR and swapped in whole (staged-directory.ts).
import { existsSync, mkdirSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { detectPlatform } from "../env/platform.js";
import { writeFailure } from "../formats/safetensors-layout.js";
import { hostMemory } from "../memory/host-memory.js";
import { BaseWeightReader, rowsCols } from "./base-weights.js";
import { planCacheFreeing } from "./cache-freeing-plan.js";
import { TOKENIZER_FILES, writeCheckpointExtras } from "./checkpoint-extras.js";
import { deviceOf, diskShortfalls, formatGB, freeDiskBytes, type DiskNeed } from "./disk-preflight.js";
import type { CachedDownloadFreer } from "./hf-cache-freeing.js";
import { MemoryBudget } from "./memory-budget.js";
import { blockBytes, planBlocks, walkMergedBlocks, type MergeWalk } from "./merge-blocks.js";
import { mergePlan, outputDtypeBytes, planBytes } from "./merge-plan.js";
import { PlacedShardWriter } from "./placed-shard-writer.js";
import { modelDtype, type SavableModel } from "./savable-model.js";
import { saveLora } from "./save-lora.js";
import { resolveSaveOptions, type SaveOptions, type SaveSummary } from "./save-options.js";
import { chooseSerializationPath, physicalCpuCount } from "./serialization-path.js";
import { StagedDirectory } from "./staged-directory.js";
import { merged4bitBytes, writeMerged4bit } from "./write-merged-4bit.js";

/** Room for config.json, generation_config.json and the index beside the copied tokenizer files. */
const SMALL_FILES_BYTES = 1e6;

function extrasBytes(baseDir: string | undefined): number {
  if (!baseDir) return SMALL_FILES_BYTES;
  return TOKENIZER_FILES.reduce((n, f) => n + (existsSync(join(baseDir, f)) ? statSync(join(baseDir, f)).size : 0), SMALL_FILES_BYTES);
}

export async function saveMerged(model: SavableModel, options: SaveOptions): Promise<SaveSummary> {
  const opts = resolveSaveOptions(options);
  if (opts.method === "lora") return saveLora(model, options);
  const started = performance.now();
  const lines: string[] = [];
  const say = (l: string): void => { lines.push(l); options.onLine?.(l); };
  const fourBit = opts.method === "merged_4bit";
  const platform = detectPlatform(options.platform !== undefined ? { force: options.platform } : {});
  const scratchRoot = opts.temporaryLocation ?? platform.tempDir;
  const dtype = modelDtype(model);
  const outBytes = outputDtypeBytes(dtype);
  const plan = mergePlan(model.config);
  const available = options.availableMemoryBytes ?? hostMemory().availableBytes;
  const budget = new MemoryBudget(Math.floor(available * opts.maximumMemoryUsage), available, opts.maximumMemoryUsage);
  const serialization = chooseSerializationPath(options.physicalCpus ?? (await physicalCpuCount()), options.serialization);
  let freer: CachedDownloadFreer | undefined;
  const base = new BaseWeightReader(model, plan, (file) => freer?.release(file));
  try {
    const walk: MergeWalk = {
      model, plan, base, budget, dtype, signal: options.signal, target: opts.dir, wholeTensors: fourBit,
      outputBytesPerElement: fourBit ? outBytes : outBytes * (serialization.path === "overlapped" ? 2 : 1),
    };
    const blocks = planBlocks(walk);

    const outputBytes = fourBit ? merged4bitBytes(plan, outBytes) : planBytes(plan, outBytes);
    const extras = extrasBytes(model.dir);
    const scratchOnDirDisk = fourBit && deviceOf(scratchRoot) === deviceOf(dirname(opts.dir));
    const needs: DiskNeed[] = [{ path: opts.dir, bytes: (scratchOnDirDisk ? 0 : outputBytes) + extras, what: "the saved model" }];
    // ShardedSafetensorsWriter keeps finished shards plus the shard being written and its data file.
    if (fourBit) needs.push({ path: scratchRoot, bytes: outputBytes + Math.min(opts.maxShardSize, outputBytes), what: "4-bit shards being written" });
    const shortfalls = diskShortfalls(needs, options.freeDiskBytes ?? freeDiskBytes);
    if (shortfalls.length) {
      freer = planCacheFreeing({
        platform, modelDir: model.dir, base, plan, shortfalls, extraBytes: extras, allowed: !fourBit,
        bytesOf: (e) => e.shape.reduce((a, b) => a * b, 1) * outBytes,
      });
    }

    const { staged, lines: recovered } = StagedDirectory.begin(opts.dir);
    recovered.forEach(say);
    if (!fourBit) say(serialization.line);
    if (freer) say(`tsloth: ${basename(opts.dir)} does not fit on the disk beside the cached download of the base model; ` +
      `freeing that download's weight files as the merge finishes reading each one.`);
    let writer: PlacedShardWriter | undefined;
    let written = 0;
    try {
      // Tokenizer and config first: the cached download may be freed while the weights are merged.
      writeCheckpointExtras(staged.path, model.config, model.dir, { quantized4bit: fourBit, modelConfig: true });
      const progress = (index: number, r1: number, bytes: number): void => {
        written += bytes;
        const e = plan[index]!;
        const done = r1 === rowsCols(e)[0] ? index + 1 : index;
        options.onProgress?.({ phase: "merge", done, total: plan.length, tensor: e.name, bytesWritten: written });
      };
      if (fourBit) {
        if (!existsSync(scratchRoot)) mkdirSync(scratchRoot, { recursive: true });
        await writeMerged4bit(walk, blocks, staged.path, scratchRoot, opts.maxShardSize, (index, bytes) => progress(index, rowsCols(plan[index]!)[0], bytes));
      } else {
        writer = new PlacedShardWriter(staged.path, plan.map((e) => ({ name: e.name, dtype, shape: [...e.shape] })), opts.maxShardSize, serialization.path);
        const w = writer;
        await walkMergedBlocks(walk, blocks, async (index, r0, r1, values) => {
          const e = plan[index]!;
          const bytes = blockBytes(values, dtype);
          await w.place(e.name, r0 * rowsCols(e)[1] * outBytes, bytes);
          progress(index, r1, bytes.length);
        });
        await writer.finish();
      }
      options.onProgress?.({ phase: "commit", done: plan.length, total: plan.length, bytesWritten: written });
      staged.commit();
    } catch (e) {
      await writer?.abort();
      staged.discard();
      throw writeFailure(opts.dir, e) ?? e;
    }
  } finally {
    base.close();
  }
  if (freer && freer.freedBytes > 0)
    say(`tsloth: freed ${formatGB(freer.freedBytes)} of the cached download of ${basename(freer.download.repoDir).replace(/^models--/, "").replace(/--/g, "/")} to make room for the merged model.`);
  const files = StagedDirectory.listFiles(opts.dir);
  return {
    dir: opts.dir, method: opts.method, files, bytes: files.reduce((n, f) => n + statSync(f).size, 0),
    seconds: (performance.now() - started) / 1000, peakMemoryBytes: budget.peakBytes, memoryBudgetBytes: budget.limitBytes,
    serialization: fourBit ? "append-then-copy" : serialization.path, baseSource: base.description, freedCacheBytes: freer?.freedBytes ?? 0, lines,
  };
}
