// Element types of safetensors files and the conversions the engine needs between them.
// bf16 is the top half of an IEEE f32; f16 is IEEE binary16. Both narrowings round to nearest,
// ties to even, as torch's `.to(torch.bfloat16)` / `.half()` do, so files we write match torch's.

/** Every dtype the safetensors format defines (see safetensors' `Dtype` enum). */
export const TENSOR_DTYPES = [
  "BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2", "I16", "U16", "F16", "BF16",
  "I32", "U32", "F32", "I64", "U64", "F64",
] as const;
export type TensorDtype = (typeof TENSOR_DTYPES)[number];

const BYTES: Record<TensorDtype, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4, I64: 8, U64: 8, F64: 8,
};

export function isTensorDtype(s: unknown): s is TensorDtype {
  return typeof s === "string" && (TENSOR_DTYPES as readonly string[]).includes(s);
}

/** Bytes per element of a dtype. */
export function dtypeSize(dtype: TensorDtype): number {
  return BYTES[dtype];
}

/** Number of elements of a shape (1 for a scalar `[]`). */
export function shapeNumel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Byte views are only reinterpretable when aligned; copy the rare unaligned slice. */
function aligned(bytes: Uint8Array, align: number): Uint8Array {
  if (bytes.byteOffset % align === 0) return bytes;
  return bytes.slice();
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** One f32 to bf16 bits, round to nearest even; NaN stays a quiet NaN. */
export function f32ToBf16Bits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0]!;
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x0040) & 0xffff;
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** One bf16 bit pattern to its f32 value (exact). */
export function bf16BitsToF32(h: number): number {
  u32Scratch[0] = (h & 0xffff) << 16;
  return f32Scratch[0]!;
}

export function f32ToBf16(values: Float32Array): Uint16Array {
  const src = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < src.length; i++) {
    const bits = src[i]!;
    if ((bits & 0x7fffffff) > 0x7f800000) out[i] = ((bits >>> 16) | 0x0040) & 0xffff;
    else out[i] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

export function bf16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const o = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) o[i] = bits[i]! << 16;
  return out;
}

/** One f32 to IEEE half bits, round to nearest even, with subnormals and overflow to infinity. */
export function f32ToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  return sign | h;
}

/** One IEEE half bit pattern to its f32 value (exact). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function f32ToF16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]!);
  return out;
}

export function f16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = f16BitsToF32(bits[i]!);
  return out;
}

/** Raw little-endian bytes of a floating dtype to f32 values; integers convert exactly when they fit. */
export function bytesToF32(bytes: Uint8Array, dtype: TensorDtype): Float32Array {
  switch (dtype) {
    case "F32": {
      const a = aligned(bytes, 4);
      return new Float32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
    }
    case "BF16": {
      const a = aligned(bytes, 2);
      return bf16ToF32(new Uint16Array(a.buffer, a.byteOffset, a.byteLength / 2));
    }
    case "F16": {
      const a = aligned(bytes, 2);
      return f16ToF32(new Uint16Array(a.buffer, a.byteOffset, a.byteLength / 2));
    }
    case "F64": {
      const a = aligned(bytes, 8);
      return Float32Array.from(new Float64Array(a.buffer, a.byteOffset, a.byteLength / 8));
    }
    case "U8":
    case "BOOL":
      return Float32Array.from(bytes);
    case "I8":
      return Float32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    default:
      throw new Error(`tsloth: cannot convert ${dtype} to f32; expected BF16, F16, F32, F64, U8, I8 or BOOL`);
  }
}

/** f32 values to the raw little-endian bytes of a floating dtype (BF16, F16 or F32). */
export function f32ToBytes(values: Float32Array, dtype: TensorDtype): Uint8Array {
  switch (dtype) {
    case "F32":
      return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
    case "BF16": {
      const h = f32ToBf16(values);
      return new Uint8Array(h.buffer);
    }
    case "F16": {
      const h = f32ToF16(values);
      return new Uint8Array(h.buffer);
    }
    default:
      throw new Error(`tsloth: cannot store f32 values as ${dtype}; expected BF16, F16 or F32`);
  }
}
