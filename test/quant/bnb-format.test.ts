import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { f32ToBytes } from "../../lib/formats/dtype.js";
import { SafetensorsReader } from "../../lib/formats/safetensors-reader.js";
import { ShardedSafetensorsWriter, writeSafetensorsFile, type TensorToWrite } from "../../lib/formats/safetensors-writer.js";
import { bnb4bitTensors, bnb4bitWeightNames, bnbQuantStateJson, isBnb4bitCheckpoint, isBnbCompanionTensor, readBnb4bit } from "../../lib/quant/bnb-format.js";
import { loadNf4Weight } from "../../lib/quant/load-nf4.js";
import { nf4Dequantize, nf4Quantize, type Nf4Tensor } from "../../lib/quant/nf4.js";

function randn(n: number): Float32Array {
  return Float32Array.from({ length: n }, () => (Math.random() + Math.random() + Math.random() - 1.5) * 0.1);
}

describe("bitsandbytes 4-bit checkpoints", () => {
  it("writes the keys of a bitsandbytes NF4 weight with its JSON quant state", () => {
    const t = nf4Quantize(randn(8 * 64), [8, 64], { dtype: "bfloat16" });
    const tensors = bnb4bitTensors("model.layers.0.mlp.up_proj.weight", t);
    assert.deepEqual(tensors.map((x) => [x.name.replace("model.layers.0.mlp.up_proj.", ""), x.dtype, x.shape]), [
      ["weight", "U8", [256, 1]],
      ["weight.absmax", "U8", [8]],
      ["weight.quant_map", "F32", [16]],
      ["weight.nested_absmax", "F32", [1]],
      ["weight.nested_quant_map", "F32", [256]],
      ["weight.quant_state.bitsandbytes__nf4", "U8", [tensors.at(-1)!.data.length]],
    ]);
    const json = new TextDecoder().decode(tensors.at(-1)!.data);
    const offset = JSON.parse(json).nested_offset;
    assert.equal(Math.fround(offset), t.nested!.offset);
    assert.equal(json, `{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [8, 64], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": ${offset}}`);
  });

  it("writes floats in the quant state as Python's json.dumps does", () => {
    const base: Nf4Tensor = nf4Quantize(randn(64), [64]);
    const json = (offset: number) => JSON.parse(bnbQuantStateJson({ ...base, nested: { ...base.nested!, offset } })).nested_offset;
    assert.match(bnbQuantStateJson({ ...base, nested: { ...base.nested!, offset: 2 } }), /"nested_offset": 2\.0\}/);
    assert.match(bnbQuantStateJson({ ...base, nested: { ...base.nested!, offset: 1.25e-5 } }), /"nested_offset": 1\.25e-05\}/);
    assert.equal(json(0.0234375), 0.0234375);
  });

  it("reads a project-written pre-quantized checkpoint back to the same dequantized weights", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsloth-bnb-"));
    const weights = {
      "model.layers.0.self_attn.q_proj.weight": { shape: [64, 64], doubleQuant: true },
      "model.layers.0.self_attn.k_proj.weight": { shape: [32, 64], doubleQuant: false },
      "model.layers.0.mlp.down_proj.weight": { shape: [64, 192], doubleQuant: true },
      "odd.weight": { shape: [3, 7], doubleQuant: true },
    };
    const originals = new Map<string, Nf4Tensor>();
    const w = new ShardedSafetensorsWriter(dir, { maxShardSize: 4000 });
    w.add("model.norm.weight", "BF16", [64], f32ToBytes(randn(64), "BF16"));
    for (const [name, spec] of Object.entries(weights)) {
      const values = randn(spec.shape[0]! * spec.shape[1]!);
      const t = nf4Quantize(values, spec.shape, { doubleQuant: spec.doubleQuant, dtype: "bfloat16" });
      originals.set(name, t);
      for (const x of bnb4bitTensors(name, t)) w.add(x.name, x.dtype, x.shape, x.data);
    }
    w.finish();
    const r = SafetensorsReader.open(dir);
    assert.ok(isBnb4bitCheckpoint(r));
    assert.deepEqual(new Set(bnb4bitWeightNames(r)), new Set(Object.keys(weights)));
    assert.deepEqual(r.names().filter((n) => !isBnbCompanionTensor(n) && !originals.has(n)), ["model.norm.weight"]);
    for (const [name, t] of originals) {
      const back = readBnb4bit(r, name);
      assert.deepEqual(back.shape, t.shape);
      assert.equal(back.dtype, "bfloat16");
      assert.equal(back.nested !== undefined, t.nested !== undefined);
      assert.deepEqual(back.absmax, t.absmax, `${name} absmax`);
      assert.deepEqual(nf4Dequantize(back), nf4Dequantize(t), `${name} weights`);
    }
    r.close();
  });

  it("says clearly when a weight is not 4-bit or is FP4", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsloth-bnb-"));
    const p = join(dir, "model.safetensors");
    const fp4State = new TextEncoder().encode(`{"quant_type": "fp4", "blocksize": 64, "dtype": "float16", "shape": [2, 2]}`);
    const tensors: TensorToWrite[] = [
      { name: "a.weight", dtype: "F32", shape: [2], data: new Uint8Array(8) },
      { name: "b.weight", dtype: "U8", shape: [2, 1], data: new Uint8Array(2) },
      { name: "b.weight.quant_state.bitsandbytes__fp4", dtype: "U8", shape: [fp4State.length], data: fp4State },
    ];
    writeSafetensorsFile(p, tensors);
    const r = SafetensorsReader.open(p);
    assert.ok(isBnb4bitCheckpoint(r));
    assert.throws(() => readBnb4bit(r, "a.weight"), /"a.weight" is not a bitsandbytes 4-bit weight/);
    assert.throws(() => readBnb4bit(r, "b.weight"), /bitsandbytes FP4; tsloth loads NF4 only/);
    r.close();
  });
});

describe("loadNf4Weight", () => {
  it("quantizes a 16-bit weight on load and reads a 4-bit one as stored", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsloth-load-"));
    const values = randn(4 * 64);
    const stored = nf4Quantize(randn(2 * 64), [2, 64]);
    writeSafetensorsFile(join(dir, "model.safetensors"), [
      { name: "a.weight", dtype: "BF16", shape: [4, 64], data: f32ToBytes(values, "BF16") },
      ...bnb4bitTensors("b.weight", stored),
      { name: "c.weight", dtype: "I32", shape: [1], data: new Uint8Array(4) },
    ]);
    const r = SafetensorsReader.open(dir);
    const a = loadNf4Weight(r, "a.weight");
    assert.equal(a.dtype, "bfloat16");
    assert.deepEqual(a.packed, nf4Quantize(r.readF32("a.weight"), [4, 64]).packed);
    assert.deepEqual(nf4Dequantize(loadNf4Weight(r, "b.weight")), nf4Dequantize(stored));
    assert.throws(() => loadNf4Weight(r, "c.weight"), /tensor "c.weight" is I32; only BF16, F16 and F32 weights can be quantized/);
    r.close();
  });
});
