import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { AttentionShape } from "../../lib/backend/types.js";
import { backends, checkGradient, project, randn } from "./backends.js";

// Two packed sequences (lengths 4 and 3), 4 query heads sharing 2 kv heads.
const lens = [4, 3];
const T = 7;
const shape: AttentionShape = { numHeads: 4, numKvHeads: 2, headDim: 4, scale: 0.5 };
const cu = Int32Array.from([0, 4, 7]);
const QW = shape.numHeads * shape.headDim, KW = shape.numKvHeads * shape.headDim;

/** Naive reference: full masked softmax per sequence and head. */
function reference(q: Float32Array, k: Float32Array, v: Float32Array): Float32Array {
  const { numHeads, numKvHeads, headDim: d, scale } = shape;
  const o = new Float32Array(T * QW);
  let start = 0;
  for (const len of lens) {
    for (let h = 0; h < numHeads; h++) {
      const kh = Math.floor(h / (numHeads / numKvHeads));
      for (let t = start; t < start + len; t++) {
        const s: number[] = [];
        for (let j = start; j <= t; j++) {
          let dot = 0;
          for (let i = 0; i < d; i++) dot += q[t * QW + h * d + i] * k[j * KW + kh * d + i];
          s.push(dot * scale);
        }
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < d; i++) {
          let acc = 0;
          for (let j = start; j <= t; j++) acc += (e[j - start] / z) * v[j * KW + kh * d + i];
          o[t * QW + h * d + i] = acc;
        }
      }
    }
    start += len;
  }
  return o;
}

for (const { name, make } of backends()) {
  describe(`attention on ${name}`, () => {
    it("matches a masked softmax reference with GQA head sharing", () => {
      const be = make();
      const q = randn(1, T * QW), k = randn(2, T * KW), v = randn(3, T * KW);
      const { o } = be.attention(be.upload(q, [T, QW], "f32", "activations"), be.upload(k, [T, KW], "f32", "activations"), be.upload(v, [T, KW], "f32", "activations"), be.upload(cu, [3], "i32", "activations"), shape);
      const got = be.download(o), want = reference(q, k, v);
      for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `o[${i}] ${got[i]} vs ${want[i]}`);
    });
    it("keeps packed sequences apart: changing the second sample leaves the first's output unchanged", () => {
      const be = make();
      const q = randn(4, T * QW), k = randn(5, T * KW), v = randn(6, T * KW);
      const run = () => be.download(be.attention(be.upload(q, [T, QW], "f32", "activations"), be.upload(k, [T, KW], "f32", "activations"), be.upload(v, [T, KW], "f32", "activations"), be.upload(cu, [3], "i32", "activations"), shape).o);
      const before = run();
      for (let i = 4 * KW; i < T * KW; i++) { k[i] += 1; v[i] -= 2; }
      const after = run();
      for (let i = 0; i < 4 * QW; i++) assert.equal(after[i], before[i]);
      assert.notDeepEqual(after.subarray(4 * QW), before.subarray(4 * QW));
    });
    it("backward matches finite differences for q, k and v", () => {
      const be = make();
      const q = randn(7, T * QW), k = randn(8, T * KW), v = randn(9, T * KW), r = randn(10, T * QW);
      const cuT = be.upload(cu, [3], "i32", "activations");
      const fwd = () => be.attention(be.upload(q, [T, QW], "f32", "activations"), be.upload(k, [T, KW], "f32", "activations"), be.upload(v, [T, KW], "f32", "activations"), cuT, shape);
      const loss = () => project(be.download(fwd().o), r);
      const qt = be.upload(q, [T, QW], "f32", "activations"), kt = be.upload(k, [T, KW], "f32", "activations"), vt = be.upload(v, [T, KW], "f32", "activations");
      const { o, lse } = be.attention(qt, kt, vt, cuT, shape);
      const g = be.attentionBackward(be.upload(r, [T, QW], "f32", "activations"), qt, kt, vt, o, lse, cuT, shape);
      checkGradient("attention dq", q, be.download(g.dq), loss);
      checkGradient("attention dk", k, be.download(g.dk), loss);
      checkGradient("attention dv", v, be.download(g.dv), loss);
    });
  });
}
