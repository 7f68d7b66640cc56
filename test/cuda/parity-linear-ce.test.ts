// The CUDA backend's linear layers (NF4 and dense bases, bias, LoRA) and the fused LM-head
// cross-entropy against the CPU backend, plus its memory accounting and out-of-memory error.
// Skips without a GPU.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { OutOfMemoryError, type FrozenLinear } from "../../lib/backend/types.js";
import { uploadNf4 } from "../../lib/model/upload-weights.js";
import { nf4Quantize } from "../../lib/quant/nf4.js";
import { both, bothI32, expectClose, expectDeltaClose, pair, randn, skipWithoutGpu, type Pair } from "./parity-helpers.js";

function nf4Bases(p: Pair, outF: number, inF: number): [FrozenLinear, FrozenLinear] {
  const q = nf4Quantize(randn(p, outF * inF, 0.05), [outF, inF], { blocksize: 64, doubleQuant: true });
  const [cb, gb] = both(p, randn(p, outF), [outF]);
  return [{ weight: uploadNf4(p.cpu, q), bias: cb }, { weight: uploadNf4(p.gpu, q), bias: gb }];
}

describe("CUDA linear and cross-entropy match the CPU backend", { skip: skipWithoutGpu }, () => {
  it("NF4 base + bias + LoRA: forward, dx, and accumulated dA, dB", () => {
    const p = pair();
    const T = 45, inF = 128, outF = 96, r = 8, scale = 2;
    const [cBase, gBase] = nf4Bases(p, outF, inF);
    const [ca, ga] = both(p, randn(p, r * inF, 0.1), [r, inF]);
    const [cb, gb] = both(p, randn(p, outF * r, 0.1), [outF, r]);
    const [cx, gx] = both(p, randn(p, T * inF), [T, inF]);
    const cl = { a: ca, b: cb, scale }, gl = { a: ga, b: gb, scale };
    expectClose(p, "linear y", p.gpu.linear(gx, gBase, gl), p.cpu.linear(cx, cBase, cl));
    const [cdy, gdy] = both(p, randn(p, T * outF), [T, outF]);
    const [cga, gga] = both(p, randn(p, r * inF), [r, inF]);
    const [cgb, ggb] = both(p, randn(p, outF * r), [outF, r]);
    const startA = p.cpu.download(cga), startB = p.cpu.download(cgb);
    const gdx = p.gpu.linearBackward(gdy, gx, gBase, gl, { a: gga, b: ggb }, true)!;
    const cdx = p.cpu.linearBackward(cdy, cx, cBase, cl, { a: cga, b: cgb }, true)!;
    expectClose(p, "linear dx", gdx, cdx);
    expectDeltaClose(p, "linear dA", gga, cga, startA);
    expectDeltaClose(p, "linear dB", ggb, cgb, startB);
    assert.equal(p.gpu.linearBackward(gdy, gx, gBase, gl, null, false), null);
    p.gpu.releaseWorkspace();
  });

  it("NF4 base at T = 8 (batched decode: the small-batch tensor-core kernel) + bias + LoRA matches the CPU and dequantize + GEMM", () => {
    const p = pair();
    const T = 8, inF = 320, outF = 100, r = 4, scale = 0.5; // not multiples of the kernel's 64-row x 256-k tile
    const [cBase, gBase] = nf4Bases(p, outF, inF);
    const [ca, ga] = both(p, randn(p, r * inF, 0.1), [r, inF]);
    const [cb, gb] = both(p, randn(p, outF * r, 0.1), [outF, r]);
    const [cx, gx] = both(p, randn(p, T * inF), [T, inF]);
    const cl = { a: ca, b: cb, scale }, gl = { a: ga, b: gb, scale };
    const cpu = p.cpu.linear(cx, cBase, cl);
    expectClose(p, "small-batch linear y", p.gpu.linear(gx, gBase, gl), cpu);
    const saved = process.env.TSLOTH_NF4_SMALL_BATCH;
    process.env.TSLOTH_NF4_SMALL_BATCH = "off";
    try {
      expectClose(p, "dequantize + GEMM linear y", p.gpu.linear(gx, gBase, gl), cpu);
    } finally {
      if (saved === undefined) delete process.env.TSLOTH_NF4_SMALL_BATCH;
      else process.env.TSLOTH_NF4_SMALL_BATCH = saved;
    }
    p.gpu.releaseWorkspace();
  });

  it("dense f32 base without LoRA", () => {
    const p = pair();
    const T = 20, inF = 64, outF = 48;
    const [cw, gw] = both(p, randn(p, outF * inF, 0.1), [outF, inF]);
    const cBase: FrozenLinear = { weight: { kind: "dense", outFeatures: outF, inFeatures: inF, weight: cw }, bias: null };
    const gBase: FrozenLinear = { weight: { kind: "dense", outFeatures: outF, inFeatures: inF, weight: gw }, bias: null };
    const [cx, gx] = both(p, randn(p, T * inF), [T, inF]);
    expectClose(p, "dense y", p.gpu.linear(gx, gBase, null), p.cpu.linear(cx, cBase, null));
  });

  it("cross-entropy with the LM head in chunks: loss sum, lse, dh, the one-call training form; and logits", () => {
    const p = pair();
    const T = 50, H = 64, V = 500, chunk = 16;
    const [ch, gh] = both(p, randn(p, T * H), [T, H]);
    const [cw, gw] = both(p, randn(p, V * H, 0.2), [V, H]);
    const labels = Int32Array.from({ length: T }, (_, i) => (i % 5 === 0 ? -100 : p.rng.int(V)));
    const [cl, gl] = bothI32(p, labels);
    const g = p.gpu.crossEntropyLmHead(gh, gw, gl, chunk), c = p.cpu.crossEntropyLmHead(ch, cw, cl, chunk);
    expectClose(p, "ce lossSum", g.lossSum, c.lossSum, 5e-3);
    expectClose(p, "ce lse", g.lse, c.lse, 5e-3);
    const count = labels.filter((l) => l !== -100).length;
    expectClose(p, "ce dh", p.gpu.crossEntropyLmHeadBackward(gh, gw, gl, g.lse, 1 / count, chunk),
      p.cpu.crossEntropyLmHeadBackward(ch, cw, cl, c.lse, 1 / count, chunk));
    const gf = p.gpu.crossEntropyLmHeadAndGrad(gh, gw, gl, 1 / count, chunk), cf = p.cpu.crossEntropyLmHeadAndGrad(ch, cw, cl, 1 / count, chunk);
    expectClose(p, "ce training form lossSum", gf.lossSum, cf.lossSum, 5e-3);
    expectClose(p, "ce training form dh", gf.dh, cf.dh);
    expectClose(p, "lm head logits", p.gpu.lmHeadLogits(gh, gw), p.cpu.lmHeadLogits(ch, cw));
  });

  it("accounts allocations by category and reports out of memory as OutOfMemoryError", () => {
    const p = pair();
    const before = p.gpu.memory();
    const t = p.gpu.zeros([1 << 20], "f32", "kv_cache");
    const mid = p.gpu.memory();
    assert.ok(mid.current.kv_cache >= before.current.kv_cache + (4 << 20));
    assert.ok(mid.peak.kv_cache >= mid.current.kv_cache);
    p.gpu.free(t);
    assert.equal(p.gpu.memory().current.kv_cache, before.current.kv_cache);
    assert.throws(() => p.gpu.zeros([2 ** 50], "u8", "activations"), (e: unknown) => {
      assert.ok(e instanceof OutOfMemoryError, String(e));
      assert.match((e as Error).message, /out of memory: asked for .+ of activations with .+ free/);
      return true;
    });
    const after = p.gpu.zeros([16], "f32", "activations"); // still usable
    p.gpu.free(after);
  });
});
