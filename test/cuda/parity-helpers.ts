// Shared by the CUDA-vs-CPU parity tests: both backends, fresh random inputs uploaded to each, and
// a relative-error comparison with bf16 tolerances (the CUDA backend computes on bf16 activations).
import assert from "node:assert/strict";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { CudaBackend, cudaAvailable } from "../../lib/backend/cuda/index.js";
import type { Tensor } from "../../lib/backend/types.js";
import { Rng, randomNormalArray } from "../../lib/model/random.js";

/** Skip reason for the whole file, or false when a GPU and the library are here. */
export const skipWithoutGpu: string | false = cudaAvailable().ok ? false : `CUDA backend unavailable: ${cudaAvailable().reason}`;

/** bf16 keeps 8 bits of mantissa; a few roundings on the way land under 1e-2 of the norm. */
export const BF16_TOL = 2e-2;

export interface Pair {
  cpu: CpuBackend;
  gpu: CudaBackend;
  rng: Rng;
  seed: number;
}

export function pair(): Pair {
  const seed = (Date.now() ^ (process.pid << 8)) >>> 0;
  return { cpu: new CpuBackend(), gpu: new CudaBackend(), rng: new Rng(seed), seed };
}

export function randn(p: Pair, n: number, std = 1): Float32Array {
  return randomNormalArray(p.rng, n, std);
}

/** The same f32 data uploaded to both backends. */
export function both(p: Pair, data: Float32Array, shape: number[]): [Tensor, Tensor] {
  return [p.cpu.upload(data, shape, "f32", "activations"), p.gpu.upload(data, shape, "f32", "activations")];
}

export function bothI32(p: Pair, data: Int32Array): [Tensor, Tensor] {
  return [p.cpu.upload(data, [data.length], "i32", "activations"), p.gpu.upload(data, [data.length], "i32", "activations")];
}

export function relErr(out: Float32Array, ref: Float32Array): number {
  assert.equal(out.length, ref.length, "length");
  let num = 0, den = 0;
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) return Infinity;
    num += (out[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  assert.ok(den > 0, "reference is all zeros: the comparison would prove nothing");
  return Math.sqrt(num / den);
}

/** Downloads the CUDA and CPU results and compares them. */
export function expectClose(p: Pair, name: string, gpu: Tensor, cpu: Tensor, tol = BF16_TOL): void {
  const a = p.gpu.download(gpu), b = p.cpu.download(cpu);
  const err = relErr(a, b);
  assert.ok(err <= tol, `${name}: relative error ${err.toExponential(2)} > ${tol} (seed ${p.seed})`);
}

/** Compares what an op added to a tensor on each backend (both started at `start`). */
export function expectDeltaClose(p: Pair, name: string, gpu: Tensor, cpu: Tensor, start: Float32Array, tol = BF16_TOL): void {
  const a = p.gpu.download(gpu).map((x, i) => x - start[i]);
  const b = p.cpu.download(cpu).map((x, i) => x - start[i]);
  const err = relErr(a, b);
  assert.ok(err <= tol, `${name}: relative error ${err.toExponential(2)} > ${tol} (seed ${p.seed})`);
}
