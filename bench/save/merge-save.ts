// Merge-and-save benchmark: a model of Llama-3.2-1B's shape (random bf16 weights written first; --shape
// small for a quick run) with LoRA r=16 on every projection, saved merged_16bit by tsloth, beside the
// same save through transformers + PEFT (merge_and_unload + save_pretrained) in the same run.
// Each side runs in its own process so peak RSS is its own. Prints seconds and peak host memory.
//   node --import tsx bench/save/merge-save.ts [--shape 1b|small] [--work DIR] [--no-baseline]
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { loadModel4bit } from "../../lib/index.js";
import { projectRoot } from "../../lib/paths.js";
import { Rng, randomNormalArray } from "../../lib/model/random.js";
import { saveLora, saveMerged, type SerializationPath } from "../../lib/save/index.js";
import { writeRandomModel } from "./random-model.js";

const args = process.argv.slice(2);
const flag = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const gb = (b: number): string => `${(b / 1e9).toFixed(2)} GB`;

/** The tsloth side, in a child process: load 4-bit, attach trained-looking LoRA, save merged. */
async function tslothSide(base: string, out: string, adapter: string, serialization?: SerializationPath): Promise<void> {
  const t0 = performance.now();
  const model = await loadModel4bit(base, { backend: new CpuBackend(), maxSeqLength: 64 });
  model.engine.attachLora({ r: 16, alpha: 16 });
  const be = model.backend, rng = new Rng(5);
  for (const s of model.engine.lora!.slots) {
    const t = be.upload(randomNormalArray(rng, s.adapter.b.shape[0]! * s.adapter.b.shape[1]!, 0.01), s.adapter.b.shape, "f32", "adapters");
    be.copyInto(s.adapter.b, t);
    be.free(t);
  }
  const loadSeconds = (performance.now() - t0) / 1000;
  if (adapter) await saveLora(model, { dir: adapter });
  const rssBefore = process.memoryUsage.rss();
  let rssPeak = rssBefore;
  const sample = setInterval(() => { rssPeak = Math.max(rssPeak, process.memoryUsage.rss()); }, 20);
  const summary = await saveMerged(model, { dir: out, serialization, onProgress: () => { rssPeak = Math.max(rssPeak, process.memoryUsage.rss()); } });
  clearInterval(sample);
  console.log(JSON.stringify({
    loadSeconds, seconds: summary.seconds, bytes: summary.bytes, peakMemoryBytes: summary.peakMemoryBytes, rssBefore, rssPeak,
    lifetimeMaxRss: process.resourceUsage().maxRSS * 1024, serialization: summary.serialization, lines: summary.lines,
  }));
}

function runChild(cmd: string, cargs: string[]): Record<string, any> {
  const r = spawnSync(cmd, cargs, { encoding: "utf8", maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${cargs.join(" ")} failed:\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

async function main(): Promise<void> {
  if (args[0] === "--child") return tslothSide(args[1]!, args[2]!, args[3] ?? "", (args[4] || undefined) as SerializationPath | undefined);
  const shape = flag("shape", "1b");
  const work = flag("work", `/tmp/tsloth-bench-save-${shape}`);
  const base = join(work, "base");
  let t = performance.now();
  writeRandomModel(base, shape);
  console.log(`model ${shape} ready in ${((performance.now() - t) / 1000).toFixed(1)} s at ${base}`);
  const here = fileURLToPath(import.meta.url);
  const node = here.endsWith(".ts") ? [process.execPath, "--import", "tsx", here] : [process.execPath, here];
  for (const d of ["tsloth", "adapter", "peft"]) rmSync(join(work, d), { recursive: true, force: true });
  const ours = runChild(node[0]!, [...node.slice(1), "--child", base, join(work, "tsloth"), join(work, "adapter")]);
  console.log(`tsloth merged_16bit: ${ours.seconds.toFixed(1)} s for ${gb(ours.bytes)}; merge working set peak ${gb(ours.peakMemoryBytes)}; ` +
    `process RSS ${gb(ours.rssBefore)} before the save, ${gb(ours.rssPeak)} peak during it (+${gb(ours.rssPeak - ours.rssBefore)}); ` +
    `load ${ours.loadSeconds.toFixed(1)} s; ${ours.lines.join(" ")}`);
  if (args.includes("--no-baseline")) return;
  const py = process.env.TSLOTH_REF_PYTHON ?? join(projectRoot(), ".venv", "bin", "python");
  const ref = runChild(py, [join(projectRoot(), "bench", "save", "peft_merge_save.py"), base, join(work, "adapter"), join(work, "peft"), join(work, "tsloth")]);
  console.log(`transformers + PEFT: merge_and_unload + save_pretrained ${ref.merge_save_seconds.toFixed(1)} s (load ${ref.load_seconds.toFixed(1)} s); ` +
    `peak RSS ${gb(ref.peak_rss_bytes)}`);
  console.log(`ratio (PEFT / tsloth, merge + save seconds): ${(ref.merge_save_seconds / ours.seconds).toFixed(2)}x`);
  console.log(`difference of the saved weights: ${JSON.stringify(ref.diff_vs_tsloth)}`);
}

await main();
