// The CPU backend's buffer: a typed array plus the metadata the Backend interface exposes.
import { bf16BitsToF32, f16BitsToF32 } from "../../formats/dtype.js";
import { StoredTensor } from "../stored-tensor.js";
import type { DType, HostArray, MemoryCategory, Tensor } from "../types.js";

export class CpuTensor extends StoredTensor<CpuTensor> {
  constructor(shape: readonly number[], dtype: DType, category: MemoryCategory, readonly data: HostArray, base: CpuTensor | null = null) {
    super(shape, dtype, category, base);
  }
}

export function allocHostArray(dtype: DType, n: number): HostArray {
  switch (dtype) {
    case "f32":
      return new Float32Array(n);
    case "bf16":
    case "f16":
      return new Uint16Array(n);
    case "u8":
      return new Uint8Array(n);
    case "i32":
      return new Int32Array(n);
  }
}

export function asCpu(t: Tensor): CpuTensor {
  if (!(t instanceof CpuTensor)) throw new Error("tsloth: a tensor from another backend was passed to the CPU backend");
  if (t.freed) throw new Error("tsloth: use of a freed tensor");
  return t;
}

/** The tensor's values as f32 (a copy for bf16/f16; the storage itself for f32). */
export function readF32(t: Tensor): Float32Array {
  const c = asCpu(t);
  if (c.dtype === "f32") return c.data as Float32Array;
  const src = c.data as Uint16Array;
  const out = new Float32Array(src.length);
  if (c.dtype === "bf16") for (let i = 0; i < src.length; i++) out[i] = bf16BitsToF32(src[i]);
  else if (c.dtype === "f16") for (let i = 0; i < src.length; i++) out[i] = f16BitsToF32(src[i]);
  else throw new Error(`tsloth: expected a float tensor, found ${c.dtype}`);
  return out;
}

/** Writable f32 storage (ops on the CPU backend write f32 outputs). */
export function f32Data(t: Tensor): Float32Array {
  const c = asCpu(t);
  if (c.dtype !== "f32") throw new Error(`tsloth: expected an f32 tensor, found ${c.dtype}`);
  return c.data as Float32Array;
}

export function i32Data(t: Tensor): Int32Array {
  const c = asCpu(t);
  if (c.dtype !== "i32") throw new Error(`tsloth: expected an i32 tensor, found ${c.dtype}`);
  return c.data as Int32Array;
}

/** How op implementations get output buffers (accounted by the backend as activations). */
export interface CpuAlloc {
  out(shape: readonly number[], dtype?: DType): CpuTensor;
  /** Scratch f32 storage an op needs while it runs, accounted as workspace; pass it to `free`. */
  scratch(n: number): CpuTensor;
  free(t: Tensor): void;
}
