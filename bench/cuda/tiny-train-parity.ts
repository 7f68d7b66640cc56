// Trains the embedded tsloth-tiny model for the same steps on the CPU backend (the spec) and the
// CUDA backend from the same seeds, and prints both loss curves, their largest relative gap, and
// each run's tokens/s and peak memory. A GPU-machine check that the whole graph (NF4 load, LoRA,
// attention, fused cross-entropy, AdamW, `unsloth` offload) agrees end to end.
//   node dist/bench/cuda/tiny-train-parity.js [steps]
import { attachLora, loadModel4bit, train, type TrainSummary } from "../../lib/index.js";
import { cudaAvailable } from "../../lib/backend/cuda/index.js";

async function run(backend: "cpu" | "cuda", steps: number): Promise<{ summary: TrainSummary; peak: number; tps: number }> {
  const model = await loadModel4bit("tsloth-tiny", { maxSeqLength: 256, backend });
  attachLora(model, { r: 16, alpha: 16, seed: 3407 });
  let tps = 0;
  model.backend.resetPeak();
  const summary = await train(
    model,
    { data: "tsloth-tiny-data", steps, lr: 3e-3, batch: 2, gradAccum: 1, packing: true, warmup: 2, schedule: "linear", seed: 3407, checkpoint: "unsloth" },
    { onProgress: (p) => (tps = p.tokensPerSecond) },
  );
  return { summary, peak: model.backend.memory().peakDeviceTotal, tps };
}

async function main(): Promise<void> {
  const steps = Number(process.argv[2] ?? 30);
  const avail = cudaAvailable();
  if (!avail.ok) throw new Error(`CUDA backend unavailable: ${avail.reason}`);
  const cpu = await run("cpu", steps);
  const gpu = await run("cuda", steps);
  let worst = 0;
  console.log("step   cpu loss   cuda loss   rel diff");
  cpu.summary.losses.forEach((l, i) => {
    const g = gpu.summary.losses[i];
    const d = Math.abs(g - l) / Math.abs(l);
    worst = Math.max(worst, d);
    console.log(`${String(i + 1).padStart(4)} ${l.toFixed(5).padStart(10)} ${g.toFixed(5).padStart(11)} ${d.toExponential(2).padStart(10)}`);
  });
  console.log(`largest relative loss gap over ${steps} steps: ${worst.toExponential(2)}`);
  console.log(`cpu : ${cpu.tps.toFixed(0)} tokens/s, peak ${cpu.peak} bytes`);
  console.log(`cuda: ${gpu.tps.toFixed(0)} tokens/s, peak device ${gpu.peak} bytes (unsloth checkpointing)`);
  if (!(worst < 0.05)) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
