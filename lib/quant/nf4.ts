// NF4 ("4-bit NormalFloat", QLoRA: Dettmers et al. 2023) quantization, bit-exact with bitsandbytes'
// layout: blocks of 64 values scaled by their absolute maximum, each value the index of the nearest
// of 16 code points, two indices per byte with the even element in the high nibble. Double
// quantization stores the per-block absmax as 8-bit codes of (absmax - mean) in blocks of 256.
// Arithmetic is float32 throughout (Math.fround), as in bitsandbytes' kernels.
import { DYNAMIC_MAP_SIGNED } from "./dynamic-map.js";

const f = Math.fround;

/** bitsandbytes' NF4 code (backends/utils.py _NF4_QUANT_TABLE), float32. */
export const NF4_CODE: Float32Array = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
  -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/** QLoRA's block size for the 4-bit weights and for the double-quantized absmax. */
export const NF4_BLOCKSIZE = 64;
export const NF4_NESTED_BLOCKSIZE = 256;
export const NF4_BLOCKSIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096] as const;

export type Nf4Dtype = "bfloat16" | "float16" | "float32";

export interface Nf4Nested {
  /** 8-bit codes of (absmax - offset), one per 4-bit block. */
  quantizedAbsmax: Uint8Array;
  /** Scale of each nested block of `nestedBlocksize` codes. */
  nestedAbsmax: Float32Array;
  /** The 8-bit code the absmax was quantized with (bitsandbytes' dynamic map). */
  nestedQuantMap: Float32Array;
  nestedBlocksize: number;
  /** Mean of the original absmax values, added back after dequantization. */
  offset: number;
}

export interface Nf4Tensor {
  shape: number[];
  /** ceil(numel / 2) bytes, the even-index element in the high nibble. */
  packed: Uint8Array;
  blocksize: number;
  /** Per block, the scale used to dequantize (after double quantization, the dequantized absmax). */
  absmax: Float32Array;
  nested?: Nf4Nested;
  quantMap: Float32Array;
  /** Dtype of the original weight; dequantization produces it. */
  dtype: Nf4Dtype;
}

