// The grouped linear ops (Backend.linearGroup / linearGroupBackward: a layer's q/k/v or gate/up over
// one x) on the reference backend equal their definition, the loop of the single ops: the forward
// bit for bit, the summed dx within f32 rounding, the LoRA gradients exactly (accumulated into
// gradients that already hold values), for NF4 and dense bases, with and without bias and LoRA.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import type { FrozenLinear, LoraAdapter, LoraGrads, Tensor } from "../../lib/backend/types.js";
import { uploadNf4 } from "../../lib/model/upload-weights.js";
import { Rng, randomNormalArray } from "../../lib/model/random.js";
import { nf4Quantize } from "../../lib/quant/nf4.js";

/** One projection of a group: its out-features, base kind, bias, LoRA rank (0: none), frozen adapter. */
interface Spec { out: number; nf4: boolean; bias: boolean; r: number; frozen?: boolean }

const IN = 32, T = 7;

interface Group {
  be: CpuBackend;
  x: Tensor;
  dys: Tensor[];
  bases: FrozenLinear[];
  loras: (LoraAdapter | null)[];
  /** Two gradient sets with the same random starting values: one for the group op, one for the loop. */
  grads: [(LoraGrads | null)[], (LoraGrads | null)[]];
}

function makeGroup(specs: readonly Spec[], seed: number): Group {
  const be = new CpuBackend(), rng = new Rng(seed);
  const randn = (n: number, std = 1) => randomNormalArray(rng, n, std);
  const up = (data: Float32Array, shape: number[], cat: "activations" | "adapters" | "base_weights" = "activations") => be.upload(data, shape, "f32", cat);
  const bases = specs.map((s): FrozenLinear => {
    const w = randn(s.out * IN, 0.2);
    const weight = s.nf4
      ? uploadNf4(be, nf4Quantize(w, [s.out, IN], { blocksize: 64, doubleQuant: true }))
      : { kind: "dense" as const, outFeatures: s.out, inFeatures: IN, weight: up(w, [s.out, IN], "base_weights") };
    return { weight, bias: s.bias ? up(randn(s.out), [s.out], "base_weights") : null };
  });
  const loras = specs.map((s) => (s.r ? { a: up(randn(s.r * IN, 0.3), [s.r, IN], "adapters"), b: up(randn(s.out * s.r, 0.3), [s.out, s.r], "adapters"), scale: 1.5 } : null));
  const starts = specs.map((s) => (s.r && !s.frozen ? { a: randn(s.r * IN), b: randn(s.out * s.r) } : null));
  const gradSet = () => specs.map((s, i) => {
    const st = starts[i];
    return st ? { a: up(st.a, [s.r, IN], "adapters"), b: up(st.b, [s.out, s.r], "adapters") } : null;
  });
  return {
    be, bases, loras, grads: [gradSet(), gradSet()],
    x: up(randn(T * IN), [T, IN]),
    dys: specs.map((s) => up(randn(T * s.out), [T, s.out])),
  };
}

function loopBackward(g: Group, needDx: boolean): Float32Array | null {
  let sum: Float32Array | null = null;
  g.bases.forEach((base, i) => {
    const d = g.be.linearBackward(g.dys[i], g.x, base, g.loras[i], g.grads[1][i], needDx);
    if (!d) return;
    const h = g.be.download(d);
    if (sum) for (let j = 0; j < h.length; j++) sum[j] += h[j];
    else sum = h;
  });
  return sum;
}

function expectGradsEqual(g: Group): void {
  g.grads[0].forEach((gr, i) => {
    if (!gr) return assert.equal(g.grads[1][i], null);
    assert.deepEqual(g.be.download(gr.a), g.be.download(g.grads[1][i]!.a), `dA of linear ${i}`);
    assert.deepEqual(g.be.download(gr.b), g.be.download(g.grads[1][i]!.b), `dB of linear ${i}`);
  });
}

