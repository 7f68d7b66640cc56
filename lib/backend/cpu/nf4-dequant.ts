// NF4 dequantization on the CPU: the twin of kernels-cuda's dequant kernel, bit-compatible with
// bitsandbytes' dequantize_4bit (QLoRA, Dettmers et al. 2023) including double-quantized absmax.
import type { Nf4Weight } from "../types.js";
import { asCpu, readF32 } from "./tensor.js";

/** bitsandbytes' NF4 code book (functional.py get_4bit_type("nf4")), as stored in f32. */
export const NF4_CODE = new Float32Array([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
  0.7229568362236023, 1.0,
]);

/** The per-block absmax as f32, resolving double quantization. */
export function nf4Absmax(w: Nf4Weight): Float32Array {
  if (!w.nested) return readF32(w.absmax);
  const q = asCpu(w.absmax).data as Uint8Array;
  const code = readF32(w.nested.code);
  const nestedAbsmax = readF32(w.nested.absmax);
  const nb = w.nested.blocksize;
  const out = new Float32Array(q.length);
  for (let j = 0; j < q.length; j++) out[j] = Math.fround(code[q[j]] * nestedAbsmax[Math.floor(j / nb)]) + w.nested.offset;
  return out;
}

/** Dequantize into `out` (length out*in), row-major [outFeatures, inFeatures]. */
export function nf4DequantizeInto(w: Nf4Weight, out: Float32Array): Float32Array {
  const packed = asCpu(w.packed).data as Uint8Array;
  const absmax = nf4Absmax(w);
  const n = w.outFeatures * w.inFeatures;
  const bs = w.blocksize;
  for (let i = 0; i < n; i += 2) {
    const byte = packed[i >> 1];
    const scale = absmax[Math.floor(i / bs)];
    out[i] = Math.fround(NF4_CODE[byte >> 4] * scale);
    if (i + 1 < n) out[i + 1] = Math.fround(NF4_CODE[byte & 15] * absmax[Math.floor((i + 1) / bs)]);
  }
  return out;
}
