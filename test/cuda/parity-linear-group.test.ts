// The CUDA backend's grouped linear (DecodeBackend.linearGroup: a layer's q/k/v or gate/up over one
// x) against the CPU backend's separate linears: the batch-1 NF4 weights that share one
// tsl_nf4_gemv_group launch (double-quantized or f32 absmax, bias and LoRA on some of them only, a
// first matrix with an odd row count), and the groups that cannot share it and run one by one; and
// the training shapes (T above the decode paths), where the adapters share one pass over x forward
// (tsl_lora_down_group) and backward (tsl_linear_bwd_xa, tsl_lora_up_group_bwd), against the CPU
// loop of linear / linearBackward. Skips without a GPU.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FrozenLinear, LoraAdapter, LoraGrads, Tensor } from "../../lib/backend/types.js";
import { uploadNf4 } from "../../lib/model/upload-weights.js";
import { nf4Quantize } from "../../lib/quant/nf4.js";
import { both, expectClose, expectDeltaClose, pair, randn, skipWithoutGpu, type Pair } from "./parity-helpers.js";

interface Spec { outF: number; bias: boolean; rank: number }

function bases(p: Pair, specs: readonly Spec[], inF: number, doubleQuant: boolean, blocksize: number) {
  const cpu: FrozenLinear[] = [], gpu: FrozenLinear[] = [];
  const cl: (LoraAdapter | null)[] = [], gl: (LoraAdapter | null)[] = [];
  for (const s of specs) {
    const q = nf4Quantize(randn(p, s.outF * inF, 0.05), [s.outF, inF], { blocksize, doubleQuant });
    const [cb, gb] = s.bias ? both(p, randn(p, s.outF), [s.outF]) : [null, null];
    cpu.push({ weight: uploadNf4(p.cpu, q), bias: cb });
    gpu.push({ weight: uploadNf4(p.gpu, q), bias: gb });
    if (s.rank) {
      const [ca, ga] = both(p, randn(p, s.rank * inF, 0.1), [s.rank, inF]);
      const [cbb, gbb] = both(p, randn(p, s.outF * s.rank, 0.1), [s.outF, s.rank]);
      cl.push({ a: ca, b: cbb, scale: 2 });
      gl.push({ a: ga, b: gbb, scale: 2 });
    } else {
      cl.push(null);
      gl.push(null);
    }
  }
  return { cpu, gpu, cl, gl };
}

function expectGroupClose(p: Pair, name: string, gpu: Tensor[], cpu: Tensor[], outs: readonly number[]): void {
  assert.equal(gpu.length, cpu.length, `${name}: one output per linear`);
  gpu.forEach((y, i) => {
    assert.deepEqual(y.shape, [cpu[i].shape[0], outs[i]], `${name} ${i}: shape`);
    expectClose(p, `${name} ${i}`, y, cpu[i]);
  });
}

