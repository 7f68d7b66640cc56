// The small elementwise ops the graph needs: residual adds, scaling, zeroing, norms for clipping.
import type { Tensor } from "../types.js";
import { asCpu, f32Data, readF32, type CpuAlloc } from "./tensor.js";

export function add(al: CpuAlloc, a: Tensor, b: Tensor): Tensor {
  const x = readF32(a), y = readF32(b);
  if (x.length !== y.length) throw new Error(`tsloth: add of ${x.length} and ${y.length} elements`);
  const out = al.out(a.shape);
  const o = f32Data(out);
  for (let i = 0; i < x.length; i++) o[i] = x[i] + y[i];
  return out;
}

export function addInPlace(dst: Tensor, src: Tensor, alpha = 1): void {
  const d = f32Data(dst), s = readF32(src);
  if (d.length !== s.length) throw new Error(`tsloth: addInPlace of ${s.length} into ${d.length} elements`);
  for (let i = 0; i < d.length; i++) d[i] += alpha * s[i];
}

export function scaleInPlace(t: Tensor, s: number): void {
  const d = f32Data(t);
  for (let i = 0; i < d.length; i++) d[i] *= s;
}

export function zeroInPlace(t: Tensor): void {
  asCpu(t).data.fill(0);
}

export function copyInto(dst: Tensor, src: Tensor): void {
  const d = asCpu(dst), s = asCpu(src);
  if (d.dtype !== s.dtype || d.data.length !== s.data.length) throw new Error("tsloth: copyInto needs the same dtype and element count");
  (d.data as Float32Array).set(s.data as Float32Array);
}

export function sumOfSquares(ts: readonly Tensor[]): number {
  let s = 0;
  for (const t of ts) {
    const d = readF32(t);
    for (let i = 0; i < d.length; i++) s += d[i] * d[i];
  }
  return s;
}
