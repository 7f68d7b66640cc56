// When does `unsloth` checkpointing (layer inputs copied to pinned host RAM on a copy stream and
// prefetched back before the recompute) cost nothing over `true` (inputs kept on the device)? One
// model load, then for each sequence length a few timed steps under each policy, alternating, so
// both see the same card state. A copy has a fixed cost (event, launch, a small transfer that
// cannot hide behind a short layer), so short micro-batches should favour `true`: the lengths
// where unsloth is slower say what CUDA_OFFLOAD_MIN_BYTES (lib/backend/cuda/traits.ts) should be.
//   node dist/bench/cuda/offload-threshold.js --shape 1B [--seqs 256,512,1024,2048] [--steps 5]
import { CudaBackend } from "../../lib/backend/cuda/index.js";
import type { CheckpointPolicy } from "../../lib/model/checkpoint-policy.js";
import { createTrainingState } from "../../lib/train/trainer.js";
import { randomLlama4bit, shapeConfig } from "../random-llama.js";
import { medianStepSeconds, randomBatch } from "./train-step.js";
import { arg } from "../args.js";

async function main(): Promise<void> {
  const shape = arg("shape", "1B"), steps = Number(arg("steps", "5"));
  const seqs = arg("seqs", "256,512,1024,2048").split(",").map(Number);
  const config = shapeConfig(shape);
  const be = new CudaBackend();
  const model = randomLlama4bit(be, config);
  model.attachLora({ r: 16, alpha: 16 });
  const state = createTrainingState(model, 0);
  for (const seq of seqs) {
    const packed = randomBatch(config, 1, seq);
    const ms: Record<string, number> = {};
    for (const policy of ["true", "unsloth", "true", "unsloth"] as CheckpointPolicy[]) {
      const s = await medianStepSeconds(be, model, state, packed, policy, 1, steps);
      ms[policy] = Math.min(ms[policy] ?? Infinity, s * 1000);
    }
    console.log(JSON.stringify({
      shape, batch: 1, seq, true_ms: +ms.true.toFixed(2), unsloth_ms: +ms.unsloth.toFixed(2),
      unsloth_over_true: +(ms.unsloth / ms.true).toFixed(3),
    }));
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
