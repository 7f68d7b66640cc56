// Generation on the CUDA backend against the CPU reference, on the embedded tiny model. bf16
// activations on the GPU against f32 on the CPU make greedy tokens part ways at near ties, so the
// check is the fallback: the GPU decodes the CPU's own greedy tokens (teacher forcing,
// cached decoder, fused NF4 matrix-vector path at batch 1) and its logits must stay within
// tolerance of the CPU's at every step; free-running agreement is printed. Skips without a GPU.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { cudaAvailable } from "../../lib/backend/cuda/index.js";
import { attachLora, loadModel4bit, type Model } from "../../lib/index.js";
import { decodeWithKvCache, type DecodeLoopOptions, type KvLayout, type StepGraphStats } from "../../lib/infer/decode-loop.js";
import { resolveSampling, Sampler, type TokenPicker } from "../../lib/infer/sampling.js";
import { randomizeLoraB } from "../model/random-model.js";

const avail = cudaAvailable();
const PROMPTS = ["The capital of France is", "Once upon a time there was", "Q: What is two plus two?\nA:"];
const N = 40;
/**
 * bf16 activations through the tiny model move logits by up to ~1.1% of their range (H200,
 * measured with and without the fused batch-1 NF4 path); 2% leaves room.
 */
const LOGIT_TOL = 2e-2;
/**
 * A random LoRA with B of amplitude 0.3 at scale 2 perturbs every projection strongly and amplifies
 * the same bf16 rounding. Measured worst gaps: 3.3% of the range through the first fused NF4 GEMV and
 * 3.6% through dequantize + GEMM (H200), 4.0–4.7% (H100), 5.2% with today's GEMV, whose bf16x2
 * partial sums of 4 products add one rounding (H100). What the check must catch is a LoRA left out
 * or applied twice: on the CPU, dropping this adapter moves the logits by 118–216% of their range.
 */
const LORA_LOGIT_TOL = 6e-2;

/** Largest |a − b| over the largest |a|, over every step of every prompt. */
function worstGap(a: Float32Array[][], b: Float32Array[][]): number {
  let worst = 0;
  a.forEach((steps, i) => steps.forEach((ref, k) => {
    let scale = 0, diff = 0;
    for (let v = 0; v < ref.length; v++) {
      scale = Math.max(scale, Math.abs(ref[v]));
      diff = Math.max(diff, Math.abs(ref[v] - b[i][k][v]));
    }
    worst = Math.max(worst, diff / scale);
  }));
  return worst;
}

/** Picks the given tokens in order (teacher forcing), whatever the logits. */
function forced(tokens: number[][]): (index: number) => TokenPicker {
  return (index) => {
    let k = 0;
    return { pick: () => tokens[index][k++] };
  };
}

interface Run { ids: number[][]; logits: Float32Array[][] }

async function run(m: Model, layout: KvLayout, force?: number[][], extra: Partial<DecodeLoopOptions> = {}): Promise<Run> {
  const prompts = PROMPTS.map((p) => m.tokenizer.encode(p));
  const logits: Float32Array[][] = prompts.map(() => []);
  const greedy = new Sampler(resolveSampling({}));
  const pickers = force ? prompts.map((_, i) => forced(force)(i)) : null;
  let current = 0;
  const out = await decodeWithKvCache(m.engine, prompts, {
    maxNewTokens: N, eosTokenIds: [], layout,
    sampler: { pick: (row, seen) => (pickers ? pickers[current].pick(row, seen) : greedy.pick(row, seen)) },
    onLogits: (i, row) => { current = i; logits[i].push(Float32Array.from(row)); },
    ...extra,
  });
  return { ids: out.map((o) => o.ids), logits };
}

describe("generation: CUDA vs CPU on tsloth-tiny", { skip: avail.ok ? false : `no CUDA here (${avail.reason})` }, () => {
  let cpu: Model, gpu: Model;
  before(async () => {
    cpu = await loadModel4bit("tsloth-tiny", { backend: "cpu" });
    gpu = await loadModel4bit("tsloth-tiny", { backend: "cuda" });
  });

  async function compare(label: string, tol: number): Promise<void> {
    const want = await run(cpu, "contiguous");
    for (const layout of ["contiguous", "paged"] as const) {
      const forcedRun = await run(gpu, layout, want.ids);
      let worst = 0;
      want.logits.forEach((steps, i) => {
        assert.equal(forcedRun.logits[i].length, N);
        steps.forEach((ref, k) => {
          let scale = 0, diff = 0;
          for (let v = 0; v < ref.length; v++) {
            scale = Math.max(scale, Math.abs(ref[v]));
            diff = Math.max(diff, Math.abs(ref[v] - forcedRun.logits[i][k][v]));
          }
          worst = Math.max(worst, diff / scale);
          assert.ok(diff / scale < tol, `${label} ${layout} prompt ${i} step ${k}: logits differ by ${diff} (${(diff / scale).toExponential(2)} of their range)`);
        });
      });
      const free = await run(gpu, layout);
      const agree = want.ids.map((w, i) => { const k = w.findIndex((id, j) => free.ids[i][j] !== id); return k < 0 ? N : k; });
      console.log(`# ${label} ${layout}: worst logit gap ${worst.toExponential(2)} of range over ${N} steps × ${PROMPTS.length} prompts; free-running greedy tokens agree for ${agree.join(", ")} of ${N}`);
    }
  }

  it(`logits stay within tolerance of the CPU's at each of ${N} steps, three prompts, both layouts`, async () => {
    await compare("base", LOGIT_TOL);
  });

  it("decode steps replayed from CUDA graphs give the eager steps' logits, both layouts", async () => {
    const tokens = (await run(cpu, "contiguous")).ids;
    for (const layout of ["contiguous", "paged"] as const) {
      const stats: StepGraphStats[] = [];
      const eager = await run(gpu, layout, tokens, { stepGraphs: false });
      const replayed = await run(gpu, layout, tokens, { onStepGraphs: (s) => stats.push(s) });
      const gap = worstGap(eager.logits, replayed.logits);
      console.log(`# ${layout}: replayed vs eager worst logit gap ${gap.toExponential(2)} of range; ${JSON.stringify(stats)}`);
      // Replays split long contexts by the block table's capacity instead of the current length,
      // which only reorders the attention's sums (bf16 output rounding).
      assert.ok(gap < 1e-2, `${layout}: replayed logits differ from eager ones by ${gap.toExponential(2)} of the range`);
      assert.ok(stats.length > 0 && stats.every((s) => s.unavailable === null && s.replays > 0), JSON.stringify(stats));
      // Plain greedy without a logits hook picks on the device (argmaxRows): the same tokens as the
      // host's argmax over the same GPU's downloaded logits.
      const prompts = PROMPTS.map((p) => gpu.tokenizer.encode(p));
      const onDevice = await decodeWithKvCache(gpu.engine, prompts, { maxNewTokens: N, eosTokenIds: [], layout, sampler: new Sampler(resolveSampling({})) });
      assert.deepEqual(onDevice.map((r) => r.ids), (await run(gpu, layout)).ids, `${layout}: device picks`);
    }
  });

  it("with LoRA attached (unmerged) too", async () => {
    for (const m of [cpu, gpu]) {
      attachLora(m, { r: 8, seed: 5 });
      randomizeLoraB(m.backend, m.engine, 6, 0.3);
    }
    await compare("lora", LORA_LOGIT_TOL);
  });
});
