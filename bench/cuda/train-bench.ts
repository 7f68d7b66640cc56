// QLoRA training throughput and peak VRAM of tsloth's CUDA backend on random-init Llama shapes
// (rank 16 on all seven projections, `unsloth` checkpointing), one JSON line per run, in the same
// format as the HF transformers + PEFT baseline (bench hf_peft_baseline.py) so one command can run
// both on the same card. Random-init: the 4-bit weights are random codes with plausible scales (the
// values do not change the work), which skips quantizing billions of host values.
//   node dist/bench/cuda/train-bench.js --shape 1B --batch 4 --seq 2048 [--steps 5] [--warmup 1] [--checkpoint unsloth|true|off]
// (--warmup 0 for the longest-sequence search, where one step takes minutes and the first is the test.)
// With `unsloth`, attention outputs are kept in host RAM as the trainer keeps them (TSLOTH_KEEP_ATTENTION=0|1 overrides).
// (TSLOTH_BENCH_CPU=1 with --shape tiny runs the same script on the CPU backend, as a smoke test;
// TSLOTH_CUDA_PROFILE=gpu adds a line with the device time per library call and GEMM shape; =1 the serialized wall time.)
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { CudaBackend } from "../../lib/backend/cuda/index.js";
import { opProfile, opProfileEnabled, resetOpProfile } from "../../lib/backend/cuda/op-profile.js";
import { DTYPE_BYTES } from "../../lib/backend/types.js";
import { hostMemory } from "../../lib/memory/host-memory.js";
import { keepAttentionFits, type CheckpointPolicy } from "../../lib/model/checkpoint-policy.js";
import { createTrainingState } from "../../lib/train/trainer.js";
import { randomLlama4bit, shapeConfig } from "../random-llama.js";
import { medianStepSeconds, randomBatch } from "./train-step.js";
import { arg } from "../args.js";

async function main(): Promise<void> {
  const shapeName = arg("shape", "1B"), batch = Number(arg("batch", "4")), seq = Number(arg("seq", "2048"));
  const steps = Number(arg("steps", "5")), warmup = Number(arg("warmup", "1")), policy = arg("checkpoint", "unsloth") as CheckpointPolicy;
  const config = shapeConfig(shapeName);
  const be = process.env.TSLOTH_BENCH_CPU ? new CpuBackend() : new CudaBackend();
  const t0 = Date.now();
  const model = randomLlama4bit(be, config);
  model.attachLora({ r: 16, alpha: 16 });
  const state = createTrainingState(model, 0);
  const loadS = (Date.now() - t0) / 1000;
  const packed = randomBatch(config, batch, seq);
  // The trainer's rule: attention outputs kept in host RAM when they fit (TSLOTH_KEEP_ATTENTION overrides).
  const keepAttention = policy === "unsloth" && keepAttentionFits(config, batch * seq, DTYPE_BYTES[be.computeDtype], hostMemory().availableBytes);
  const median = await medianStepSeconds(be, model, state, packed, policy, warmup, steps, () => {
    be.resetPeak();
    resetOpProfile();
  }, { keepAttention });
  const mem = be.memory();
  console.log(JSON.stringify({
    impl: `tsloth-${be.name}`, shape: shapeName, batch, seq, checkpoint: policy, keep_attention: keepAttention, rank: 16, steps, warmup,
    step_s: +median.toFixed(4), tokens_per_s: Math.round((batch * seq) / median),
    peak_gib: +(mem.peakDeviceTotal / 2 ** 30).toFixed(2),
    peak_by_category_gib: Object.fromEntries(Object.entries(mem.peak).map(([k, v]) => [k, +(v / 2 ** 30).toFixed(2)])),
    load_s: +loadS.toFixed(1),
  }));
  // TSLOTH_CUDA_PROFILE=1: the timed steps' time by library call (serialized, so slower than above).
  if (opProfileEnabled()) {
    const ops = opProfile(), total = ops.reduce((s, o) => s + o.ms, 0);
    console.log(JSON.stringify({ profile_ms_per_step: +(total / steps).toFixed(2), top: ops.slice(0, 40).map((o) => ({
      op: o.op, calls_per_step: o.calls / steps, ms_per_step: +(o.ms / steps).toFixed(3), share: +(o.ms / total).toFixed(3),
    })) }));
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
