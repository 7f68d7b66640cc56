// Numbers checked against hand calculations (worked out in the comments) for the Llama-3.2-1B and
// Llama-3.1-8B shapes at batch 4 x 2048 and 1 x 8192 tokens, r = 16 on all seven targets, bf16.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { estimateBundle } from "../../lib/memory/estimate-view.js";
import { estimateBytes, estimatePeakMemory } from "../../lib/memory/estimator.js";
import { parseHfConfig } from "../../lib/formats/hf-config.js";

const GiB = 1024 ** 3;
const LLAMA_32_1B = { hiddenSize: 2048, intermediateSize: 8192, numLayers: 16, numHeads: 32, numKvHeads: 8, headDim: 64, vocabSize: 128256, tieWordEmbeddings: true };
const LLAMA_31_8B = { hiddenSize: 4096, intermediateSize: 14336, numLayers: 32, numHeads: 32, numKvHeads: 8, headDim: 128, vocabSize: 128256, tieWordEmbeddings: false };

// 1B: linear params/layer = 2*2048*2048 + 2*2048*512 + 3*2048*8192 = 60,817,408; x16 = 973,078,528.
// NF4: x(0.5 + 1/64 + 4/16384) = 501,981,184 + 1092 B x 112 tensors = 502,103,488.
// Tied embeddings 128256*2048*2 B = 525,336,576; norms 33*2048*2 = 135,168.
// LoRA r16: 16*(4096+2560+2560+4096+10240*3) = 704,512/layer; x16 = 11,272,192 (PEFT prints the same).
// Kept bytes/token/layer: 4096 + 4100 + 6144 + 4224 + 4096 + 4100 + 32768 + 16384 + 224 = 76,136;
// backward 57,344; final norm 8,196; T = 8192 tokens.
// 8B: linear 218,103,808/layer x32 = 6,979,321,856 -> 3,600,416,768 + 1092*224 = 3,600,661,376;
// untied head 1,050,673,152 on the device; the untied embedding (1,050,673,152) in pinned host RAM
// on CUDA; norms 65*4096*2 = 532,480. LoRA 41,943,040.
// Kept/token/layer 139,624; backward 102,400; final 16,388. On CUDA the attention backward also holds
// an fp32 dQ accumulator of T x 32 heads x D floats as workspace.
const HAND = {
  "1B": {
    base_weights: 502_103_488 + 525_336_576 + 135_168,
    lora: 11_272_192,
    activations: { off: 8192 * (16 * 76_136 + 57_344 + 8_196), true: 8192 * (16 * 4096 + 76_136 + 57_344 + 8_196), unsloth: 8192 * (2 * 4096 + 76_136 + 57_344 + 8_196) },
    hostEmbedding: 0,
    offload: 16 * 4096 * 8192,
    workspace: 1024 * 128256 * 4 + 4096 * 8192 + 2048 * 8192 * 2 + 32 * 1024 ** 2 + 8192 * 32 * 64 * 4,
  },
  "8B": {
    base_weights: 3_600_661_376 + 1_050_673_152 + 532_480,
    hostEmbedding: 1_050_673_152,
    lora: 41_943_040,
    activations: { off: 8192 * (32 * 139_624 + 102_400 + 16_388), true: 8192 * (32 * 8192 + 139_624 + 102_400 + 16_388), unsloth: 8192 * (2 * 8192 + 139_624 + 102_400 + 16_388) },
    offload: 32 * 8192 * 8192,
    workspace: 1024 * 128256 * 4 + 8192 * 8192 + 4096 * 14336 * 2 + 32 * 1024 ** 2 + 8192 * 32 * 128 * 4,
  },
} as const;

const MODELS = { "1B": LLAMA_32_1B, "8B": LLAMA_31_8B } as const;
const SHAPES = [[4, 2048], [1, 8192]] as const;

