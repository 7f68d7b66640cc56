// Token embedding lookup and its (scatter-add) gradient.
import type { Tensor } from "../types.js";
import { bf16BitsToF32, f16BitsToF32 } from "../../formats/dtype.js";
import { asCpu, f32Data, i32Data, readF32, type CpuAlloc } from "./tensor.js";

export function embedding(al: CpuAlloc, table: Tensor, ids: Tensor): Tensor {
  const [vocab, h] = table.shape;
  const idx = i32Data(ids);
  const y = al.out([idx.length, h]);
  const yd = f32Data(y);
  const src = asCpu(table);
  for (let t = 0; t < idx.length; t++) {
    const id = idx[t];
    if (id < 0 || id >= vocab) throw new Error(`tsloth: token id ${id} outside the vocabulary (size ${vocab})`);
    const o = id * h;
    if (src.dtype === "f32") yd.set((src.data as Float32Array).subarray(o, o + h), t * h);
    else {
      const bits = src.data as Uint16Array;
      const conv = src.dtype === "bf16" ? bf16BitsToF32 : f16BitsToF32;
      for (let j = 0; j < h; j++) yd[t * h + j] = conv(bits[o + j]);
    }
  }
  return y;
}

export function embeddingBackward(dy: Tensor, ids: Tensor, dTable: Tensor): void {
  const h = dTable.shape[1];
  const idx = i32Data(ids);
  const g = readF32(dy);
  const dt = f32Data(dTable);
  for (let t = 0; t < idx.length; t++) {
    const o = idx[t] * h;
    for (let j = 0; j < h; j++) dt[o + j] += g[t * h + j];
  }
}
