// Which serialization path is cheapest for a merged save on this machine: the same merge written
// (1) with synchronous positioned writes, (2) with one write overlapped with the next block's merge,
// (3) appended to a data file and copied into each shard (ShardedSafetensorsWriter, the path for
// tensors of unknown size). Alternating runs, median seconds. serialization-path.ts picks (1) on
// ≤2 physical CPUs from these numbers.
//   node --import tsx bench/save/serialization.ts [--shape small|1b] [--runs 3]
import { rmSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { ShardedSafetensorsWriter } from "../../lib/formats/safetensors-writer.js";
import { hostMemory } from "../../lib/memory/host-memory.js";
import { loadModel4bit, type Model } from "../../lib/index.js";
import { Rng, randomNormalArray } from "../../lib/model/random.js";
import { BaseWeightReader } from "../../lib/save/base-weights.js";
import { MemoryBudget } from "../../lib/save/memory-budget.js";
import { blockBytes, planBlocks, walkMergedBlocks } from "../../lib/save/merge-blocks.js";
import { mergePlan } from "../../lib/save/merge-plan.js";
import { modelDtype } from "../../lib/save/savable-model.js";
import { saveMerged } from "../../lib/save/index.js";
import { physicalCpuCount } from "../../lib/save/serialization-path.js";
import { writeRandomModel } from "./random-model.js";

const args = process.argv.slice(2);
const flag = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};

async function appendThenCopy(model: Model, dir: string): Promise<number> {
  const t0 = performance.now();
  const plan = mergePlan(model.config);
  const dtype = modelDtype(model);
  const available = hostMemory().availableBytes;
  const base = new BaseWeightReader(model, plan);
  const walk = { model, plan, base, budget: new MemoryBudget(available * 0.9, available, 0.9), dtype, outputBytesPerElement: 2, wholeTensors: true, target: dir };
  const writer = new ShardedSafetensorsWriter(dir, { maxShardSize: "5GB" });
  await walkMergedBlocks(walk, planBlocks(walk), async (i, _r0, _r1, values) => {
    writer.add(plan[i]!.name, dtype, [...plan[i]!.shape], blockBytes(values, dtype));
  });
  writer.finish();
  base.close();
  return (performance.now() - t0) / 1000;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const shape = flag("shape", "small");
const runs = Number(flag("runs", "3"));
const work = `/tmp/tsloth-bench-save-${shape}`;
writeRandomModel(join(work, "base"), shape);
const model = await loadModel4bit(join(work, "base"), { backend: new CpuBackend(), maxSeqLength: 64 });
model.engine.attachLora({ r: 16, alpha: 16 });
const rng = new Rng(9);
for (const s of model.engine.lora!.slots) {
  const t = model.backend.upload(randomNormalArray(rng, s.adapter.b.shape[0]! * s.adapter.b.shape[1]!, 0.01), s.adapter.b.shape, "f32", "adapters");
  model.backend.copyInto(s.adapter.b, t);
  model.backend.free(t);
}
const times: Record<string, number[]> = { positioned: [], overlapped: [], "append-then-copy": [] };
for (let run = 0; run < runs; run++) {
  for (const path of ["positioned", "overlapped"] as const) {
    const dir = join(work, `ser-${path}`);
    times[path]!.push((await saveMerged(model, { dir, serialization: path })).seconds);
    rmSync(dir, { recursive: true, force: true });
  }
  const dir = join(work, "ser-append");
  times["append-then-copy"]!.push(await appendThenCopy(model, dir));
  rmSync(dir, { recursive: true, force: true });
}
console.log(`shape ${shape}, ${await physicalCpuCount()} physical CPUs (${availableParallelism()} usable by this process), ${runs} alternating runs (seconds, median [all]):`);
const best = Object.entries(times).sort((a, b) => median(a[1]) - median(b[1]))[0]![0];
for (const [k, v] of Object.entries(times)) console.log(`  ${k.padEnd(17)} ${median(v).toFixed(2)}  [${v.map((x) => x.toFixed(2)).join(", ")}]${k === best ? "  <- cheapest" : ""}`);
