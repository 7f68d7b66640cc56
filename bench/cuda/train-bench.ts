// QLoRA training throughput and peak VRAM of tsloth's CUDA backend on random-init Llama shapes
// (rank 16 on all seven projections, `unsloth` checkpointing), one JSON line per run, in the same
// format as the HF transformers + PEFT baseline (bench hf_peft_baseline.py) so one command can run
// both on the same card. Random-init: the 4-bit weights are random codes with plausible scales (the
// values do not change the work), which skips quantizing billions of host values.
//   node dist/bench/cuda/train-bench.js --shape 1B --batch 4 --seq 2048 [--steps 5] [--checkpoint unsloth|true|off]
// (TSLOTH_BENCH_CPU=1 with --shape tiny runs the same script on the CPU backend, as a smoke test.)
import { randomFillSync } from "node:crypto";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { CudaBackend } from "../../lib/backend/cuda/index.js";
import { parseHfConfig } from "../../lib/formats/hf-config.js";
import { packSamples } from "../../lib/model/batch.js";
import type { CheckpointPolicy } from "../../lib/model/checkpoint-policy.js";
import { LlamaModel } from "../../lib/model/llama.js";
import { uploadLlamaWeights, type WeightSource } from "../../lib/model/upload-weights.js";
import { DYNAMIC_MAP_SIGNED } from "../../lib/quant/dynamic-map.js";
import type { Nf4Tensor } from "../../lib/quant/nf4.js";
import { createTrainingState } from "../../lib/train/trainer.js";

// The same shapes as the baseline script (Llama-3.2-1B/3B, Llama-3.1-8B).
const SHAPES: Record<string, Record<string, number | boolean>> = {
  "1B": { hidden_size: 2048, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, intermediate_size: 8192, vocab_size: 128256, tie_word_embeddings: true },
  "3B": { hidden_size: 3072, num_hidden_layers: 28, num_attention_heads: 24, num_key_value_heads: 8, intermediate_size: 8192, vocab_size: 128256, tie_word_embeddings: true },
  tiny: { hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 128, vocab_size: 512, tie_word_embeddings: false },
  "8B": { hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, intermediate_size: 14336, vocab_size: 128256, tie_word_embeddings: false },
};

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/** Uniform values in [-a, a] from a fast LCG (init values only need the right scale). */
function randomValues(n: number, a: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296 - 0.5) * 2 * a;
  }
  return out;
}

function randomNf4(shape: number[]): Nf4Tensor {
  const n = shape[0] * shape[1];
  const blocks = Math.ceil(n / 64);
  const nested = Math.ceil(blocks / 256);
  return {
    shape, packed: randomFillSync(new Uint8Array(n / 2)), blocksize: 64, absmax: new Float32Array(blocks).fill(0.05),
    nested: {
      quantizedAbsmax: randomFillSync(new Uint8Array(blocks)), nestedAbsmax: new Float32Array(nested).fill(0.01),
      nestedQuantMap: DYNAMIC_MAP_SIGNED, nestedBlocksize: 256, offset: 0.05,
    },
    quantMap: new Float32Array(16), dtype: "bfloat16",
  };
}

async function main(): Promise<void> {
  const shapeName = arg("shape", "1B"), batch = Number(arg("batch", "4")), seq = Number(arg("seq", "2048"));
  const steps = Number(arg("steps", "5")), policy = arg("checkpoint", "unsloth") as CheckpointPolicy;
  const config = parseHfConfig({ model_type: "llama", ...SHAPES[shapeName], rms_norm_eps: 1e-5, rope_theta: 500000, max_position_embeddings: 131072 }, `${shapeName} shape`);
  const be = process.env.TSLOTH_BENCH_CPU ? new CpuBackend() : new CudaBackend();
  const t0 = Date.now();
  let seed = 1;
  const src: WeightSource = {
    has: () => true,
    readF32: (name) => {
      if (name.includes("norm")) return new Float32Array(config.hiddenSize).fill(1);
      return randomValues(config.vocabSize * config.hiddenSize, 0.02, seed++);
    },
    readNf4: (name) => {
      const m = /layers\.\d+\.(?:self_attn|mlp)\.(\w+)\.weight$/.exec(name);
      if (!m) return null;
      const { hiddenSize: h, intermediateSize: i, numHeads: nh, numKvHeads: nkv, headDim: d } = config;
      const shapes: Record<string, number[]> = {
        q_proj: [nh * d, h], k_proj: [nkv * d, h], v_proj: [nkv * d, h], o_proj: [h, nh * d],
        gate_proj: [i, h], up_proj: [i, h], down_proj: [h, i],
      };
      return randomNf4(shapes[m[1]]);
    },
  };
  const model = new LlamaModel(be, config, uploadLlamaWeights(be, config, src, { linears: "nf4" }));
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