/** dx of the group against the loop's, within f32 rounding of the sums. */
function expectDxClose(got: Float32Array, want: Float32Array): void {
  assert.equal(got.length, want.length);
  let scale = 0, worst = 0;
  for (let i = 0; i < got.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
  }
  assert.ok(scale > 0, "dx is all zeros: the comparison would prove nothing");
  assert.ok(worst <= 1e-6 * scale, `dx differs from the loop's by ${worst} (scale ${scale})`);
}

const QKV: Spec[] = [{ out: 32, nf4: true, bias: true, r: 4 }, { out: 16, nf4: true, bias: true, r: 2 }, { out: 16, nf4: true, bias: true, r: 4 }];
const cases: { name: string; specs: Spec[] }[] = [
  { name: "q/k/v (GQA: k and v narrower), NF4 with bias, LoRA on all", specs: QKV },
  { name: "gate/up, dense bases, LoRA on both", specs: [{ out: 48, nf4: false, bias: false, r: 3 }, { out: 48, nf4: false, bias: false, r: 3 }] },
  { name: "q/k/v with LoRA on q and v only", specs: [{ ...QKV[0] }, { ...QKV[1], r: 0 }, { ...QKV[2] }] },
  { name: "q/k/v without LoRA", specs: QKV.map((s) => ({ ...s, r: 0 })) },
  { name: "q/k/v with a frozen adapter on k", specs: [QKV[0], { ...QKV[1], frozen: true }, QKV[2]] },
];

describe("grouped linears on cpu equal the loop of single linears", () => {
  cases.forEach(({ name, specs }, c) => {
    it(`forward, bit for bit: ${name}`, () => {
      const g = makeGroup(specs, 100 + c);
      const ys = g.be.linearGroup(g.x, g.bases, g.loras);
      assert.equal(ys.length, specs.length);
      ys.forEach((y, i) => {
        assert.deepEqual(y.shape, [T, specs[i].out]);
        assert.deepEqual(g.be.download(y), g.be.download(g.be.linear(g.x, g.bases[i], g.loras[i])), `y of linear ${i}`);
      });
    });
    for (const needDx of [true, false]) {
      it(`backward${needDx ? "" : " without dx"}: ${name}`, () => {
        const g = makeGroup(specs, 200 + c);
        const dx = g.be.linearGroupBackward(g.dys, g.x, g.bases, g.loras, g.grads[0], needDx);
        const want = loopBackward(g, needDx);
        if (!needDx) assert.equal(dx, null);
        else {
          assert.ok(dx && want);
          assert.deepEqual(dx.shape, [T, IN]);
          expectDxClose(g.be.download(dx), want);
        }
        expectGradsEqual(g);
      });
    }
  });

  it("accumulates the LoRA gradients over calls, as linearBackward does", () => {
    const g = makeGroup(QKV, 300);
    const first = g.grads[0].map((gr) => g.be.download(gr!.b));
    g.be.linearGroupBackward(g.dys, g.x, g.bases, g.loras, g.grads[0], false);
    const once = g.grads[0].map((gr) => g.be.download(gr!.b));
    g.be.linearGroupBackward(g.dys, g.x, g.bases, g.loras, g.grads[0], false);
    g.grads[0].forEach((gr, i) => {
      const twice = g.be.download(gr!.b);
      for (let j = 0; j < twice.length; j++) {
        const step = once[i][j] - first[i][j];
        assert.ok(Math.abs(twice[j] - first[i][j] - 2 * step) <= 1e-5 * (1 + Math.abs(twice[j])), `dB ${i}[${j}]`);
      }
    });
  });

  it("gives no dx and touches nothing when neither dx nor gradients are asked for", () => {
    const g = makeGroup(QKV.map((s) => ({ ...s, frozen: true })), 400);
    const before = g.be.memory().current.activations;
    assert.equal(g.be.linearGroupBackward(g.dys, g.x, g.bases, g.loras, g.grads[0], false), null);
    assert.equal(g.be.memory().current.activations, before);
  });

  it("refuses a group whose dy count differs from its bases", () => {
    const g = makeGroup(QKV, 500);
    assert.throws(() => g.be.linearGroupBackward(g.dys.slice(0, 2), g.x, g.bases, g.loras, g.grads[0], true), /one dy per base \(3\), found 2/);
  });
});