export interface Nf4QuantizeOptions {
  blocksize?: number;
  /** Quantize absmax again (8-bit, blocks of 256), as QLoRA does: 0.127 fewer bits per parameter. */
  doubleQuant?: boolean;
  dtype?: Nf4Dtype;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Midpoints between neighbouring codes; torch.bucketize(right=False) sends ties to the lower code. */
const NF4_BOUNDS = Float32Array.from({ length: 15 }, (_, i) => f(f(NF4_CODE[i]! + NF4_CODE[i + 1]!) / 2));

/** The number of midpoints below `scaled` (four comparisons: a binary search over 15 bounds). */
function nf4Index(scaled: number): number {
  let lo = 0;
  let hi = 15;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (NF4_BOUNDS[mid]! < scaled) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Mirrors bitsandbytes' quantize_4bit: scale by float32 1/absmax (absmax clamped at 1e-38 so an
 * all-zero block quantizes to zeros), clamp to [-1, 1], nearest code by midpoint bucketing.
 */
export function nf4Quantize(values: Float32Array, shape: number[], opts: Nf4QuantizeOptions = {}): Nf4Tensor {
  const blocksize = opts.blocksize ?? NF4_BLOCKSIZE;
  if (!(NF4_BLOCKSIZES as readonly number[]).includes(blocksize))
    throw new Error(`tsloth: NF4 blocksize must be one of ${NF4_BLOCKSIZES.join(", ")}, found ${blocksize}`);
  const n = numel(shape);
  if (n !== values.length) throw new Error(`tsloth: shape ${JSON.stringify(shape)} holds ${n} values but ${values.length} were given`);
  const blocks = Math.ceil(n / blocksize);
  const absmax = new Float32Array(blocks);
  const packed = new Uint8Array(Math.ceil(n / 2));
  const tiny = f(1e-38);
  for (let b = 0; b < blocks; b++) {
    const start = b * blocksize;
    const end = Math.min(n, start + blocksize);
    let m = 0;
    for (let i = start; i < end; i++) m = Math.max(m, Math.abs(values[i]!));
    absmax[b] = m;
    const recip = f(1 / Math.max(m, tiny));
    for (let i = start; i < end; i++) {
      const scaled = Math.min(1, Math.max(-1, f(values[i]! * recip)));
      const q = nf4Index(scaled);
      packed[i >> 1] |= i & 1 ? q : q << 4;
    }
  }
  // An odd count pads with 0.0, whose code index is 7, in the last low nibble (as bitsandbytes pads).
  if (n & 1) packed[n >> 1] |= nf4Index(0);
  const t: Nf4Tensor = { shape: [...shape], packed, blocksize, absmax, quantMap: NF4_CODE.slice(), dtype: opts.dtype ?? "float32" };
  if (opts.doubleQuant ?? true) {
    t.nested = doubleQuantizeAbsmax(absmax);
    t.absmax = dequantizeNestedAbsmax(t.nested);
  }
  return t;
}

/** The float32 mean, from a double-precision sum (torch's float32 sum order varies with SIMD width). */
function meanF32(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return f(s / a.length);
}

/**
 * The 65536-entry table bitsandbytes' CPU kernel (csrc/cpu_ops.cpp build_quantize_lut) quantizes
 * 8-bit values through: [-1, 1] cut into 65535 steps, each mapped to the code whose midpoints
 * bracket it. Being a table lookup rather than an exact nearest search, it rounds a value lying
 * within 1/65535 of a midpoint to either side; reproducing the table is what makes us bit-exact.
 */
const LUT_SIZE = 65536;
const lutCache = new WeakMap<Float32Array, Uint8Array>();

function quantizeLut(code: Float32Array): Uint8Array {
  const cached = lutCache.get(code);
  if (cached) return cached;
  const mids = new Float32Array(code.length - 1);
  for (let i = 0; i < mids.length; i++) mids[i] = f(0.5 * f(code[i]! + code[i + 1]!));
  const lut = new Uint8Array(LUT_SIZE);
  let idx = 0;
  for (let i = 0; i < LUT_SIZE; i++) {
    const val = f(-1 + f(f(2 * i) / (LUT_SIZE - 1)));
    while (idx < mids.length && mids[idx]! < val) idx++;
    lut[i] = idx;
  }
  lutCache.set(code, lut);
  return lut;
}

/** The table index of a normalized value: ((v + 1) * 0.5) * 65535 + 0.5, truncated, in float32. */
function lutIndex(v: number): number {
  const t = f(f(Math.min(1, Math.max(-1, v)) + 1) * 0.5);
  return Math.trunc(f(f(t * (LUT_SIZE - 1)) + 0.5));
}

/**
 * bitsandbytes' blockwise 8-bit quantization (quantize_blockwise on CPU) of absmax - offset: per
 * block of 256, scale by float32 1/max|x| and look the code up in the table above; an all-zero
 * block codes as 0. `offset` and `map` default to the mean and the dynamic map; they are
 * parameters so a checkpoint's own values can be reproduced exactly.
 */
export function doubleQuantizeAbsmax(
  absmax: Float32Array,
  opts: { offset?: number; map?: Float32Array; blocksize?: number } = {},
): Nf4Nested {
  const offset = f(opts.offset ?? meanF32(absmax));
  const map = opts.map ?? DYNAMIC_MAP_SIGNED;
  const blocksize = opts.blocksize ?? NF4_NESTED_BLOCKSIZE;
  const lut = quantizeLut(map);
  const n = absmax.length;
  const nested = Math.ceil(n / blocksize);
  const nestedAbsmax = new Float32Array(nested);
  const quantizedAbsmax = new Uint8Array(n);
  const centred = new Float32Array(n);
  for (let i = 0; i < n; i++) centred[i] = f(absmax[i]! - offset);
  for (let b = 0; b < nested; b++) {
    const start = b * blocksize;
    const end = Math.min(n, start + blocksize);
    let m = 0;
    for (let i = start; i < end; i++) m = Math.max(m, Math.abs(centred[i]!));
    nestedAbsmax[b] = m;
    if (m === 0) continue;
    const inv = f(1 / m);
    for (let i = start; i < end; i++) quantizedAbsmax[i] = lut[lutIndex(f(centred[i]! * inv))]!;
  }
  return { quantizedAbsmax, nestedAbsmax, nestedQuantMap: map.slice(), nestedBlocksize: blocksize, offset };
}

/** What bitsandbytes' dequantize_4bit scales with: code[q] * nestedAbsmax + offset, in float32. */
export function dequantizeNestedAbsmax(nested: Nf4Nested): Float32Array {
  const { quantizedAbsmax: q, nestedAbsmax, nestedQuantMap: map, nestedBlocksize: bs } = nested;
  const out = new Float32Array(q.length);
  const offset = f(nested.offset);
  for (let i = 0; i < q.length; i++) out[i] = f(f(map[q[i]!]! * nestedAbsmax[Math.floor(i / bs)]!) + offset);
  return out;
}

/** float32 values code[q] * absmax[block], as bitsandbytes' dequantize_4bit with dtype float32. */
export function nf4Dequantize(t: Nf4Tensor, out?: Float32Array): Float32Array {
  const n = numel(t.shape);
  const result = out ?? new Float32Array(n);
  if (result.length < n) throw new Error(`tsloth: output holds ${result.length} values, NF4 tensor needs ${n}`);
  const code = t.quantMap;
  const bs = t.blocksize;
  for (let b = 0, i = 0; i < n; b++) {
    const scale = t.absmax[b]!;
    const end = Math.min(n, i + bs);
    for (; i < end; i++) {
      const byte = t.packed[i >> 1]!;
      result[i] = f(code[i & 1 ? byte & 15 : byte >> 4]! * scale);
    }
  }
  return result;
}

/** Bytes the quantized weight occupies (packed + absmax form stored), for memory accounting. */
export function nf4StorageBytes(t: Nf4Tensor): number {
  if (!t.nested) return t.packed.byteLength + t.absmax.byteLength + t.quantMap.byteLength;
  const n = t.nested;
  return t.packed.byteLength + n.quantizedAbsmax.byteLength + n.nestedAbsmax.byteLength + n.nestedQuantMap.byteLength + t.quantMap.byteLength;
}
