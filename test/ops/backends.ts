// The backends every op test runs on. Today the CPU reference; the CUDA backend joins this list
// when it loads, so the same checks run against it.
import type { Backend } from "../../lib/backend/types.js";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { Rng, randomNormalArray } from "../../lib/model/random.js";

export interface NamedBackend {
  name: string;
  make(): Backend;
}

export function backends(): NamedBackend[] {
  return [{ name: "cpu", make: () => new CpuBackend() }];
}

export function randn(seed: number, n: number, std = 1): Float32Array {
  return randomNormalArray(new Rng(seed), n, std);
}

/** Σ y·r in f64: a scalar whose gradient with respect to y is r. */
export function project(y: Float32Array, r: Float32Array): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i] * r[i];
  return s;
}

/**
 * Central differences of `loss` with respect to some coordinates of `x` (perturbed in place, then
 * restored) compared with `analytic`. The tolerance is relative to the gradient's scale because
 * storage is f32.
 */
export function checkGradient(
  name: string,
  x: Float32Array,
  analytic: Float32Array,
  loss: () => number,
  opts: { eps?: number; tol?: number; samples?: number; seed?: number } = {},
): void {
  const eps = opts.eps ?? 1e-2;
  const tol = opts.tol ?? 2e-2;
  const rng = new Rng(opts.seed ?? 7);
  let scale = 0;
  for (const g of analytic) scale = Math.max(scale, Math.abs(g));
  if (scale === 0) throw new Error(`${name}: analytic gradient is all zeros; the check would prove nothing`);
  const n = Math.min(opts.samples ?? 24, x.length);
  for (let s = 0; s < n; s++) {
    const i = n === x.length ? s : rng.int(x.length);
    const orig = x[i];
    x[i] = orig + eps;
    const up = loss();
    x[i] = orig - eps;
    const down = loss();
    x[i] = orig;
    const numeric = (up - down) / (2 * eps);
    const err = Math.abs(numeric - analytic[i]);
    if (err > tol * scale) {
      throw new Error(`${name}[${i}]: finite difference ${numeric} vs analytic ${analytic[i]} (gradient scale ${scale})`);
    }
  }
}
