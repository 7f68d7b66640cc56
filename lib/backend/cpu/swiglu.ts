// SwiGLU (Shazeer 2020): h = silu(gate) * up, the Llama MLP's gating.
import type { Tensor } from "../types.js";
import { f32Data, readF32, type CpuAlloc } from "./tensor.js";

export function swiglu(al: CpuAlloc, gate: Tensor, up: Tensor): Tensor {
  const g = readF32(gate);
  const u = readF32(up);
  const h = al.out(gate.shape);
  const hd = f32Data(h);
  for (let i = 0; i < g.length; i++) hd[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
  return h;
}

export function swigluBackward(al: CpuAlloc, dh: Tensor, gate: Tensor, up: Tensor): { dGate: Tensor; dUp: Tensor } {
  const g = readF32(gate);
  const u = readF32(up);
  const d = readF32(dh);
  const dGate = al.out(gate.shape);
  const dUp = al.out(up.shape);
  const dg = f32Data(dGate);
  const du = f32Data(dUp);
  for (let i = 0; i < g.length; i++) {
    const sig = 1 / (1 + Math.exp(-g[i]));
    du[i] = d[i] * g[i] * sig;
    dg[i] = d[i] * u[i] * sig * (1 + g[i] * (1 - sig));
  }
  return { dGate, dUp };
}
