// On a GPU machine: the same trained model saved from the CUDA backend and from the CPU backend
// gives the same files (the merge downloads the 4-bit base and the adapters to the host), and the
// save adds no GPU memory. Prints one JSON line.
//   node dist/bench/save/cuda-save-check.js    (after kernels-cuda/build.sh and npm run build)
import { cpSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { CudaBackend } from "../../lib/backend/cuda/index.js";
import type { Backend } from "../../lib/backend/types.js";
import { loadModel4bit, resolveModelDir } from "../../lib/index.js";
import { Rng, randomNormalArray } from "../../lib/model/random.js";
import { saveMerged } from "../../lib/save/index.js";

const root = `/tmp/tsloth-cuda-save-${process.pid}`;
cpSync(resolveModelDir("tsloth-tiny"), join(root, "base"), { recursive: true });

async function saveFrom(backend: Backend, name: string, withShards: boolean) {
  const model = await loadModel4bit(join(root, "base"), { backend });
  model.engine.attachLora({ r: 8, alpha: 16, seed: 5 });
  const rng = new Rng(6);
  for (const s of model.engine.lora!.slots) {
    const t = backend.upload(randomNormalArray(rng, s.adapter.b.shape[0]! * s.adapter.b.shape[1]!, 0.05), s.adapter.b.shape, "f32", "adapters");
    backend.copyInto(s.adapter.b, t);
    backend.free(t);
  }
  backend.resetPeak();
  const before = backend.memory();
  const saves = [];
  for (const method of ["merged_16bit", "lora"] as const) {
    const summary = await saveMerged(withShards ? model : { ...model, dir: undefined }, { dir: join(root, name, method), method, force: true });
    saves.push({ method, seconds: summary.seconds, peakMemoryBytes: summary.peakMemoryBytes, baseSource: summary.baseSource });
  }
  const after = backend.memory();
  return { saves, deviceBytesBefore: before.peakDeviceTotal, devicePeakDuringSave: after.peakDeviceTotal };
}

const cuda = await saveFrom(new CudaBackend(), "cuda", false);
const cpu = await saveFrom(new CpuBackend(), "cpu", false);
const same: Record<string, boolean> = {};
for (const method of ["merged_16bit", "lora"]) {
  for (const f of readdirSync(join(root, "cpu", method)))
    same[`${method}/${f}`] = Buffer.compare(readFileSync(join(root, "cpu", method, f)), readFileSync(join(root, "cuda", method, f))) === 0;
}
console.log(JSON.stringify({ cuda, cpu, identicalFiles: same, allIdentical: Object.values(same).every(Boolean) }));
rmSync(root, { recursive: true, force: true });
