import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ropeInverseFrequencies } from "../../lib/model/rope-frequencies.js";
import { backends, checkGradient, project, randn } from "./backends.js";

for (const { name, make } of backends()) {
  describe(`rope on ${name}`, () => {
    const T = 6, nH = 2, D = 8;
    const positions = Int32Array.from([0, 1, 2, 0, 1, 5]);
    const inv = ropeInverseFrequencies(D, 10000, null);
    it("rotates pairs (i, i + D/2) by position · invFreq (HF rotate_half)", () => {
      const be = make();
      const x = randn(1, T * nH * D);
      const y = be.download(be.rope(be.upload(x, [T, nH * D], "f32", "activations"), be.upload(positions, [T], "i32", "activations"), be.upload(inv, [D / 2], "f32", "activations"), nH, D));
      for (let t = 0; t < T; t++)
        for (let h = 0; h < nH; h++)
          for (let i = 0; i < D / 2; i++) {
            const o = t * nH * D + h * D;
            const th = positions[t] * inv[i];
            const a = x[o + i], b = x[o + i + D / 2];
            assert.ok(Math.abs(y[o + i] - (a * Math.cos(th) - b * Math.sin(th))) < 1e-5);
            assert.ok(Math.abs(y[o + i + D / 2] - (b * Math.cos(th) + a * Math.sin(th))) < 1e-5);
          }
    });
    it("backward matches finite differences (and is the inverse rotation)", () => {
      const be = make();
      const x = randn(2, T * nH * D), r = randn(3, T * nH * D);
      const pos = be.upload(positions, [T], "i32", "activations"), fr = be.upload(inv, [D / 2], "f32", "activations");
      const loss = () => project(be.download(be.rope(be.upload(x, [T, nH * D], "f32", "activations"), pos, fr, nH, D)), r);
      const dx = be.download(be.ropeBackward(be.upload(r, [T, nH * D], "f32", "activations"), pos, fr, nH, D));
      checkGradient("rope dx", x, dx, loss);
      const roundTrip = be.download(be.ropeBackward(be.rope(be.upload(x, [T, nH * D], "f32", "activations"), pos, fr, nH, D), pos, fr, nH, D));
      for (let i = 0; i < x.length; i++) assert.ok(Math.abs(roundTrip[i] - x[i]) < 1e-5);
    });
  });
}

describe("llama3 rope scaling", () => {
  it("keeps high frequencies, divides low ones by the factor and blends between (Llama 3.1)", () => {
    const D = 64, base = 500000;
    const plain = ropeInverseFrequencies(D, base, null);
    const scaled = ropeInverseFrequencies(D, base, { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    assert.ok(Math.abs(scaled[0] - plain[0]) < 1e-9 * plain[0]);
    const last = D / 2 - 1;
    assert.ok(Math.abs(scaled[last] - plain[last] / 8) < 1e-6 * plain[last]);
    for (let i = 0; i < D / 2; i++) assert.ok(scaled[i] <= plain[i] + 1e-12 && scaled[i] >= plain[i] / 8 - 1e-12);
  });
});