describe("estimatePeakMemory against hand calculations", () => {
  for (const [name, config] of Object.entries(MODELS) as ["1B" | "8B", typeof LLAMA_32_1B][]) {
    for (const [batch, seq] of SHAPES) {
      for (const checkpoint of ["off", "true", "unsloth"] as const) {
        it(`Llama ${name} at ${batch} x ${seq}, checkpoint ${checkpoint}`, () => {
          const h = HAND[name];
          const e = estimatePeakMemory(config, { batch, seq, r: 16, checkpoint });
          assert.equal(e.loraParams, h.lora);
          assert.equal(e.bytes.base_weights, h.base_weights);
          assert.equal(e.bytes.adapters, h.lora * 8, "fp32 weights + fp32 gradients");
          assert.equal(e.bytes.optimizer, h.lora * 8, "AdamW: two fp32 moments");
          assert.equal(e.bytes.activations, h.activations[checkpoint]);
          const host = (checkpoint === "unsloth" ? h.offload : 0) + h.hostEmbedding;
          assert.equal(e.bytes.offload_host ?? 0, host);
          assert.equal(e.bytes.workspace, h.workspace);
          assert.equal(e.bytes.overhead, GiB);
          assert.equal(e.deviceBytes, h.base_weights + 16 * h.lora + h.activations[checkpoint] + h.workspace + GiB);
          assert.equal(e.hostBytes, host);
        });
      }
    }
  }

  it("orders the modes as theory says: off > true > unsloth on the device", () => {
    for (const config of Object.values(MODELS)) {
      const [off, on, uns] = (["off", "true", "unsloth"] as const).map((c) => estimateBytes(config, { batch: 4, seq: 2048, r: 16, checkpoint: c }).deviceBytes);
      assert.ok(off > on && on > uns);
    }
  });

  it("stays within DESIGN.md's target of 30% of the QLoRA baseline's 31 GiB for 8B at 4 x 2048", () => {
    const e = estimatePeakMemory(LLAMA_31_8B, { batch: 4, seq: 2048, r: 16, checkpoint: "unsloth" });
    assert.ok(e.deviceBytes < 0.35 * 31 * GiB, `${(e.deviceBytes / GiB).toFixed(2)} GiB`);
    assert.ok(e.deviceBytes > 8.03e9 * 0.5, "at least the 4-bit weights");
  });
});

describe("fits and the nearest settings that fit", () => {
  it("says it fits with the headroom, and suggests nothing", () => {
    const e = estimatePeakMemory(LLAMA_32_1B, { batch: 4, seq: 2048, r: 16, checkpoint: "unsloth", gpuBytes: 16 * GiB });
    assert.equal(e.fits, true);
    assert.deepEqual(e.suggestions, []);
    assert.match(estimateBundle(e)["text/plain"], /fits: .* of 16\.0 GiB/);
  });

  it("suggests stronger checkpointing first when that alone fits", () => {
    const e = estimatePeakMemory(LLAMA_31_8B, { batch: 4, seq: 2048, r: 16, checkpoint: "off", gpuBytes: 16 * GiB });
    assert.equal(e.fits, false);
    assert.deepEqual(
      e.suggestions.slice(0, 2).map((s) => [s.checkpoint, s.batch, s.seq]),
      [["true", 4, 2048], ["unsloth", 4, 2048]],
    );
    for (const s of e.suggestions) assert.ok(s.deviceBytes <= 16 * GiB);
  });

  it("then a smaller batch with more accumulation, keeping the effective batch", () => {
    const gpu = 3 * GiB;
    const e = estimatePeakMemory(LLAMA_32_1B, { batch: 4, seq: 2048, r: 16, checkpoint: "unsloth", gradAccum: 2, gpuBytes: gpu });
    assert.equal(e.fits, false);
    const first = e.suggestions[0];
    assert.deepEqual([first.checkpoint, first.batch, first.gradAccum, first.seq], ["unsloth", 1, 8, 2048]);
    assert.equal(first.deviceBytes, estimateBytes(LLAMA_32_1B, { batch: 1, seq: 2048, r: 16, checkpoint: "unsloth" }).deviceBytes);
    assert.ok(first.deviceBytes <= gpu);
    assert.match(first.change, /batch 4 -> 1 with gradAccum 2 -> 8/);
    assert.ok(e.suggestions.every((s) => s.deviceBytes <= gpu));
  });

  it("shortens the sequence only when batch and checkpointing cannot help", () => {
    const e = estimatePeakMemory(LLAMA_31_8B, { batch: 1, seq: 8192, r: 16, checkpoint: "unsloth", gpuBytes: 8 * GiB });
    assert.equal(e.fits, false);
    assert.ok(e.suggestions.length > 0);
    assert.equal(e.suggestions[0].seq, 4096);
    assert.match(estimateBundle(e)["text/plain"], /try seq 8192 -> 4096: needs/);
  });

  it("says plainly when nothing fits because of the weights themselves", () => {
    const e = estimatePeakMemory(LLAMA_31_8B, { batch: 4, seq: 2048, r: 16, checkpoint: "off", gpuBytes: 6 * GiB });
    assert.equal(e.fits, false);
    assert.deepEqual(e.suggestions, []);
    assert.match(estimateBundle(e)["text/plain"], /base weights need a larger GPU/);
  });
});

