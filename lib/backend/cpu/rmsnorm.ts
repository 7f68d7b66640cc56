// RMSNorm forward/backward (Zhang & Sennrich 2019) over the last dimension; weights frozen.
import type { Tensor } from "../types.js";
import { f32Data, readF32, type CpuAlloc } from "./tensor.js";

export function rmsnorm(al: CpuAlloc, x: Tensor, w: Tensor, eps: number): { y: Tensor; rstd: Tensor } {
  const h = w.shape[0];
  const xs = readF32(x);
  const ws = readF32(w);
  const rows = xs.length / h;
  const y = al.out(x.shape);
  const rstd = al.out([rows]);
  const yd = f32Data(y);
  const rd = f32Data(rstd);
  for (let r = 0; r < rows; r++) {
    const o = r * h;
    let ss = 0;
    for (let j = 0; j < h; j++) ss += xs[o + j] * xs[o + j];
    const rs = 1 / Math.sqrt(ss / h + eps);
    rd[r] = rs;
    for (let j = 0; j < h; j++) yd[o + j] = xs[o + j] * rs * ws[j];
  }
  return { y, rstd };
}

export function rmsnormBackward(al: CpuAlloc, dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor): Tensor {
  const h = w.shape[0];
  const xs = readF32(x);
  const ws = readF32(w);
  const g = readF32(dy);
  const rd = readF32(rstd);
  const rows = xs.length / h;
  const dx = al.out(x.shape);
  const dd = f32Data(dx);
  for (let r = 0; r < rows; r++) {
    const o = r * h;
    const rs = rd[r];
    let dot = 0;
    for (let j = 0; j < h; j++) dot += g[o + j] * ws[j] * xs[o + j] * rs;
    const mean = dot / h;
    for (let j = 0; j < h; j++) dd[o + j] = rs * (g[o + j] * ws[j] - xs[o + j] * rs * mean);
  }
  return dx;
}
