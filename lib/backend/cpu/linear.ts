// A frozen linear layer (NF4 or dense base, optional bias) plus an optional LoRA adapter:
//   y = x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ;  backward gives dx, dA, dB (Hu et al. 2021).
import type { FrozenLinear, LoraAdapter, LoraGrads, Tensor } from "../types.js";
import { matmulNN, matmulNT, matmulTN } from "./matmul.js";
import { f32Data, readF32, type CpuAlloc } from "./tensor.js";

/** Supplies the base weight as f32 [out, in]; the backend decides whether to cache it. */
export type DenseWeightSource = (base: FrozenLinear) => Float32Array;

export function linear(al: CpuAlloc, weightOf: DenseWeightSource, x: Tensor, base: FrozenLinear, lora: LoraAdapter | null): Tensor {
  const inF = base.weight.inFeatures, outF = base.weight.outFeatures;
  if (x.shape[x.shape.length - 1] !== inF) throw new Error(`tsloth: linear expects ${inF} input features, found ${x.shape[x.shape.length - 1]}`);
  const xs = readF32(x);
  const t = xs.length / inF;
  const y = al.out([t, outF]);
  const yd = f32Data(y);
  matmulNT(xs, weightOf(base), yd, t, outF, inF);
  if (base.bias) {
    const bias = readF32(base.bias);
    for (let r = 0; r < t; r++) for (let j = 0; j < outF; j++) yd[r * outF + j] += bias[j];
  }
  if (lora) {
    const r = lora.a.shape[0];
    const xa = new Float32Array(t * r);
    matmulNT(xs, readF32(lora.a), xa, t, r, inF);
    matmulNT(xa, readF32(lora.b), yd, t, outF, r, lora.scale, true);
  }
  return y;
}

export function linearBackward(
  al: CpuAlloc, weightOf: DenseWeightSource, dy: Tensor, x: Tensor, base: FrozenLinear,
  lora: LoraAdapter | null, grads: LoraGrads | null, needDx: boolean,
): Tensor | null {
  const inF = base.weight.inFeatures, outF = base.weight.outFeatures;
  const xs = readF32(x);
  const g = readF32(dy);
  const t = xs.length / inF;
  const dx = needDx ? al.out([t, inF]) : null;
  if (dx) matmulNN(g, weightOf(base), f32Data(dx), t, inF, outF);
  if (lora) {
    const r = lora.a.shape[0];
    const a = readF32(lora.a), b = readF32(lora.b);
    const dyb = new Float32Array(t * r);
    matmulNN(g, b, dyb, t, r, outF);
    if (grads) {
      const xa = new Float32Array(t * r);
      matmulNT(xs, a, xa, t, r, inF);
      matmulTN(g, xa, f32Data(grads.b), outF, r, t, lora.scale, true);
      matmulTN(dyb, xs, f32Data(grads.a), r, inF, t, lora.scale, true);
    }
    if (dx) matmulNN(dyb, a, f32Data(dx), t, inF, r, lora.scale, true);
  }
  return dx;
}

/**
 * Backend.linearGroupBackward's spec: the loop of linearBackward over the group, the dx of each
 * projection added into the first one's in f32 (the CPU dx is f32, so no rounding beyond the sums).
 */
export function linearGroupBackward(
  al: CpuAlloc, weightOf: DenseWeightSource, dys: readonly Tensor[], x: Tensor, bases: readonly FrozenLinear[],
  loras: readonly (LoraAdapter | null)[], grads: readonly (LoraGrads | null)[], needDx: boolean,
): Tensor | null {
  if (dys.length !== bases.length) throw new Error(`tsloth: linearGroupBackward expects one dy per base (${bases.length}), found ${dys.length}`);
  let dx: Tensor | null = null;
  bases.forEach((base, i) => {
    const d = linearBackward(al, weightOf, dys[i], x, base, loras[i] ?? null, grads[i] ?? null, needDx);
    if (!d) return;
    if (!dx) { dx = d; return; }
    const sum = f32Data(dx), di = f32Data(d);
    for (let j = 0; j < sum.length; j++) sum[j] += di[j];
    al.free(d);
  });
  return dx;
}
