import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { backends, randn } from "./backends.js";

for (const { name, make } of backends()) {
  describe(`adamw on ${name}`, () => {
    const hp = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
    it("first step moves every parameter by lr against the sign of its gradient (bias correction)", () => {
      const be = make();
      const p0 = randn(1, 20), g = randn(2, 20);
      const p = be.upload(p0, [20], "f32", "adapters");
      be.adamw([p], [be.upload(g, [20], "f32", "adapters")], [be.zeros([20], "f32", "optimizer")], [be.zeros([20], "f32", "optimizer")], hp);
      const p1 = be.download(p);
      for (let i = 0; i < 20; i++) assert.ok(Math.abs(p1[i] - (p0[i] - 0.01 * Math.sign(g[i]))) < 1e-6);
    });
    it("decays weights decoupled from the gradient (p ← p·(1 − lr·wd) when the gradient is zero)", () => {
      const be = make();
      const p0 = randn(3, 10);
      const p = be.upload(p0, [10], "f32", "adapters");
      be.adamw([p], [be.zeros([10], "f32", "adapters")], [be.zeros([10], "f32", "optimizer")], [be.zeros([10], "f32", "optimizer")], { ...hp, weightDecay: 0.5 });
      const p1 = be.download(p);
      for (let i = 0; i < 10; i++) assert.ok(Math.abs(p1[i] - p0[i] * (1 - 0.005)) < 1e-6);
    });
    it("minimizes a quadratic over several tensors at once", () => {
      const be = make();
      const ps = [be.upload(randn(4, 5), [5], "f32", "adapters"), be.upload(randn(5, 3), [3], "f32", "adapters")];
      const ms = ps.map((p) => be.zeros(p.shape, "f32", "optimizer")), vs = ps.map((p) => be.zeros(p.shape, "f32", "optimizer"));
      for (let step = 1; step <= 300; step++) {
        const gs = ps.map((p) => be.clone(p, "adapters")); // gradient of ½‖p‖² is p
        be.adamw(ps, gs, ms, vs, { ...hp, lr: 0.05, step });
        gs.forEach((g) => be.free(g));
      }
      assert.ok(be.sumOfSquares(ps) < 1e-2, `‖p‖² = ${be.sumOfSquares(ps)}`);
    });
  });
}
