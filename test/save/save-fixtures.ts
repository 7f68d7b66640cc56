// Models and checks shared by the save tests: the embedded tiny model with trained-looking LoRA
// (random non-zero B), and a reader of what a saved directory holds.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { loadModel4bit, type Model } from "../../lib/index.js";
import { Rng, randomNormalArray } from "../../lib/model/random.js";
import { SafetensorsReader } from "../../lib/formats/safetensors-reader.js";

const scratchDirs: string[] = [];
process.on("exit", () => {
  for (const d of scratchDirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh directory under the system temp dir, removed when the test process exits. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `tsloth-save-${prefix}-`));
  scratchDirs.push(dir);
  return dir;
}

/** Sets every LoRA B to fresh normal values so the merge has a visible delta. */
export function randomizeLora(model: Model, seed: number, std = 0.05): void {
  const be = model.backend, rng = new Rng(seed);
  for (const s of model.engine.lora!.slots) {
    for (const t of [s.adapter.a, s.adapter.b]) {
      const n = t.shape[0]! * t.shape[1]!;
      const u = be.upload(randomNormalArray(rng, n, t === s.adapter.b ? std : 0.1), t.shape, "f32", "adapters");
      be.copyInto(t, u);
      be.free(u);
    }
  }
}

/** The tiny model on the CPU backend with LoRA r=4 on every projection, B non-zero. */
export async function trainedTinyModel(opts: { loadIn4bit?: boolean; dir?: string; seed?: number; targets?: string[] } = {}): Promise<Model> {
  const model = await loadModel4bit(opts.dir ?? "tsloth-tiny", { backend: new CpuBackend(), loadIn4bit: opts.loadIn4bit ?? true });
  model.engine.attachLora({ r: 4, alpha: 8, seed: opts.seed ?? 7, targets: opts.targets });
  randomizeLora(model, opts.seed ?? 7);
  return model;
}

export const PROBE_IDS = Int32Array.from([0, 17, 301, 5, 77, 940, 12, 33, 64, 2]);

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const x of a) m = Math.max(m, Math.abs(x));
  return m;
}

/** True when `dir` holds a whole checkpoint: config.json and every tensor the index (or single file) lists, readable. */
export function isCompleteCheckpoint(dir: string, expectedTensors: number): boolean {
  if (!existsSync(join(dir, "config.json"))) return false;
  try {
    JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    const r = SafetensorsReader.open(dir);
    try {
      if (r.names().length !== expectedTensors) return false;
      for (const n of r.names()) r.readRaw(n);
      return true;
    } finally {
      r.close();
    }
  } catch {
    return false;
  }
}

/** Names in a directory that are not hidden (what a user or a loader sees). */
export function visibleEntries(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => !f.startsWith(".")) : [];
}
