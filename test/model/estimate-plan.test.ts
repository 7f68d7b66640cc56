import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { CUDA_TRAITS } from "../../lib/backend/cuda/traits.js";
import { MEMORY_CATEGORIES } from "../../lib/backend/types.js";
import { engineAllocationPlan, planTrainingStep } from "../../lib/memory/estimate-plan.js";
import { estimateBytes } from "../../lib/memory/estimator.js";
import { packSamples } from "../../lib/model/batch.js";
import { keepAttentionFits, type CheckpointPolicy } from "../../lib/model/checkpoint-policy.js";
import { loraParams } from "../../lib/model/lora.js";
import { AdamWState } from "../../lib/train/optimizer.js";
import { randomModel, randomTokens, tinyConfig } from "./random-model.js";

describe("the engine's allocation plan", () => {
  for (const family of ["llama", "qwen3"] as const) {
    for (const checkpoint of ["off", "true", "unsloth"] as CheckpointPolicy[]) {
      it(`equals the CPU backend's measured peaks (${family}, checkpoint ${checkpoint})`, async () => {
        const config = tinyConfig(family, { num_hidden_layers: 3 });
        const settings = { batch: 2, seq: 150, r: 4, targets: ["q", "v", "down"], checkpoint };
        const be = new CpuBackend();
        const model = randomModel(be, config, 1, "nf4");
        model.attachLora({ r: settings.r, targets: settings.targets });
        const { params, grads } = loraParams(model.lora!);
        new AdamWState(be, params, grads);
        const batch = packSamples([0, 1].map((i) => ({ ids: randomTokens(i, settings.seq, config.vocabSize) })));
        await model.forwardBackward(batch, checkpoint, 1);
        const measured = be.memory().peak;
        const planned = planTrainingStep(config, settings);
        for (const c of MEMORY_CATEGORIES) assert.equal(planned[c], measured[c], `${c}: planned ${planned[c]}, measured ${measured[c]}`);
      });
    }
  }

  it("plans an 8B-shaped step in bf16 without allocating it, with activations ordered off > true > unsloth", () => {
    const shape = { hiddenSize: 4096, intermediateSize: 14336, numLayers: 32, numHeads: 32, numKvHeads: 8, headDim: 128, vocabSize: 128256, tieWordEmbeddings: false };
    const plan = engineAllocationPlan(CUDA_TRAITS); // as on CUDA: the untied embedding in host RAM
    const s = { batch: 1, seq: 2048, r: 16, targets: ["q", "k", "v", "o", "gate", "up", "down"] };
    const off = plan(shape, { ...s, checkpoint: "off" }), full = plan(shape, { ...s, checkpoint: "true" }), uns = plan(shape, { ...s, checkpoint: "unsloth" });
    // NF4 base ≈ 0.5 byte per linear parameter plus the 16-bit LM head: about 4.7 GB for Llama-3.1-8B;
    // the 16-bit embedding (128256 × 4096 × 2 B) waits in host RAM beside the offloaded layer inputs.
    assert.ok(off.base_weights > 4.4e9 && off.base_weights < 5.0e9, `base ${off.base_weights}`);
    assert.equal(off.offload_host, 128256 * 4096 * 2);
    // LoRA r=16 on all linears of the 8B: 42M parameters; fp32 weights + grads, AdamW 2 × fp32.
    assert.equal(off.adapters, 2 * 4 * 41943040);
    assert.equal(off.optimizer, 2 * 4 * 41943040);
    assert.ok(off.activations > full.activations && full.activations > uns.activations);
    assert.equal(uns.offload_host, 32 * 2048 * 4096 * 2 + 128256 * 4096 * 2);
    // Keeping attention outputs adds, per layer, o [T, 32 × 128] bf16 and the f32 log-sum-exp [32, T]
    // in host RAM, and about one layer's o in flight on the device; the formula says the same.
    const keep = plan(shape, { ...s, checkpoint: "unsloth", keepAttention: true });
    const attention = 2048 * 32 * (128 * 2 + 4);
    assert.equal(keep.offload_host, uns.offload_host + 32 * attention);
    assert.ok(keep.activations >= uns.activations && keep.activations <= uns.activations + 2 * attention, `${keep.activations} vs ${uns.activations}`);
    const formula = (keepAttention: boolean) => estimateBytes(shape, { ...s, checkpoint: "unsloth", keepAttention }).bytes.offload_host;
    assert.equal(formula(true) - formula(false), 32 * attention);
  });

  it("keeps attention outputs from 8 MiB of layer input up, while they and the inputs take at most half the host RAM available", () => {
    const shape = { numLayers: 32, hiddenSize: 4096, numHeads: 32, headDim: 128 };
    const perToken = 32 * (4096 * 2 + 32 * (128 * 2 + 4));
    const saved = process.env.TSLOTH_KEEP_ATTENTION;
    delete process.env.TSLOTH_KEEP_ATTENTION;
    try {
      assert.equal(keepAttentionFits(shape, 8192, 2, 2 * perToken * 8192), true);
      assert.equal(keepAttentionFits(shape, 8192, 2, 2 * perToken * 8192 - 1), false);
      // Below 8 MiB of layer input (1024 tokens of 4096 bf16) nothing is kept, whatever the host has.
      assert.equal(keepAttentionFits(shape, 1024, 2, 1e15), true);
      assert.equal(keepAttentionFits(shape, 1023, 2, 1e15), false);
      process.env.TSLOTH_KEEP_ATTENTION = "0";
      assert.equal(keepAttentionFits(shape, 1, 2, 1e15), false);
      process.env.TSLOTH_KEEP_ATTENTION = "1";
      assert.equal(keepAttentionFits(shape, 1e9, 2, 0), true);
    } finally {
      if (saved === undefined) delete process.env.TSLOTH_KEEP_ATTENTION;
      else process.env.TSLOTH_KEEP_ATTENTION = saved;
    }
  });

  it("keeps a tied embedding on the device (it is also the LM head) and an untied one only where kernels read host memory", () => {
    const shape = { hiddenSize: 2048, intermediateSize: 8192, numLayers: 16, numHeads: 32, numKvHeads: 8, headDim: 64, vocabSize: 128256 };
    const s = { batch: 1, seq: 256, r: 16, targets: ["q"], checkpoint: "true" as const };
    const table = 128256 * 2048 * 2;
    const tiedCuda = engineAllocationPlan(CUDA_TRAITS)({ ...shape, tieWordEmbeddings: true }, s);
    const untiedCuda = engineAllocationPlan(CUDA_TRAITS)({ ...shape, tieWordEmbeddings: false }, s);
    const untiedCpu = engineAllocationPlan({ computeDtype: "bf16" })({ ...shape, tieWordEmbeddings: false }, s);
    assert.equal(tiedCuda.offload_host, 0);
    assert.equal(untiedCuda.offload_host, table);
    assert.equal(untiedCpu.offload_host, 0);
    // Untied: the LM head stays on the device either way; only the embedding moves.
    assert.equal(untiedCpu.base_weights - untiedCuda.base_weights, table);
    assert.equal(untiedCuda.base_weights, tiedCuda.base_weights);
  });
});
