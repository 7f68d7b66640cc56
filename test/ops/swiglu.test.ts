import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { backends, checkGradient, project, randn } from "./backends.js";

for (const { name, make } of backends()) {
  describe(`swiglu on ${name}`, () => {
    const T = 4, I = 9;
    it("computes silu(gate) * up", () => {
      const be = make();
      const g = randn(1, T * I, 2), u = randn(2, T * I);
      const h = be.download(be.swiglu(be.upload(g, [T, I], "f32", "activations"), be.upload(u, [T, I], "f32", "activations")));
      for (let i = 0; i < g.length; i++) assert.ok(Math.abs(h[i] - (g[i] / (1 + Math.exp(-g[i]))) * u[i]) < 1e-6);
    });
    it("backward matches finite differences for gate and up", () => {
      const be = make();
      const g = randn(3, T * I, 2), u = randn(4, T * I), r = randn(5, T * I);
      const loss = () => project(be.download(be.swiglu(be.upload(g, [T, I], "f32", "activations"), be.upload(u, [T, I], "f32", "activations"))), r);
      const { dGate, dUp } = be.swigluBackward(be.upload(r, [T, I], "f32", "activations"), be.upload(g, [T, I], "f32", "activations"), be.upload(u, [T, I], "f32", "activations"));
      checkGradient("swiglu dGate", g, be.download(dGate), loss);
      checkGradient("swiglu dUp", u, be.download(dUp), loss);
    });
  });
}
