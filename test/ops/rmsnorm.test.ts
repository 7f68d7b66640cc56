import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { backends, checkGradient, project, randn } from "./backends.js";

for (const { name, make } of backends()) {
  describe(`rmsnorm on ${name}`, () => {
    const T = 5, H = 12, eps = 1e-5;
    it("normalizes each row by its root mean square and scales by the weight", () => {
      const be = make();
      const x = randn(1, T * H), w = randn(2, H);
      const { y, rstd } = be.rmsnorm(be.upload(x, [T, H], "f32", "activations"), be.upload(w, [H], "f32", "base_weights"), eps);
      const yd = be.download(y), rd = be.download(rstd);
      for (let t = 0; t < T; t++) {
        let ss = 0;
        for (let j = 0; j < H; j++) ss += x[t * H + j] ** 2;
        const r = 1 / Math.sqrt(ss / H + eps);
        assert.ok(Math.abs(rd[t] - r) < 1e-5 * r);
        for (let j = 0; j < H; j++) assert.ok(Math.abs(yd[t * H + j] - x[t * H + j] * r * w[j]) < 1e-5);
      }
    });
    it("backward matches finite differences", () => {
      const be = make();
      const x = randn(3, T * H), w = randn(4, H), r = randn(5, T * H);
      const wt = be.upload(w, [H], "f32", "base_weights");
      const loss = () => project(be.download(be.rmsnorm(be.upload(x, [T, H], "f32", "activations"), wt, eps).y), r);
      const xt = be.upload(x, [T, H], "f32", "activations");
      const { rstd } = be.rmsnorm(xt, wt, eps);
      const dx = be.download(be.rmsnormBackward(be.upload(r, [T, H], "f32", "activations"), xt, wt, rstd));
      checkGradient("rmsnorm dx", x, dx, loss);
    });
  });
}
