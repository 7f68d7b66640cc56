import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Backend, FrozenLinear, LoraAdapter } from "../../lib/backend/types.js";
import { NF4_CODE } from "../../lib/backend/cpu/nf4-dequant.js";
import { Rng } from "../../lib/model/random.js";
import { backends, checkGradient, project, randn } from "./backends.js";

const T = 5, IN = 16, OUT = 8, R = 3;

/** A random NF4 weight (random nibbles, random absmax) and its dequantized values. */
function randomNf4(be: Backend, seed: number, doubleQuant: boolean): { base: FrozenLinear; dense: Float32Array } {
  const rng = new Rng(seed);
  const n = OUT * IN, blocks = n / 64;
  const packed = new Uint8Array(n / 2).map(() => rng.int(256));
  const absmax = new Float32Array(blocks).map(() => 0.05 + rng.next());
  const dense = new Float32Array(n);
  let absmaxTensor, nested = null;
  if (doubleQuant) {
    const code = new Float32Array(256).map((_, i) => (i - 128) / 128);
    const q = new Uint8Array(blocks).map(() => rng.int(256));
    const nestedAbsmax = Float32Array.from([0.7]);
    const offset = 0.4;
    for (let j = 0; j < blocks; j++) absmax[j] = Math.fround(code[q[j]] * nestedAbsmax[0]) + offset;
    absmaxTensor = be.upload(q, [blocks], "u8", "base_weights");
    nested = { absmax: be.upload(nestedAbsmax, [1], "f32", "base_weights"), code: be.upload(code, [256], "f32", "base_weights"), blocksize: 256, offset };
  } else absmaxTensor = be.upload(absmax, [blocks], "f32", "base_weights");
  for (let i = 0; i < n; i++) {
    const nib = i % 2 === 0 ? packed[i >> 1] >> 4 : packed[i >> 1] & 15;
    dense[i] = NF4_CODE[nib] * absmax[Math.floor(i / 64)];
  }
  const weight = { kind: "nf4" as const, outFeatures: OUT, inFeatures: IN, blocksize: 64, packed: be.upload(packed, [n / 2], "u8", "base_weights"), absmax: absmaxTensor, nested };
  return { base: { weight, bias: null }, dense };
}

function denseBase(be: Backend, w: Float32Array, bias: Float32Array | null): FrozenLinear {
  return {
    weight: { kind: "dense", outFeatures: OUT, inFeatures: IN, weight: be.upload(w, [OUT, IN], "f32", "base_weights") },
    bias: bias ? be.upload(bias, [OUT], "f32", "base_weights") : null,
  };
}

for (const { name, make } of backends()) {
  describe(`linear (frozen base + LoRA) on ${name}`, () => {
    for (const doubleQuant of [false, true]) {
      it(`an NF4 base (double quant ${doubleQuant}) computes x · dequant(W)ᵀ`, () => {
        const be = make();
        const { base, dense } = randomNf4(be, 1, doubleQuant);
        const x = randn(2, T * IN);
        const y = be.download(be.linear(be.upload(x, [T, IN], "f32", "activations"), base, null));
        for (let t = 0; t < T; t++)
          for (let o = 0; o < OUT; o++) {
            let s = 0;
            for (let i = 0; i < IN; i++) s += x[t * IN + i] * dense[o * IN + i];
            assert.ok(Math.abs(y[t * OUT + o] - s) < 1e-4, `y[${t},${o}] ${y[t * OUT + o]} vs ${s}`);
          }
      });
    }
    it("adds bias and s · (x·Aᵀ)·Bᵀ", () => {
      const be = make();
      const w = randn(3, OUT * IN), bias = randn(4, OUT), a = randn(5, R * IN), b = randn(6, OUT * R), x = randn(7, T * IN);
      const lora: LoraAdapter = { a: be.upload(a, [R, IN], "f32", "adapters"), b: be.upload(b, [OUT, R], "f32", "adapters"), scale: 0.75 };
      const y = be.download(be.linear(be.upload(x, [T, IN], "f32", "activations"), denseBase(be, w, bias), lora));
      for (let t = 0; t < T; t++)
        for (let o = 0; o < OUT; o++) {
          let s = bias[o];
          for (let i = 0; i < IN; i++) s += x[t * IN + i] * w[o * IN + i];
          for (let k = 0; k < R; k++) {
            let xa = 0;
            for (let i = 0; i < IN; i++) xa += x[t * IN + i] * a[k * IN + i];
            s += 0.75 * xa * b[o * R + k];
          }
          assert.ok(Math.abs(y[t * OUT + o] - s) < 1e-4);
        }
    });
    it("backward gives dx, dA, dB matching finite differences, accumulating into the gradients", () => {
      const be = make();
      const { base } = randomNf4(be, 8, true);
      const a = randn(9, R * IN), b = randn(10, OUT * R), x = randn(11, T * IN), r = randn(12, T * OUT);
      const fwd = () => {
        const lora = { a: be.upload(a, [R, IN], "f32", "adapters"), b: be.upload(b, [OUT, R], "f32", "adapters"), scale: 0.5 };
        return be.download(be.linear(be.upload(x, [T, IN], "f32", "activations"), base, lora));
      };
      const loss = () => project(fwd(), r);
      const lora = { a: be.upload(a, [R, IN], "f32", "adapters"), b: be.upload(b, [OUT, R], "f32", "adapters"), scale: 0.5 };
      const grads = { a: be.zeros([R, IN], "f32", "adapters"), b: be.zeros([OUT, R], "f32", "adapters") };
      const xt = be.upload(x, [T, IN], "f32", "activations"), dy = be.upload(r, [T, OUT], "f32", "activations");
      const dx = be.linearBackward(dy, xt, base, lora, grads, true);
      assert.ok(dx);
      checkGradient("linear dx", x, be.download(dx), loss);
      const dA = be.download(grads.a), dB = be.download(grads.b);
      checkGradient("linear dA", a, dA, loss);
      checkGradient("linear dB", b, dB, loss);
      be.linearBackward(dy, xt, base, lora, grads, false);
      const dA2 = be.download(grads.a);
      for (let i = 0; i < dA.length; i++) assert.ok(Math.abs(dA2[i] - 2 * dA[i]) < 1e-4 * (1 + Math.abs(dA[i])));
    });
  });
}