describe("CUDA linearGroup matches separate CPU linears", { skip: skipWithoutGpu }, () => {
  const cases: { name: string; specs: Spec[]; inF: number; dq: boolean; bs: number; T: number }[] = [
    { name: "q/k/v, double-quantized, LoRA on k", specs: [{ outF: 257, bias: false, rank: 0 }, { outF: 64, bias: false, rank: 8 }, { outF: 64, bias: false, rank: 0 }], inF: 192, dq: true, bs: 64, T: 1 },
    { name: "q/k/v with bias (Qwen2), f32 absmax", specs: [{ outF: 96, bias: true, rank: 4 }, { outF: 32, bias: true, rank: 0 }, { outF: 32, bias: true, rank: 0 }], inF: 128, dq: false, bs: 128, T: 1 },
    { name: "gate/up, blocksize 32", specs: [{ outF: 384, bias: false, rank: 0 }, { outF: 384, bias: false, rank: 16 }], inF: 256, dq: true, bs: 32, T: 1 },
    // Not one launch: more than one row (dequantize + GEMM or the small-batch path per linear).
    { name: "q/k/v at 3 rows", specs: [{ outF: 96, bias: false, rank: 8 }, { outF: 32, bias: false, rank: 0 }, { outF: 32, bias: false, rank: 0 }], inF: 128, dq: true, bs: 64, T: 3 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const p = pair();
      const b = bases(p, c.specs, c.inF, c.dq, c.bs);
      const [cx, gx] = both(p, randn(p, c.T * c.inF), [c.T, c.inF]);
      const cpu = b.cpu.map((base, i) => p.cpu.linear(cx, base, b.cl[i]));
      expectGroupClose(p, c.name, p.gpu.linearGroup(gx, b.gpu, b.gl), cpu, c.specs.map((s) => s.outF));
    });
  }
  it("a group whose weights differ in absmax kind runs one by one", () => {
    const p = pair();
    const dq = bases(p, [{ outF: 64, bias: false, rank: 0 }], 128, true, 64);
    const plain = bases(p, [{ outF: 48, bias: true, rank: 0 }], 128, false, 64);
    const [cx, gx] = both(p, randn(p, 128), [1, 128]);
    const cpu = [p.cpu.linear(cx, dq.cpu[0], null), p.cpu.linear(cx, plain.cpu[0], null)];
    expectGroupClose(p, "mixed absmax", p.gpu.linearGroup(gx, [dq.gpu[0], plain.gpu[0]], [null, null]), cpu, [64, 48]);
  });
});

/** A projection of a training group: NF4 or dense f32 base, bias, LoRA rank (0: none), frozen adapter. */
interface TrainSpec { outF: number; nf4: boolean; bias: boolean; rank: number; frozen?: boolean }

interface TrainGroup {
  cpu: { bases: FrozenLinear[]; loras: (LoraAdapter | null)[]; grads: (LoraGrads | null)[] };
  gpu: { bases: FrozenLinear[]; loras: (LoraAdapter | null)[]; grads: (LoraGrads | null)[] };
  /** The gradients' starting values (random: accumulation is checked, not overwriting). */
  starts: ({ a: Float32Array; b: Float32Array } | null)[];
}

function trainGroup(p: Pair, specs: readonly TrainSpec[], inF: number): TrainGroup {
  const g: TrainGroup = { cpu: { bases: [], loras: [], grads: [] }, gpu: { bases: [], loras: [], grads: [] }, starts: [] };
  for (const s of specs) {
    const w = randn(p, s.outF * inF, 0.05);
    const [cb, gb] = s.bias ? both(p, randn(p, s.outF), [s.outF]) : [null, null];
    if (s.nf4) {
      const q = nf4Quantize(w, [s.outF, inF], { blocksize: 64, doubleQuant: true });
      g.cpu.bases.push({ weight: uploadNf4(p.cpu, q), bias: cb });
      g.gpu.bases.push({ weight: uploadNf4(p.gpu, q), bias: gb });
    } else {
      const [cw, gw] = both(p, w, [s.outF, inF]);
      g.cpu.bases.push({ weight: { kind: "dense", outFeatures: s.outF, inFeatures: inF, weight: cw }, bias: cb });
      g.gpu.bases.push({ weight: { kind: "dense", outFeatures: s.outF, inFeatures: inF, weight: gw }, bias: gb });
    }
    const [ca, ga] = s.rank ? both(p, randn(p, s.rank * inF, 0.1), [s.rank, inF]) : [null, null];
    const [cbb, gbb] = s.rank ? both(p, randn(p, s.outF * s.rank, 0.1), [s.outF, s.rank]) : [null, null];
    g.cpu.loras.push(ca && cbb ? { a: ca, b: cbb, scale: 2 } : null);
    g.gpu.loras.push(ga && gbb ? { a: ga, b: gbb, scale: 2 } : null);
    const start = s.rank && !s.frozen ? { a: randn(p, s.rank * inF), b: randn(p, s.outF * s.rank) } : null;
    g.starts.push(start);
    const [cga, gga] = start ? both(p, start.a, [s.rank, inF]) : [null, null];
    const [cgb, ggb] = start ? both(p, start.b, [s.outF, s.rank]) : [null, null];
    g.cpu.grads.push(cga && cgb ? { a: cga, b: cgb } : null);
    g.gpu.grads.push(gga && ggb ? { a: gga, b: ggb } : null);
  }
  return g;
}

