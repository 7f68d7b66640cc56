// QLoRA training throughput and peak VRAM of tsloth's CUDA backend on random-init Llama shapes
// (rank 16 on all seven projections, `unsloth` checkpointing), one JSON line per run, in the same
// format as the HF transformers + PEFT baseline (bench hf_peft_baseline.py) so one command can run
// both on the same card. Random-init: the 4-bit weights are random codes with plausible scales (the
// values do not change the work), which skips quantizing billions of host values.
//   node dist/bench/cuda/train-bench.js --shape 1B --batch 4 --seq 2048 [--steps 5] [--checkpoint unsloth|true|off]
// (TSLOTH_BENCH_CPU=1 with --shape tiny runs the same script on the CPU backend, as a smoke test.)
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { CudaBackend } from "../../lib/backend/cuda/index.js";
import { packSamples } from "../../lib/model/batch.js";
import type { CheckpointPolicy } from "../../lib/model/checkpoint-policy.js";
import { createTrainingState } from "../../lib/train/trainer.js";
import { randomLlama4bit, randomValues, shapeConfig } from "../random-llama.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

async function main(): Promise<void> {
  const shapeName = arg("shape", "1B"), batch = Number(arg("batch", "4")), seq = Number(arg("seq", "2048"));
  const steps = Number(arg("steps", "5")), policy = arg("checkpoint", "unsloth") as CheckpointPolicy;
  const config = shapeConfig(shapeName);
  const be = process.env.TSLOTH_BENCH_CPU ? new CpuBackend() : new CudaBackend();
  const t0 = Date.now();
  const model = randomLlama4bit(be, config);
  model.attachLora({ r: 16, alpha: 16 });
  const state = createTrainingState(model, 0);
  const loadS = (Date.now() - t0) / 1000;
  const ids = Array.from({ length: batch }, (_, b) => ({ ids: Int32Array.from(randomValues(seq, 0.5, 99 + b), (x) => Math.floor((x + 0.5) * (config.vocabSize - 1))) }));
  const packed = packSamples(ids);
  const targets = packed.labels.filter((l) => l >= 0).length;
  const step = async () => {
    await model.forwardBackward(packed, policy, 1 / targets);
    state.optimizer.apply(1e-4);
    for (const g of state.optimizer.grads) be.zeroInPlace(g);
    await be.synchronize();
  };
  await step(); // warm-up: cuBLASLt plans, allocator cache, koffi pools
  be.resetPeak();
  const times: number[] = [];
  for (let s = 0; s < steps; s++) {
    const a = performance.now();
    await step();
    times.push(performance.now() - a);
  }
  times.sort((x, y) => x - y);
  const median = times[Math.floor(times.length / 2)] / 1000;
  const mem = be.memory();
  console.log(JSON.stringify({
    impl: `tsloth-${be.name}`, shape: shapeName, batch, seq, checkpoint: policy, rank: 16, steps,
    step_s: +median.toFixed(4), tokens_per_s: Math.round((batch * seq) / median),
    peak_gib: +(mem.peakDeviceTotal / 2 ** 30).toFixed(2),
    peak_by_category_gib: Object.fromEntries(Object.entries(mem.peak).map(([k, v]) => [k, +(v / 2 ** 30).toFixed(2)])),
    load_s: +loadS.toFixed(1),
  }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
