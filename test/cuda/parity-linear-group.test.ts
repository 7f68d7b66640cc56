// The CUDA backend's grouped linear (DecodeBackend.linearGroup: a layer's q/k/v or gate/up over one
// x) against the CPU backend's separate linears: the batch-1 NF4 weights that share one
// tsl_nf4_gemv_group launch (double-quantized or f32 absmax, bias and LoRA on some of them only, a
// first matrix with an odd row count), and the groups that cannot share it and run one by one.
// Skips without a GPU.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FrozenLinear, LoraAdapter, Tensor } from "../../lib/backend/types.js";
import { uploadNf4 } from "../../lib/model/upload-weights.js";
import { nf4Quantize } from "../../lib/quant/nf4.js";
import { both, expectClose, pair, randn, skipWithoutGpu, type Pair } from "./parity-helpers.js";

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