describe("CUDA grouped training linears match the CPU loop of single linears", { skip: skipWithoutGpu }, () => {
  const qkv = (nf4: boolean, bias: boolean, rank: number): TrainSpec[] =>
    [{ outF: 256, nf4, bias, rank }, { outF: 64, nf4, bias, rank }, { outF: 64, nf4, bias, rank }];
  const cases: { name: string; specs: TrainSpec[]; inF: number; T: number }[] = [
    { name: "q/k/v (GQA), NF4, r 16", specs: qkv(true, false, 16), inF: 256, T: 300 },
    { name: "q/k/v with bias (Qwen2), NF4, r 8", specs: qkv(true, true, 8), inF: 512, T: 64 },
    { name: "q/k/v, dense bases, r 16", specs: qkv(false, false, 16), inF: 256, T: 131 },
    { name: "gate/up, NF4, r 8", specs: [{ outF: 512, nf4: true, bias: false, rank: 8 }, { outF: 512, nf4: true, bias: false, rank: 8 }], inF: 256, T: 200 },
    { name: "q/k/v with LoRA on q and v only", specs: [{ outF: 256, nf4: true, bias: false, rank: 16 }, { outF: 64, nf4: true, bias: false, rank: 0 }, { outF: 64, nf4: true, bias: false, rank: 8 }], inF: 256, T: 96 },
    { name: "q/k/v with a frozen adapter on k", specs: [{ outF: 256, nf4: true, bias: false, rank: 8 }, { outF: 64, nf4: true, bias: false, rank: 8, frozen: true }, { outF: 64, nf4: true, bias: false, rank: 8 }], inF: 256, T: 96 },
    { name: "q/k/v without LoRA", specs: qkv(true, true, 0), inF: 256, T: 80 },
  ];
  for (const c of cases) {
    it(`forward: ${c.name}`, () => {
      const p = pair();
      const g = trainGroup(p, c.specs, c.inF);
      const [cx, gx] = both(p, randn(p, c.T * c.inF), [c.T, c.inF]);
      const cpu = g.cpu.bases.map((base, i) => p.cpu.linear(cx, base, g.cpu.loras[i]));
      expectGroupClose(p, c.name, p.gpu.linearGroup(gx, g.gpu.bases, g.gpu.loras), cpu, c.specs.map((s) => s.outF));
    });
    for (const needDx of [true, false]) {
      it(`backward${needDx ? "" : " without dx"}: ${c.name}`, () => {
        const p = pair();
        const g = trainGroup(p, c.specs, c.inF);
        const [cx, gx] = both(p, randn(p, c.T * c.inF), [c.T, c.inF]);
        const dys = c.specs.map((s) => both(p, randn(p, c.T * s.outF), [c.T, s.outF]));
        let cpuDx: Tensor | null = null;
        g.cpu.bases.forEach((base, i) => {
          const d = p.cpu.linearBackward(dys[i][0], cx, base, g.cpu.loras[i], g.cpu.grads[i], needDx);
          if (d && cpuDx) p.cpu.addInPlace(cpuDx, d);
          else cpuDx ??= d;
        });
        const gpuDx = p.gpu.linearGroupBackward(dys.map((d) => d[1]), gx, g.gpu.bases, g.gpu.loras, g.gpu.grads, needDx);
        if (needDx) {
          assert.ok(gpuDx && cpuDx, `${c.name}: dx expected`);
          assert.deepEqual(gpuDx.shape, [c.T, c.inF]);
          expectClose(p, `${c.name} dx`, gpuDx, cpuDx);
        } else assert.equal(gpuDx, null, `${c.name}: no dx without needDx`);
        g.starts.forEach((start, i) => {
          if (!start) return;
          expectDeltaClose(p, `${c.name} dA ${i}`, g.gpu.grads[i]!.a, g.cpu.grads[i]!.a, start.a);
          expectDeltaClose(p, `${c.name} dB ${i}`, g.gpu.grads[i]!.b, g.cpu.grads[i]!.b, start.b);
        });
      });
    }
  }
});
