import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DYNAMIC_MAP_SIGNED } from "../../lib/quant/dynamic-map.js";
import { dequantizeNestedAbsmax, doubleQuantizeAbsmax, NF4_CODE, nf4Dequantize, nf4Quantize } from "../../lib/quant/nf4.js";

const f = Math.fround;

function gaussian(n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - Math.random();
    const v = Math.random();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

function nibbles(packed: Uint8Array, n: number): number[] {
  return Array.from({ length: n }, (_, i) => (i & 1 ? packed[i >> 1]! & 15 : packed[i >> 1]! >> 4));
}

describe("NF4 code and layout", () => {
  it("holds the 16 NormalFloat values of QLoRA, ascending from -1 to 1 with an exact zero", () => {
    assert.equal(NF4_CODE.length, 16);
    assert.equal(NF4_CODE[0], -1);
    assert.equal(NF4_CODE[7], 0);
    assert.equal(NF4_CODE[15], 1);
    assert.equal(NF4_CODE[8], f(0.07958029955625534));
    for (let i = 1; i < 16; i++) assert.ok(NF4_CODE[i]! > NF4_CODE[i - 1]!);
  });

  it("puts the even element in the high nibble", () => {
    const t = nf4Quantize(Float32Array.of(1, -1), [2], { doubleQuant: false });
    assert.deepEqual(Array.from(t.packed), [0xf0]);
    const u = nf4Quantize(Float32Array.of(-0.5, 0.25), [2], { doubleQuant: false });
    // absmax 0.5: -1 -> code 0; 0.5 -> nearest code 0.4407 (index 12)
    assert.deepEqual(Array.from(u.packed), [0x0c]);
  });

  it("maps a block of exact code points (scaled by its absmax) to their indices", () => {
    const scale = 2.5;
    const values = Float32Array.from({ length: 64 }, (_, i) => f(NF4_CODE[(i * 7) % 16]! * scale));
    values[3] = scale; // make sure the block's absmax is exactly `scale`
    const t = nf4Quantize(values, [64], { doubleQuant: false });
    assert.deepEqual(Array.from(t.absmax), [scale]);
    const expect = Array.from({ length: 64 }, (_, i) => (i === 3 ? 15 : (i * 7) % 16));
    assert.deepEqual(nibbles(t.packed, 64), expect);
    assert.deepEqual(nf4Dequantize(t), Float32Array.from(expect, (q) => f(NF4_CODE[q]! * scale)));
  });

  it("sends a value exactly halfway between two codes to the lower one (torch.bucketize)", () => {
    const mid = f(f(NF4_CODE[7]! + NF4_CODE[8]!) / 2);
    const t = nf4Quantize(Float32Array.of(1, mid, f(mid + 1e-6), -1), [4], { doubleQuant: false });
    assert.deepEqual(nibbles(t.packed, 4), [15, 7, 8, 0]);
  });

  it("gives each block of 64 its own absmax, pads an odd count with the zero code, and keeps zero blocks at zero", () => {
    const values = new Float32Array(129);
    values[5] = -3;
    values[64 + 9] = 0.5;
    values[128] = 0.25;
    const t = nf4Quantize(values, [129], { doubleQuant: false });
    assert.deepEqual(Array.from(t.absmax), [3, 0.5, 0.25]);
    assert.equal(t.packed.length, 65);
    assert.equal(t.packed[64], 0xf7, "element 128 is code 15, padding nibble is code 7 (0.0)");
    const zeros = nf4Quantize(new Float32Array(64), [64], { doubleQuant: false });
    assert.ok(zeros.packed.every((b) => b === 0x77));
    assert.ok(nf4Dequantize(zeros).every((x) => x === 0));
  });

  it("refuses a block size bitsandbytes does not support and a shape that disagrees with the values", () => {
    assert.throws(() => nf4Quantize(new Float32Array(48), [48], { blocksize: 48 }), /blocksize must be one of 32, 64/);
    assert.throws(() => nf4Quantize(new Float32Array(10), [3, 4]), /holds 12 values but 10 were given/);
  });
});

describe("NF4 accuracy", () => {
  it("stays within half the widest code gap of each block's absmax on Gaussian weights", () => {
    const n = 64 * 512;
    const w = gaussian(n);
    const t = nf4Quantize(w, [512, 64], { doubleQuant: false });
    const d = nf4Dequantize(t);
    // The widest gap of the NF4 code is between -1.0 and -0.6961928.
    const halfGap = (NF4_CODE[1]! - NF4_CODE[0]!) / 2;
    let se = 0;
    let ss = 0;
    for (let i = 0; i < n; i++) {
      const err = Math.abs(d[i]! - w[i]!);
      assert.ok(err <= t.absmax[Math.floor(i / 64)]! * halfGap * (1 + 1e-6), `element ${i}: ${w[i]} -> ${d[i]}`);
      se += err * err;
      ss += w[i]! * w[i]!;
    }
    // NF4 is information-theoretically near-optimal for normal weights (QLoRA, section 3): on
    // N(0, 1) blocks of 64 its relative RMS error is about 0.097.
    const rel = Math.sqrt(se / ss);
    assert.ok(rel > 0.08 && rel < 0.11, `relative RMS error ${rel}`);
  });

  it("double quantization keeps absmax within the 8-bit dynamic map's resolution", () => {
    const w = gaussian(64 * 1000).map((x, i) => x * (1 + (i % 7) / 10));
    const plain = nf4Quantize(w, [1000, 64], { doubleQuant: false });
    const nested = nf4Quantize(w, [1000, 64]);
    assert.ok(nested.nested);
    assert.equal(nested.nested.quantizedAbsmax.length, 1000);
    assert.equal(nested.nested.nestedAbsmax.length, 4, "ceil(1000 / 256) nested blocks");
    assert.deepEqual(nested.packed, plain.packed, "the 4-bit codes do not depend on double quantization");
    for (let i = 0; i < 1000; i++) {
      const scale = nested.nested.nestedAbsmax[Math.floor(i / 256)]!;
      // Neighbouring dynamic-map codes near +-1 are 0.0141 apart, finer elsewhere.
      assert.ok(Math.abs(nested.absmax[i]! - plain.absmax[i]!) <= scale * 0.0075, `absmax ${i}`);
    }
  });
});

describe("double quantization, hand-computed", () => {
  it("centres on the mean and codes the extremes as the map's ends", () => {
    const n = doubleQuantizeAbsmax(Float32Array.of(1, 2, 3, 4));
    assert.equal(n.offset, 2.5);
    assert.deepEqual(Array.from(n.nestedAbsmax), [1.5]);
    assert.equal(n.quantizedAbsmax[0], 0, "-1.5 / 1.5 = -1 is below every midpoint: the first code");
    assert.equal(n.quantizedAbsmax[3], 255, "1.5 / 1.5 = 1 is the map's last code");
    const back = dequantizeNestedAbsmax(n);
    assert.equal(back[3], 4);
    assert.equal(back[0], f(f(DYNAMIC_MAP_SIGNED[0]! * 1.5) + 2.5));
    // +-1/3 lands on the map's nearest codes.
    for (const i of [1, 2]) {
      const q = n.quantizedAbsmax[i]!;
      const target = i === 1 ? -1 / 3 : 1 / 3;
      const err = Math.abs(DYNAMIC_MAP_SIGNED[q]! - target);
      assert.ok(err <= Math.abs(DYNAMIC_MAP_SIGNED[q - 1]! - target) && err <= Math.abs(DYNAMIC_MAP_SIGNED[q + 1]! - target));
    }
  });
  it("restores equal absmax values exactly (an all-zero nested block codes as 0, scale 0)", () => {
    const n = doubleQuantizeAbsmax(new Float32Array(300).fill(0.75));
    assert.deepEqual(Array.from(n.nestedAbsmax), [0, 0]);
    assert.ok(n.quantizedAbsmax.every((q) => q === 0));
    assert.ok(dequantizeNestedAbsmax(n).every((x) => x === 0.75));
  });
  it("quantizes through bitsandbytes' 65536-step table, not by exact nearest code", () => {
    // The table's cells are 2/65535 wide, coarser than the dynamic map's codes near zero
    // (5.5e-7 apart), so -5e-7 lands in the cell centred at -1 + 2 * 32767 / 65535 and takes the
    // code nearest that centre, as bitsandbytes' CPU kernel does.
    const nearest = (x: number) => DYNAMIC_MAP_SIGNED.reduce((best, c, i) => (Math.abs(c - x) < Math.abs(DYNAMIC_MAP_SIGNED[best]! - x) ? i : best), 0);
    const n = doubleQuantizeAbsmax(Float32Array.of(1, -1, -5e-7), { offset: 0 });
    assert.equal(n.quantizedAbsmax[2], nearest(-1 + (2 * 32767) / 65535));
    assert.notEqual(n.quantizedAbsmax[2], nearest(-5e-7));
  });
  it("uses a given offset and map, so a checkpoint's own values are reproduced", () => {
    const absmax = Float32Array.from(gaussian(10), (x) => Math.abs(x) + 0.5);
    const n = doubleQuantizeAbsmax(absmax, { offset: 1.25 });
    assert.equal(n.offset, 1.25);
    const m = Math.max(...Array.from(absmax, (a) => Math.abs(f(a - 1.25))));
    assert.equal(n.nestedAbsmax[0], m);
  });
  it("has the 256 values of bitsandbytes' signed dynamic map", () => {
    assert.equal(DYNAMIC_MAP_SIGNED.length, 256);
    assert.equal(DYNAMIC_MAP_SIGNED[255], 1);
    assert.equal(DYNAMIC_MAP_SIGNED[127], 0);
    assert.equal(DYNAMIC_MAP_SIGNED[0], f(-0.99296874));
    for (let i = 1; i < 256; i++) assert.ok(DYNAMIC_MAP_SIGNED[i]! > DYNAMIC_MAP_SIGNED[i - 1]!);
  });
});
