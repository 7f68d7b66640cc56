// Every elementwise, embedding, norm (and generation's fused add + norm), rotary, SwiGLU, attention
// and optimizer op of the CUDA backend against the CPU backend (the spec) on fresh random inputs,
// forward and backward. Skips without a GPU.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { f32ToBf16 } from "../../lib/formats/dtype.js";
import { both, bothI32, expectClose, expectDeltaClose, pair, randn, skipWithoutGpu } from "./parity-helpers.js";

describe("CUDA backend ops match the CPU backend", { skip: skipWithoutGpu }, () => {
  it("elementwise: add, addInPlace, scaleInPlace, copyInto, sumOfSquares, zeroInPlace", () => {
    const p = pair();
    const n = 10_007;
    const [ca, ga] = both(p, randn(p, n), [n]);
    const [cb, gb] = both(p, randn(p, n), [n]);
    expectClose(p, "add", p.gpu.add(ga, gb), p.cpu.add(ca, cb), 1e-6);
    p.gpu.addInPlace(ga, gb, -0.3);
    p.cpu.addInPlace(ca, cb, -0.3);
    expectClose(p, "addInPlace", ga, ca, 1e-6);
    p.gpu.scaleInPlace(ga, 1.7);
    p.cpu.scaleInPlace(ca, 1.7);
    expectClose(p, "scaleInPlace", ga, ca, 1e-6);
    const gs = p.gpu.sumOfSquares([ga, gb]), cs = p.cpu.sumOfSquares([ca, cb]);
    assert.ok(Math.abs(gs - cs) / cs < 1e-6, `sumOfSquares ${gs} vs ${cs}`);
    const gc = p.gpu.zeros([n], "f32", "activations");
    p.gpu.copyInto(gc, ga);
    expectClose(p, "copyInto", gc, ca, 1e-6);
    p.gpu.zeroInPlace(gc);
    assert.ok(p.gpu.download(gc).every((x) => x === 0));
  });

  it("embedding forward and its accumulated gradient", () => {
    const p = pair();
    const V = 300, H = 64, T = 97;
    const [ct, gt] = both(p, randn(p, V * H), [V, H]);
    const ids = Int32Array.from({ length: T }, () => p.rng.int(V));
    const [ci, gi] = bothI32(p, ids);
    expectClose(p, "embedding", p.gpu.embedding(gt, gi), p.cpu.embedding(ct, ci));
    const [cdy, gdy] = both(p, randn(p, T * H), [T, H]);
    const [cg, gg] = both(p, randn(p, V * H), [V, H]);
    p.gpu.embeddingBackward(gdy, gi, gg);
    p.cpu.embeddingBackward(cdy, ci, cg);
    expectClose(p, "embeddingBackward", gg, cg);
  });

  it("rmsnorm forward (y, rstd) and backward", () => {
    const p = pair();
    const T = 33, H = 256;
    const [cx, gx] = both(p, randn(p, T * H, 2), [T, H]);
    const [cw, gw] = both(p, Float32Array.from(randn(p, H, 0.1), (v) => 1 + v), [H]);
    const g = p.gpu.rmsnorm(gx, gw, 1e-5), c = p.cpu.rmsnorm(cx, cw, 1e-5);
    expectClose(p, "rmsnorm y", g.y, c.y);
    expectClose(p, "rmsnorm rstd", g.rstd, c.rstd, 5e-3);
    const [cdy, gdy] = both(p, randn(p, T * H), [T, H]);
    expectClose(p, "rmsnorm dx", p.gpu.rmsnormBackward(gdy, gx, gw, g.rstd), p.cpu.rmsnormBackward(cdy, cx, cw, c.rstd));
  });

  it("the fused residual add + rmsnorm of generation: as the CPU, and bit for bit as add then rmsnorm", () => {
    const p = pair();
    for (const [T, H] of [[3, 256], [5, 100]]) {  // the 16-byte path and the scalar one
      const up = (data: Float32Array) => {
        const bits = f32ToBf16(data);
        return [p.cpu.upload(bits, [T, H], "bf16", "activations"), p.gpu.upload(bits, [T, H], "bf16", "activations")] as const;
      };
      const [ca, ga] = up(randn(p, T * H, 2)), [cb, gb] = up(randn(p, T * H));
      const [cw, gw] = both(p, Float32Array.from(randn(p, H, 0.1), (v) => 1 + v), [H]);
      const g = p.gpu.addRmsnorm(ga, gb, gw, 1e-5), c = p.cpu.addRmsnorm(ca, cb, cw, 1e-5);
      expectClose(p, `addRmsnorm sum [${T},${H}]`, g.sum, c.sum);
      expectClose(p, `addRmsnorm y [${T},${H}]`, g.y, c.y);
      const sum = p.gpu.add(ga, gb), { y } = p.gpu.rmsnorm(sum, gw, 1e-5);
      assert.deepEqual(p.gpu.download(g.sum), p.gpu.download(sum), "the sum has add's bits");
      assert.deepEqual(p.gpu.download(g.y), p.gpu.download(y), "y has rmsnorm's bits");
    }
  });

  it("rope forward and backward with per-token positions", () => {
    const p = pair();
    const T = 40, heads = 4, D = 32;
    const inv = Float32Array.from({ length: D / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / D));
    const [ci, gi] = both(p, inv, [D / 2]);
    const [cp, gp] = bothI32(p, Int32Array.from({ length: T }, () => p.rng.int(4096)));
    const [cx, gx] = both(p, randn(p, T * heads * D), [T, heads * D]);
    expectClose(p, "rope", p.gpu.rope(gx, gp, gi, heads, D), p.cpu.rope(cx, cp, ci, heads, D));
    expectClose(p, "ropeBackward", p.gpu.ropeBackward(gx, gp, gi, heads, D), p.cpu.ropeBackward(cx, cp, ci, heads, D));
  });

  it("swiglu forward and backward", () => {
    const p = pair();
    const n = 5000;
    const [cg, gg] = both(p, randn(p, n, 2), [50, 100]);
    const [cu, gu] = both(p, randn(p, n, 2), [50, 100]);
    expectClose(p, "swiglu", p.gpu.swiglu(gg, gu), p.cpu.swiglu(cg, cu));
    const [cd, gd] = both(p, randn(p, n), [50, 100]);
    const g = p.gpu.swigluBackward(gd, gg, gu), c = p.cpu.swigluBackward(cd, cg, cu);
    expectClose(p, "swiglu dGate", g.dGate, c.dGate);
    expectClose(p, "swiglu dUp", g.dUp, c.dUp);
  });

  it("causal GQA attention over packed sequences, forward and backward", () => {
    const p = pair();
    const lens = [37, 63, 1, 70], Hq = 4, Hkv = 2, D = 32;
    const T = lens.reduce((a, b) => a + b, 0);
    const cu = Int32Array.from([0, ...lens.map((_, i) => lens.slice(0, i + 1).reduce((a, b) => a + b, 0))]);
    const [ccu, gcu] = bothI32(p, cu);
    const shape = { numHeads: Hq, numKvHeads: Hkv, headDim: D, scale: 1 / Math.sqrt(D) };
    const [cq, gq] = both(p, randn(p, T * Hq * D), [T, Hq * D]);
    const [ck, gk] = both(p, randn(p, T * Hkv * D), [T, Hkv * D]);
    const [cv, gv] = both(p, randn(p, T * Hkv * D), [T, Hkv * D]);
    const g = p.gpu.attention(gq, gk, gv, gcu, shape), c = p.cpu.attention(cq, ck, cv, ccu, shape);
    expectClose(p, "attention o", g.o, c.o);
    expectClose(p, "attention lse", g.lse, c.lse, 5e-3);
    const [cdo, gdo] = both(p, randn(p, T * Hq * D), [T, Hq * D]);
    const gb = p.gpu.attentionBackward(gdo, gq, gk, gv, g.o, g.lse, gcu, shape);
    const cb = p.cpu.attentionBackward(cdo, cq, ck, cv, c.o, c.lse, ccu, shape);
    expectClose(p, "attention dq", gb.dq, cb.dq, 3e-2);
    expectClose(p, "attention dk", gb.dk, cb.dk, 3e-2);
    expectClose(p, "attention dv", gb.dv, cb.dv, 3e-2);
  });

  it("multi-tensor AdamW, three steps", () => {
    const p = pair();
    const shapes = [[8, 64], [64, 8], [5]];
    const mk = (fn: (n: number) => Float32Array) => shapes.map((s) => both(p, fn(s.reduce((a, b) => a * b, 1)), s));
    const params = mk((n) => randn(p, n)), m = mk((n) => new Float32Array(n)), v = mk((n) => new Float32Array(n));
    const start = params.map(([c]) => p.cpu.download(c));
    for (let step = 1; step <= 3; step++) {
      const grads = mk((n) => randn(p, n));
      const h = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step };
      p.cpu.adamw(params.map((x) => x[0]), grads.map((x) => x[0]), m.map((x) => x[0]), v.map((x) => x[0]), h);
      p.gpu.adamw(params.map((x) => x[1]), grads.map((x) => x[1]), m.map((x) => x[1]), v.map((x) => x[1]), h);
    }
    params.forEach(([c, g], i) => expectDeltaClose(p, `adamw update ${i}`, g, c, start[i], 1e-4));
  });

  it("offload round trip through pinned host memory is exact and accounted as offload_host", async () => {
    const p = pair();
    const n = 1 << 16;
    const x = p.gpu.upload(randn(p, n), [n], "f32", "activations");
    const before = p.gpu.memory().current.offload_host;
    const host = p.gpu.copyToHostAsync(x);
    await host.done;
    assert.ok(p.gpu.memory().current.offload_host >= before + n * 4);
    const back = p.gpu.copyToDeviceAsync(host.tensor, "activations");
    await back.done;
    assert.deepEqual(p.gpu.download(back.tensor), p.gpu.download(x));
  });
});
