// Token choice: greedy, repetition penalty as Hugging Face applies it, temperature, top-k, top-p,
// and seeded draws whose frequencies follow the filtered softmax.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { resolveSampling, Sampler } from "../../lib/infer/sampling.js";
import { randn } from "../ops/backends.js";

const sampler = (o: Parameters<typeof resolveSampling>[0]) => new Sampler(resolveSampling(o));

function frequencies(s: Sampler, logits: Float32Array, n: number): Float64Array {
  const f = new Float64Array(logits.length);
  for (let i = 0; i < n; i++) f[s.pick(logits, [])] += 1 / n;
  return f;
}

function softmax(x: ArrayLike<number>, t = 1): number[] {
  const m = Math.max(...Array.from(x));
  const e = Array.from(x, (v) => Math.exp((v - m) / t));
  const s = e.reduce((a, b) => a + b);
  return e.map((v) => v / s);
}

describe("Sampler", () => {
  const logits = randn(42, 12, 1.5);
  const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);

  it("greedy picks the argmax", () => {
    assert.equal(sampler({}).pick(logits, []), order[0]);
  });

  it("repetition penalty divides positive and multiplies negative logits of seen tokens (CTRL, as in HF)", () => {
    const l = Float32Array.from([2.0, 1.9, -0.1, -0.2]);
    // 2.0 / 1.5 = 1.33 < 1.9: the seen argmax loses.
    assert.equal(sampler({ repetitionPenalty: 1.5 }).pick(l, [0, 0]), 1);
    // -0.1 * 3 = -0.3 < -0.2: a negative seen logit is pushed down.
    assert.equal(sampler({ repetitionPenalty: 3 }).pick(Float32Array.from([-0.1, -0.2]), [0]), 1);
  });

  it("top-k 1 and a tiny top-p are greedy whatever the temperature", () => {
    assert.equal(sampler({ temperature: 5, topK: 1, seed: 3 }).pick(logits, []), order[0]);
    assert.equal(sampler({ temperature: 5, topP: 1e-6, seed: 3 }).pick(logits, []), order[0]);
  });

  it("temperature sampling follows softmax(logits / T)", () => {
    const f = frequencies(sampler({ temperature: 0.7, seed: 1 }), logits, 40000);
    const p = softmax(logits, 0.7);
    p.forEach((pi, i) => assert.ok(Math.abs(f[i] - pi) < 0.01, `token ${i}: ${f[i]} vs ${pi}`));
  });

  it("top-k and top-p keep only the most likely tokens, renormalized", () => {
    const fk = frequencies(sampler({ temperature: 1, topK: 3, seed: 2 }), logits, 30000);
    const top3 = softmax(order.slice(0, 3).map((i) => logits[i]));
    order.forEach((tok, r) => assert.ok(Math.abs(fk[tok] - (r < 3 ? top3[r] : 0)) < 0.012, `rank ${r}`));
    const p = softmax(logits);
    const sorted = order.map((i) => p[i]);
    const cut = sorted.findIndex((_, i) => sorted.slice(0, i + 1).reduce((a, b) => a + b) >= 0.8) + 1;
    const fp = frequencies(sampler({ temperature: 1, topP: 0.8, seed: 3 }), logits, 30000);
    order.forEach((tok, r) => { if (r >= cut) assert.equal(fp[tok], 0, `rank ${r} is outside the nucleus`); else assert.ok(fp[tok] > 0); });
  });

  it("the same seed gives the same draws", () => {
    const a = sampler({ temperature: 1, seed: 9 }), b = sampler({ temperature: 1, seed: 9 });
    for (let i = 0; i < 50; i++) assert.equal(a.pick(logits, []), b.pick(logits, []));
  });
});
