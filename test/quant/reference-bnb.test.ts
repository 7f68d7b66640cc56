// tsloth's NF4 against bitsandbytes on CPU (test/py/check_formats_nf4.py): the same packed bytes,
// absmax and nested state for the same inputs, the same dequantized weights, and checkpoints each
// side writes read by the other.
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { f32ToBytes } from "../../lib/formats/dtype.js";
import { SafetensorsReader } from "../../lib/formats/safetensors-reader.js";
import { writeSafetensorsFile, type TensorToWrite } from "../../lib/formats/safetensors-writer.js";
import { bnb4bitTensors, bnbQuantStateJson, readBnb4bit } from "../../lib/quant/bnb-format.js";
import { DYNAMIC_MAP_SIGNED } from "../../lib/quant/dynamic-map.js";
import { doubleQuantizeAbsmax, nf4Dequantize, nf4Quantize, type Nf4Dtype, type Nf4Tensor } from "../../lib/quant/nf4.js";
import { referenceSkip, runReference } from "../formats/reference-python.js";

const skip = referenceSkip(["torch", "bitsandbytes", "safetensors"]);

interface Case {
  shape: number[];
  dtype: Nf4Dtype;
  compress: boolean;
}

const SAFETENSORS_OF: Record<Nf4Dtype, "F32" | "BF16" | "F16"> = { float32: "F32", bfloat16: "BF16", float16: "F16" };

describe("NF4 is bit-exact with bitsandbytes", { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), "tsloth-ref-nf4-"));
  let cases: Case[] = [];
  let reader: SafetensorsReader;
  const ours: Nf4Tensor[] = [];
  before(() => {
    runReference("check_formats_nf4.py", ["make", dir]);
    cases = JSON.parse(readFileSync(join(dir, "cases.json"), "utf8"));
    reader = SafetensorsReader.open(join(dir, "nf4.safetensors"));
  });

  it("quantizes to the same packed bytes and absmax (compress_statistics=False and True)", () => {
    assert.ok(cases.length >= 5);
    cases.forEach((c, i) => {
      const values = reader.readF32(`case${i}.input`);
      const t = nf4Quantize(values, c.shape, { doubleQuant: c.compress, dtype: c.dtype });
      ours.push(t);
      const bnb = readBnb4bit(reader, `case${i}.weight`);
      assert.deepEqual(bnb.shape, c.shape);
      assert.deepEqual(t.packed, bnb.packed, `case ${i}: packed 4-bit codes`);
      assert.deepEqual(t.quantMap, bnb.quantMap, `case ${i}: NF4 code`);
      if (!c.compress) {
        assert.deepEqual(t.absmax, bnb.absmax, `case ${i}: absmax`);
        return;
      }
      const n = bnb.nested!;
      assert.deepEqual(n.nestedQuantMap, DYNAMIC_MAP_SIGNED, `case ${i}: the nested map is bitsandbytes' dynamic map`);
      // Given bitsandbytes' offset (torch's float32 mean, whose last bit depends on its summation
      // order), the 8-bit double quantization is identical.
      const plain = nf4Quantize(values, c.shape, { doubleQuant: false });
      const same = doubleQuantizeAbsmax(plain.absmax, { offset: n.offset, map: n.nestedQuantMap });
      assert.deepEqual(same.quantizedAbsmax, n.quantizedAbsmax, `case ${i}: quantized absmax`);
      assert.deepEqual(same.nestedAbsmax, n.nestedAbsmax, `case ${i}: nested absmax`);
      assert.ok(Math.abs(t.nested!.offset - n.offset) <= Math.abs(n.offset) * 1e-6, `case ${i}: offset ${t.nested!.offset} vs ${n.offset}`);
      const differing = t.nested!.quantizedAbsmax.filter((q, j) => q !== n.quantizedAbsmax[j]).length;
      assert.ok(differing <= Math.ceil(n.quantizedAbsmax.length / 100), `case ${i}: ${differing} absmax codes differ`);
    });
  });

  it("dequantizes bitsandbytes' checkpoints to dequantize_4bit's exact output", () => {
    cases.forEach((c, i) => {
      const bnb = readBnb4bit(reader, `case${i}.weight`);
      assert.equal(bnb.dtype, c.dtype);
      const d = nf4Dequantize(bnb);
      assert.deepEqual(d, reader.readF32(`case${i}.dequant_f32`), `case ${i}: float32 output`);
      assert.deepEqual(f32ToBytes(d, SAFETENSORS_OF[c.dtype]), reader.readRaw(`case${i}.dequant`), `case ${i}: ${c.dtype} output`);
      const stored = new TextDecoder().decode(reader.readRaw(`case${i}.weight.quant_state.bitsandbytes__nf4`));
      assert.equal(bnbQuantStateJson(bnb), stored, `case ${i}: quant state JSON`);
    });
  });

  it("writes 4-bit checkpoints that bitsandbytes dequantizes to tsloth's values", () => {
    const tensors: TensorToWrite[] = [];
    const names: string[] = [];
    ours.forEach((t, i) => {
      const name = `model.layers.${i}.mlp.up_proj.weight`;
      names.push(name);
      tensors.push(...bnb4bitTensors(name, t));
      tensors.push({ name: `${name}.tsloth_dequant`, dtype: "F32", shape: t.shape, data: f32ToBytes(nf4Dequantize(t), "F32") });
    });
    const path = join(dir, "tsloth-4bit.safetensors");
    writeSafetensorsFile(path, tensors, { format: "pt" });
    writeFileSync(join(dir, "names.json"), JSON.stringify(names));
    assert.match(runReference("check_formats_nf4.py", ["read", path, join(dir, "names.json")]), new RegExp(`read ${names.length} tsloth-written`));
  });
});
