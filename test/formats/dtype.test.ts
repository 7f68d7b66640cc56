import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  bf16BitsToF32, bf16ToF32, bytesToF32, f16BitsToF32, f16ToF32, f32ToBf16, f32ToBf16Bits, f32ToBytes, f32ToF16, f32ToF16Bits,
} from "../../lib/formats/dtype.js";

function bitsOf(x: number): number {
  return new Uint32Array(Float32Array.of(x).buffer)[0]!;
}
function fromBits(b: number): number {
  return new Float32Array(Uint32Array.of(b).buffer)[0]!;
}

describe("bf16", () => {
  it("rounds to nearest, ties to even (hand-computed patterns)", () => {
    assert.equal(f32ToBf16Bits(1), 0x3f80);
    assert.equal(f32ToBf16Bits(-2), 0xc000);
    // 1 + 2^-8 lies halfway between 1 (even mantissa) and 1 + 2^-7: ties go to even.
    assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80);
    // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
    assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
    // Just above halfway rounds up.
    assert.equal(f32ToBf16Bits(fromBits(0x3f808001)), 0x3f81);
    assert.equal(f32ToBf16Bits(Infinity), 0x7f80);
    assert.equal(f32ToBf16Bits(fromBits(0x7f7fffff)), 0x7f80); // f32 max rounds to infinity, as torch does
    assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN))));
    assert.equal(bf16BitsToF32(0x4049), 3.140625);
  });
  it("round-trips every bf16 bit pattern exactly", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = f32ToBf16(bf16ToF32(all));
    for (let i = 0; i < 65536; i++) {
      const isNan = (i & 0x7f80) === 0x7f80 && (i & 0x7f) !== 0;
      if (!isNan) assert.equal(back[i], i, `pattern ${i.toString(16)}`);
    }
  });
  it("matches truncation error bounds on fresh random values", () => {
    const v = Float32Array.from({ length: 4096 }, () => (Math.random() - 0.5) * 1e3);
    const r = bf16ToF32(f32ToBf16(v));
    for (let i = 0; i < v.length; i++) assert.ok(Math.abs(r[i]! - v[i]!) <= Math.abs(v[i]!) * 2 ** -8, `${v[i]} -> ${r[i]}`);
  });
});

describe("f16", () => {
  it("converts hand-computed values, subnormals and overflow", () => {
    assert.equal(f32ToF16Bits(1), 0x3c00);
    assert.equal(f32ToF16Bits(65504), 0x7bff);
    assert.equal(f32ToF16Bits(65520), 0x7c00); // halfway to 2^16 rounds to infinity
    assert.equal(f32ToF16Bits(2 ** -24), 0x0001); // smallest subnormal
    assert.equal(f32ToF16Bits(2 ** -25), 0x0000); // tie between 0 and 2^-24 goes to even (0)
    assert.equal(f32ToF16Bits(3 * 2 ** -25), 0x0002); // tie between 1 and 2 ulps goes to even
    assert.equal(f32ToF16Bits(-0), 0x8000);
    assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie to even
    assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
    assert.equal(f16BitsToF32(0x3555), 0.333251953125);
    assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
  });
  it("round-trips every finite f16 bit pattern exactly", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = f32ToF16(f16ToF32(all));
    for (let i = 0; i < 65536; i++) if ((i & 0x7c00) !== 0x7c00 || (i & 0x3ff) === 0) assert.equal(back[i], i, `pattern ${i.toString(16)}`);
  });
});

describe("byte conversions", () => {
  it("reads F32/BF16/F16 bytes, including unaligned slices", () => {
    const v = Float32Array.from({ length: 33 }, () => Math.random() * 8 - 4);
    for (const dtype of ["F32", "BF16", "F16"] as const) {
      const bytes = f32ToBytes(v, dtype);
      const shifted = new Uint8Array(bytes.length + 1);
      shifted.set(bytes, 1);
      const a = bytesToF32(bytes, dtype);
      const b = bytesToF32(shifted.subarray(1), dtype);
      assert.deepEqual(a, b);
      const tol = dtype === "F32" ? 0 : dtype === "BF16" ? 2 ** -8 : 2 ** -11;
      for (let i = 0; i < v.length; i++) assert.ok(Math.abs(a[i]! - v[i]!) <= Math.abs(v[i]!) * tol);
    }
    assert.equal(bitsOf(bytesToF32(f32ToBytes(Float32Array.of(0.1), "F32"), "F32")[0]!), bitsOf(0.1));
  });
  it("refuses to store f32 values as an integer dtype", () => {
    assert.throws(() => f32ToBytes(Float32Array.of(1), "I32"), /cannot store f32 values as I32/);
  });
});
