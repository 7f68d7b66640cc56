// Generation throughput of tsloth's CUDA backend on random-init 4-bit Llama shapes: prefill
// tokens/s, decode tokens/s at batch 1 (contiguous KV cache, fused NF4 matrix-vector) and batch 8
// (paged KV cache), and the weight-stream bandwidth batch-1 decode achieves (bytes of 4-bit linear
// weights per step / step time). Decode steps run replayed from recorded CUDA graphs ("graphs") and
// issued op by op ("eager"), both by default. One JSON line per configuration, in the format of
// hf_generate_baseline.py so one command prints both on the same card.
//   node dist/bench/infer/decode-bench.js --shape 8B [--batch 1,8] [--prompt 512] [--new 128] [--steps graphs,eager]
// (TSLOTH_BENCH_CPU=1 with --shape tiny runs it on the CPU backend, as a smoke test.)
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { CudaBackend } from "../../lib/backend/cuda/index.js";
import { opProfile, opProfileEnabled, resetOpProfile } from "../../lib/backend/cuda/op-profile.js";
import { decodeWithKvCache } from "../../lib/infer/decode-loop.js";
import { resolveSampling, Sampler } from "../../lib/infer/sampling.js";
import { nf4WeightBytes, randomLlama4bit, shapeConfig } from "../random-llama.js";
import { arg } from "../args.js";

async function main(): Promise<void> {
  const shape = arg("shape", "1B"), promptLen = Number(arg("prompt", "512")), newTokens = Number(arg("new", "128"));
  const config = shapeConfig(shape);
  const be = process.env.TSLOTH_BENCH_CPU ? new CpuBackend() : new CudaBackend();
  const model = randomLlama4bit(be, config);
  for (const batch of arg("batch", "1,8").split(",").map(Number)) {
    for (const mode of arg("steps", "graphs,eager").split(",")) await measure(batch, mode === "graphs");
  }
  model.free();

  async function measure(batch: number, stepGraphs: boolean): Promise<void> {
    const prompts = Array.from({ length: batch }, (_, b) => Array.from({ length: promptLen }, (_, i) => (i * 7919 + b * 104729 + 13) % config.vocabSize));
    const run = async () => {
      const stamps: number[] = [];
      const t0 = performance.now();
      let lastStep = -1;
      // A step's tokens arrive together: stamp the first token of each step.
      let count = 0;
      let replays = 0, replayS = 0;
      await decodeWithKvCache(model, prompts, {
        stepGraphs, onStepGraphs: (g) => { replays += g.replays; replayS += g.replaySeconds; },
        maxNewTokens: newTokens, eosTokenIds: [], sampler: new Sampler(resolveSampling({})), layout: batch === 1 ? "contiguous" : "paged",
        onToken: () => {
          const step = Math.floor(count++ / batch);
          if (step !== lastStep) { stamps.push(performance.now()); lastStep = step; }
        },
      });
      return { prefillS: (stamps[0] - t0) / 1000, decodeS: (stamps[stamps.length - 1] - stamps[0]) / 1000, steps: stamps.length - 1, replays, replayS };
    };
    await run(); // warm-up: cuBLASLt plans, allocator cache
    be.resetPeak();
    resetOpProfile();
    const r = await run();
    const stepS = r.decodeS / r.steps;
    const weightBytes = nf4WeightBytes(config);
    const mem = be.memory();
    console.log(JSON.stringify({
      impl: `tsloth-${be.name} nf4 ${stepGraphs ? "graphs" : "eager"}`, shape, batch, prompt: promptLen, new_tokens: newTokens,
      replayed_steps: r.replays,
      // Replay + the logits download waiting for it: the step's GPU time; the rest of a step is host work.
      replay_ms_per_step: r.replays ? +((r.replayS / r.replays) * 1000).toFixed(3) : null,
      prefill_tokens_per_s: Math.round((batch * promptLen) / r.prefillS),
      decode_tokens_per_s: Math.round((batch * r.steps) / r.decodeS),
      decode_step_ms: +(stepS * 1000).toFixed(3),
      nf4_weight_gb: +(weightBytes / 1e9).toFixed(3),
      weight_stream_gb_per_s: Math.round(weightBytes / stepS / 1e9),
      peak_gib: +(mem.peakDeviceTotal / 2 ** 30).toFixed(2),
      kv_cache_peak_gib: +(mem.peak.kv_cache / 2 ** 30).toFixed(3),
    }));
    // TSLOTH_CUDA_PROFILE=1 (eager steps only): where the measured run's time went, call by call.
    if (opProfileEnabled()) for (const t of opProfile().slice(0, 12)) console.log(`#   ${t.op} ${t.calls} calls ${t.ms.toFixed(1)} ms`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
