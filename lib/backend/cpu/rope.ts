// Rotary position embedding in Hugging Face's rotate-half layout: pairs (i, i + headDim/2).
import type { Tensor } from "../types.js";
import { f32Data, i32Data, readF32, type CpuAlloc } from "./tensor.js";

function rotate(al: CpuAlloc, x: Tensor, positions: Tensor, invFreq: Tensor, nHeads: number, headDim: number, sign: 1 | -1): Tensor {
  const xs = readF32(x);
  const pos = i32Data(positions);
  const inv = readF32(invFreq);
  const half = headDim / 2;
  const y = al.out(x.shape);
  const yd = f32Data(y);
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  const width = nHeads * headDim;
  for (let t = 0; t < pos.length; t++) {
    for (let i = 0; i < half; i++) {
      // HF forms the angle in f32 (inv_freq @ position_ids in float32) before cos/sin.
      const theta = Math.fround(pos[t] * inv[i]);
      cos[i] = Math.cos(theta);
      sin[i] = sign * Math.sin(theta);
    }
    for (let hd = 0; hd < nHeads; hd++) {
      const o = t * width + hd * headDim;
      for (let i = 0; i < half; i++) {
        const a = xs[o + i];
        const b = xs[o + i + half];
        yd[o + i] = a * cos[i] - b * sin[i];
        yd[o + i + half] = b * cos[i] + a * sin[i];
      }
    }
  }
  return y;
}

export function rope(al: CpuAlloc, x: Tensor, positions: Tensor, invFreq: Tensor, nHeads: number, headDim: number): Tensor {
  return rotate(al, x, positions, invFreq, nHeads, headDim, 1);
}

export function ropeBackward(al: CpuAlloc, dy: Tensor, positions: Tensor, invFreq: Tensor, nHeads: number, headDim: number): Tensor {
  return rotate(al, dy, positions, invFreq, nHeads, headDim, -1);
}
