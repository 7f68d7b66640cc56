import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { backends, checkGradient, randn } from "./backends.js";

const T = 7, H = 6, V = 11;
const labels = Int32Array.from([3, -100, 0, 10, -100, 5, 5]);

/** Full-logits reference: Σ over non-ignored tokens of lse − logit[label]. */
function reference(h: Float32Array, w: Float32Array): number {
  let total = 0;
  for (let t = 0; t < T; t++) {
    if (labels[t] === -100) continue;
    const logits = Array.from({ length: V }, (_, v) => {
      let s = 0;
      for (let j = 0; j < H; j++) s += h[t * H + j] * w[v * H + j];
      return s;
    });
    const m = Math.max(...logits);
    total += m + Math.log(logits.reduce((a, x) => a + Math.exp(x - m), 0)) - logits[labels[t]];
  }
  return total;
}

for (const { name, make } of backends()) {
  describe(`cross-entropy fused with the LM head on ${name}`, () => {
    for (const chunk of [1, 2, 64]) {
      it(`matches full-logit cross-entropy with chunks of ${chunk} tokens, ignoring -100`, () => {
        const be = make();
        const h = randn(1, T * H), w = randn(2, V * H);
        const { lossSum } = be.crossEntropyLmHead(be.upload(h, [T, H], "f32", "activations"), be.upload(w, [V, H], "f32", "base_weights"), be.upload(labels, [T], "i32", "activations"), chunk);
        const got = be.download(lossSum)[0];
        const want = reference(h, w);
        assert.ok(Math.abs(got - want) < 1e-4 * Math.abs(want), `${got} vs ${want}`);
      });
    }
    it("backward gives dh matching finite differences of the mean loss, zero on ignored rows", () => {
      const be = make();
      const h = randn(3, T * H), w = randn(4, V * H);
      const wt = be.upload(w, [V, H], "f32", "base_weights"), lt = be.upload(labels, [T], "i32", "activations");
      const count = labels.filter((l) => l !== -100).length;
      const loss = () => be.download(be.crossEntropyLmHead(be.upload(h, [T, H], "f32", "activations"), wt, lt, 3).lossSum)[0] / count;
      const ht = be.upload(h, [T, H], "f32", "activations");
      const { lse } = be.crossEntropyLmHead(ht, wt, lt, 3);
      const dh = be.download(be.crossEntropyLmHeadBackward(ht, wt, lt, lse, 1 / count, 2));
      checkGradient("cross-entropy dh", h, dh, loss, { samples: T * H });
      for (let j = 0; j < H; j++) assert.equal(dh[1 * H + j], 0);
    });
    it("the training form gives the forward's loss and the backward's dh in one call", () => {
      const be = make();
      const h = randn(5, T * H), w = randn(6, V * H);
      const ht = be.upload(h, [T, H], "f32", "activations"), wt = be.upload(w, [V, H], "f32", "base_weights");
      const lt = be.upload(labels, [T], "i32", "activations");
      const { lossSum, lse } = be.crossEntropyLmHead(ht, wt, lt, 3);
      const dh = be.download(be.crossEntropyLmHeadBackward(ht, wt, lt, lse, 0.25, 3));
      const both = be.crossEntropyLmHeadAndGrad(ht, wt, lt, 0.25, 3);
      assert.equal(be.download(both.lossSum)[0], be.download(lossSum)[0]);
      assert.deepEqual(be.download(both.dh), dh);
      assert.ok(dh.some((v) => v !== 0), "a gradient of zeros would prove nothing");
    });
  });
}