describe("estimator options", () => {
  it("takes a ModelConfig parsed from an HF config.json", () => {
    const config = parseHfConfig(
      {
        architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16,
        num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, vocab_size: 128256, tie_word_embeddings: true, rms_norm_eps: 1e-5,
        rope_theta: 500000.0, max_position_embeddings: 131072, torch_dtype: "bfloat16", bos_token_id: 128000, eos_token_id: 128001,
        rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: "llama3" },
      },
      "Llama-3.2-1B config.json",
    );
    const fromConfig = estimatePeakMemory(config, { batch: 4, seq: 2048, r: 16, checkpoint: "unsloth" });
    assert.equal(fromConfig.deviceBytes, estimatePeakMemory(LLAMA_32_1B, { batch: 4, seq: 2048, r: 16, checkpoint: "unsloth" }).deviceBytes);
  });

  it("accepts HF target names and counts only the chosen targets", () => {
    const qv = estimateBytes(LLAMA_32_1B, { batch: 1, seq: 512, r: 8, checkpoint: true, targets: ["q_proj", "v"] });
    assert.equal(qv.loraParams, 16 * 8 * ((2048 + 2048) + (2048 + 512)));
    assert.deepEqual(qv.settings.targets, ["q", "v"]);
    assert.equal(qv.settings.checkpoint, "true");
  });

  it("counts Qwen2's q/k/v biases in the base weights", () => {
    const plain = estimateBytes(LLAMA_32_1B, { batch: 1, seq: 512, r: 8, checkpoint: "true" });
    const bias = estimateBytes({ ...LLAMA_32_1B, attentionBias: true }, { batch: 1, seq: 512, r: 8, checkpoint: "true" });
    assert.equal(bias.bytes.base_weights - plain.bytes.base_weights, 16 * (2048 + 2 * 512) * 2);
  });

  it("lets the engine's allocation plan replace a category's formula", () => {
    const activations = 123_456_789 + Math.floor(Math.random() * 1000);
    const base = estimateBytes(LLAMA_32_1B, { batch: 2, seq: 1024, r: 16, checkpoint: "unsloth" });
    const planned = estimateBytes(LLAMA_32_1B, { batch: 2, seq: 1024, r: 16, checkpoint: "unsloth", plan: (_c, s) => (s.checkpoint === "unsloth" ? { activations } : {}) });
    assert.equal(planned.bytes.activations, activations);
    assert.equal(planned.deviceBytes - base.deviceBytes, activations - base.bytes.activations);
  });

  it("has no CUDA context or cuBLAS workspace on the CPU backend", () => {
    const e = estimateBytes(LLAMA_32_1B, { batch: 1, seq: 256, r: 4, checkpoint: "off", backend: "cpu", computeBytes: 4 });
    assert.equal(e.bytes.overhead, undefined);
    assert.ok(!e.terms.some((t) => /cuBLAS/.test(t.what)));
  });

  it("refuses bad settings with what it expected", () => {
    assert.throws(() => estimateBytes(LLAMA_32_1B, { batch: 0, seq: 512, r: 8, checkpoint: "off" }), /batch must be a positive integer; got 0/);
    assert.throws(() => estimateBytes(LLAMA_32_1B, { batch: 1, seq: 512, r: 8, checkpoint: "sometimes" as never }), /expected off, true or unsloth/);
    assert.throws(() => estimateBytes(LLAMA_32_1B, { batch: 1, seq: 512, r: 8, checkpoint: "off", targets: ["lm_head"] }), /unknown LoRA target "lm_head"/);
    assert.throws(() => estimatePeakMemory(LLAMA_32_1B, { batch: 1, seq: 512, r: 8, checkpoint: "off", gpuBytes: -1 }), /gpuBytes must be a positive/);
  });
});
