import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { dtypeSize, f32ToBytes, TENSOR_DTYPES, type TensorDtype } from "../../lib/formats/dtype.js";
import { PlannedSafetensorsWriter } from "../../lib/formats/safetensors-planned-writer.js";
import { SafetensorsReader, MAX_HEADER_BYTES } from "../../lib/formats/safetensors-reader.js";
import { parseShardSize, ShardedSafetensorsWriter, writeSafetensorsFile, type TensorToWrite } from "../../lib/formats/safetensors-writer.js";

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "tsloth-st-"));
}

function randomTensor(name: string, dtype: TensorDtype, shape: number[]): TensorToWrite {
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, dtype, shape, data: new Uint8Array(randomBytes(n * dtypeSize(dtype))) };
}

/** A file with a hand-written header, for the validation errors. */
function rawFile(dir: string, header: unknown, dataBytes: number, headerLenOverride?: bigint): string {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLenOverride ?? BigInt(json.length));
  const p = join(dir, `bad-${Math.random().toString(36).slice(2)}.safetensors`);
  writeFileSync(p, Buffer.concat([len, json, Buffer.alloc(dataBytes)]));
  return p;
}

describe("safetensors round trips", () => {
  it("writes and reads back the bytes of every dtype, with metadata and an 8-byte aligned header", () => {
    const dir = tmp();
    const tensors = TENSOR_DTYPES.map((d, i) => randomTensor(`t.${d}`, d, [i % 3 + 1, 5]));
    tensors.push(randomTensor("scalar", "F32", []), randomTensor("empty", "BF16", [0, 4]));
    const path = join(dir, "all.safetensors");
    writeSafetensorsFile(path, tensors, { format: "pt", note: "x" });
    const headerLen = Number(readFileSync(path).readBigUInt64LE(0));
    assert.equal(headerLen % 8, 0);
    const r = SafetensorsReader.open(path);
    assert.deepEqual(r.metadata(), { format: "pt", note: "x" });
    assert.deepEqual(new Set(r.names()), new Set(tensors.map((t) => t.name)));
    for (const t of tensors) {
      const info = r.info(t.name);
      assert.equal(info.dtype, t.dtype);
      assert.deepEqual(info.shape, t.shape);
      assert.deepEqual(r.readRaw(t.name), t.data, t.name);
    }
    r.close();
    assert.deepEqual(readdirSync(dir), ["all.safetensors"], "no temporary file is left behind");
  });

  it("converts BF16/F16/F32 to f32 on read", () => {
    const dir = tmp();
    const v = Float32Array.from({ length: 40 }, () => Math.random() * 2 - 1);
    const path = join(dir, "f.safetensors");
    writeSafetensorsFile(path, (["BF16", "F16", "F32"] as const).map((d) => ({ name: d, dtype: d, shape: [8, 5], data: f32ToBytes(v, d) })));
    const r = SafetensorsReader.open(path);
    assert.deepEqual(r.readF32("F32"), v);
    for (const [d, tol] of [["BF16", 2 ** -8], ["F16", 2 ** -11]] as const) {
      const back = r.readF32(d);
      for (let i = 0; i < v.length; i++) assert.ok(Math.abs(back[i]! - v[i]!) <= Math.abs(v[i]!) * tol);
    }
    r.close();
  });

  it("shards by max_shard_size, names shards like transformers, writes the index, and reads them back", () => {
    const dir = tmp();
    const w = new ShardedSafetensorsWriter(dir, { maxShardSize: 1000 });
    const tensors = [
      randomTensor("a", "F32", [100]), // 400 bytes
      randomTensor("b", "BF16", [200]), // 400
      randomTensor("c", "F32", [100]), // 400 -> new shard (1200 > 1000)
      randomTensor("big", "U8", [3000]), // larger than the limit: a shard of its own, as huggingface_hub does
      randomTensor("d", "F16", [10]),
    ];
    for (const t of tensors) w.add(t.name, t.dtype, t.shape, t.data);
    const { files, totalSize } = w.finish();
    assert.equal(totalSize, tensors.reduce((s, t) => s + t.data.length, 0));
    const shard = (k: number) => `model-0000${k}-of-00004.safetensors`;
    assert.deepEqual(readdirSync(dir).sort(), [shard(1), shard(2), shard(3), shard(4), "model.safetensors.index.json"]);
    assert.equal(files.length, 4);
    const index = JSON.parse(readFileSync(join(dir, "model.safetensors.index.json"), "utf8"));
    assert.equal(index.metadata.total_size, totalSize);
    assert.deepEqual(index.weight_map, { a: shard(1), b: shard(1), c: shard(2), big: shard(3), d: shard(4) });
    for (const open of [dir, join(dir, "model.safetensors.index.json")]) {
      const r = SafetensorsReader.open(open);
      for (const t of tensors) assert.deepEqual(r.readRaw(t.name), t.data);
      assert.equal(r.metadata().format, "pt");
      r.close();
    }
  });

  it("writes a single shard as model.safetensors without an index, replacing an older sharded save", () => {
    const dir = tmp();
    const first = new ShardedSafetensorsWriter(dir, { maxShardSize: 100 });
    first.add("x", "F32", [50], new Uint8Array(200));
    first.add("y", "F32", [50], new Uint8Array(200));
    first.finish();
    assert.ok(readdirSync(dir).includes("model.safetensors.index.json"));
    const w = new ShardedSafetensorsWriter(dir, { maxShardSize: "5GB" });
    const t = randomTensor("w", "BF16", [4, 4]);
    w.add(t.name, t.dtype, t.shape, t.data);
    w.finish();
    assert.deepEqual(readdirSync(dir), ["model.safetensors"]);
    const r = SafetensorsReader.open(dir);
    assert.deepEqual(r.names(), ["w"]);
    assert.deepEqual(r.readRaw("w"), t.data);
    r.close();
  });

  it("refuses a tensor whose bytes disagree with its shape, and duplicate names", () => {
    const w = new ShardedSafetensorsWriter(tmp());
    assert.throws(() => w.add("q", "F32", [3], new Uint8Array(8)), /tensor "q": shape \[3\] of F32 needs 12 bytes, given 8/);
    w.add("q", "F32", [2], new Uint8Array(8));
    assert.throws(() => w.add("q", "F32", [2], new Uint8Array(8)), /"q" added twice/);
    w.abort();
  });
});

describe("parseShardSize", () => {
  it("reads sizes as transformers does (GB = 1e9, GiB = 2^30)", () => {
    assert.equal(parseShardSize("5GB"), 5e9);
    assert.equal(parseShardSize("500MB"), 5e8);
    assert.equal(parseShardSize("2GiB"), 2 * 2 ** 30);
    assert.equal(parseShardSize("10kb"), 10_000);
    assert.equal(parseShardSize(12345), 12345);
    assert.equal(parseShardSize("1.5GB"), 1.5e9);
  });
  it("refuses values that are not sizes", () => {
    assert.throws(() => parseShardSize("five gigs"), /max_shard_size "five gigs" is not a size; write it like "5GB"/);
    assert.throws(() => parseShardSize(0), /positive whole number/);
    assert.throws(() => parseShardSize(-3), /positive whole number/);
    assert.throws(() => parseShardSize("0MB"), /larger than zero/);
  });
});

describe("safetensors validation", () => {
  const dir = tmp();
  const entry = (dtype: string, shape: number[], begin: number, end: number) => ({ dtype, shape, data_offsets: [begin, end] });

  it("names the file and tensor when the file is truncated", () => {
    const path = join(dir, "trunc.safetensors");
    writeSafetensorsFile(path, [randomTensor("first", "F32", [4]), randomTensor("layer.weight", "F32", [64])]);
    truncateSync(path, statSync(path).size - 10);
    assert.throws(() => SafetensorsReader.open(path), (e: Error) =>
      e.message.includes(path) && e.message.includes(`"layer.weight"`) && /truncated/.test(e.message));
  });
  it("names the file when the header itself is cut off", () => {
    const path = rawFile(dir, { a: entry("F32", [1], 0, 4) }, 0, 10_000n);
    assert.throws(() => SafetensorsReader.open(path), (e: Error) => e.message.includes(path) && /truncated/.test(e.message));
  });
  it("refuses overlapping offsets", () => {
    const path = rawFile(dir, { a: entry("F32", [2], 0, 8), b: entry("F32", [2], 4, 12) }, 12);
    assert.throws(() => SafetensorsReader.open(path), (e: Error) => e.message.includes(path) && /tensor "b".*overlap/.test(e.message));
  });
  it("refuses offsets that leave a gap", () => {
    const path = rawFile(dir, { a: entry("F32", [2], 0, 8), b: entry("F32", [2], 12, 20) }, 20);
    assert.throws(() => SafetensorsReader.open(path), (e: Error) => e.message.includes(path) && /tensor "b".*gap/.test(e.message));
  });
  it("refuses data bytes no tensor claims", () => {
    const path = rawFile(dir, { a: entry("F32", [2], 0, 8) }, 16);
    assert.throws(() => SafetensorsReader.open(path), (e: Error) => e.message.includes(path) && /cover 8 data bytes but the file holds 16/.test(e.message));
  });
  it("refuses an unknown dtype, listing the known ones", () => {
    const path = rawFile(dir, { "emb.weight": entry("F12", [2], 0, 8) }, 8);
    assert.throws(() => SafetensorsReader.open(path), (e: Error) =>
      e.message.includes(path) && /tensor "emb.weight": unknown dtype "F12"; expected one of .*BF16/.test(e.message));
  });
  it("refuses a header larger than the limit", () => {
    const path = rawFile(dir, {}, 0, BigInt(MAX_HEADER_BYTES) + 1n);
    assert.throws(() => SafetensorsReader.open(path), (e: Error) => e.message.includes(path) && /larger than the 100000000-byte limit/.test(e.message));
  });
  it("refuses a shape that disagrees with the byte count", () => {
    const path = rawFile(dir, { "norm.weight": entry("BF16", [3, 3], 0, 16) }, 16);
    assert.throws(() => SafetensorsReader.open(path), (e: Error) =>
      e.message.includes(path) && /tensor "norm.weight": shape \[3,3\] of BF16 needs 18 bytes but data_offsets span 16/.test(e.message));
  });
  it("refuses a header that is not JSON, and a file shorter than the length prefix", () => {
    const p1 = join(dir, "notjson.safetensors");
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(5n);
    writeFileSync(p1, Buffer.concat([len, Buffer.from("{oops")]));
    assert.throws(() => SafetensorsReader.open(p1), (e: Error) => e.message.includes(p1) && /not valid JSON/.test(e.message));
    const p2 = join(dir, "short.safetensors");
    writeFileSync(p2, Buffer.alloc(3));
    assert.throws(() => SafetensorsReader.open(p2), (e: Error) => e.message.includes(p2) && /at least 8 bytes/.test(e.message));
  });
  it("names a missing shard of an index and an unknown tensor", () => {
    const d = tmp();
    writeFileSync(join(d, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: { a: "model-00001-of-00002.safetensors" } }));
    assert.throws(() => SafetensorsReader.open(d), /lists shard model-00001-of-00002.safetensors, which is missing/);
    const p = join(d, "one.safetensors");
    writeSafetensorsFile(p, [randomTensor("a", "U8", [1])]);
    const r = SafetensorsReader.open(p);
    assert.throws(() => r.readRaw("b"), /no tensor named "b"/);
    r.close();
    assert.throws(() => SafetensorsReader.open(join(d, "nope")), /does not exist/);
  });
});

describe("readInto", () => {
  it("fills a caller's buffer and refuses one that is too small", () => {
    const dir = tmp();
    const t = randomTensor("w", "F16", [3, 5]);
    writeSafetensorsFile(join(dir, "x.safetensors"), [t]);
    const r = SafetensorsReader.open(join(dir, "x.safetensors"));
    const buf = new Uint8Array(64);
    assert.deepEqual(r.readInto("w", buf), t.data);
    assert.deepEqual(buf.subarray(0, 30), t.data);
    assert.throws(() => r.readInto("w", new Uint8Array(10)), /needs 30 bytes, the buffer has 10/);
    r.close();
    assert.throws(() => r.readRaw("w"), /is closed/);
  });
});

describe("failed writes", () => {
  it("say what failed, remove temporary files and leave the directory's files alone", () => {
    const parent = tmp();
    const dir = join(parent, "out");
    const w = new ShardedSafetensorsWriter(dir, { maxShardSize: 100 });
    w.add("a", "U8", [80], new Uint8Array(80));
    // The target directory disappears under the writer (a removed mount, a cleaned temp dir).
    rmSync(dir, { recursive: true });
    writeFileSync(dir, "not a directory");
    assert.throws(() => w.add("b", "U8", [80], new Uint8Array(80)), /tsloth: writing .*out failed: .*Temporary files were removed/);
    assert.deepEqual(readdirSync(parent), ["out"]);
    assert.equal(readFileSync(dir, "utf8"), "not a directory");
  });
});

describe("PlannedSafetensorsWriter", () => {
  const plan = [
    randomTensor("embed", "BF16", [100, 4]), // 800 bytes
    randomTensor("layer.0", "F32", [50]), // 200
    randomTensor("layer.1", "F32", [50]), // 200 -> shard 2 (1200 > 1000)
    randomTensor("huge", "U8", [2500]), // its own shard
    randomTensor("norm", "F16", [8]),
  ];

  it("writes tensors given in any order into the same bytes as the streaming writer", () => {
    const streamed = tmp();
    const s = new ShardedSafetensorsWriter(streamed, { maxShardSize: 1000 });
    for (const t of plan) s.add(t.name, t.dtype, t.shape, t.data);
    s.finish();
    const planned = tmp();
    const p = new PlannedSafetensorsWriter(planned, plan, { maxShardSize: 1000 });
    for (const t of [...plan].reverse()) p.add(t.name, t.data);
    const { files } = p.finish();
    assert.equal(files.length, 4);
    assert.deepEqual(readdirSync(planned).sort(), readdirSync(streamed).sort());
    for (const f of readdirSync(planned)) assert.deepEqual(readFileSync(join(planned, f)), readFileSync(join(streamed, f)), f);
  });

  it("refuses tensors outside the plan or of the wrong size, and saves nothing when one never arrives", () => {
    const dir = tmp();
    const p = new PlannedSafetensorsWriter(dir, plan, { maxShardSize: 1000 });
    assert.throws(() => p.add("extra", new Uint8Array(4)), /tensor "extra" is not in the plan/);
    assert.throws(() => p.add("norm", new Uint8Array(4)), /shape \[8\] of F16 needs 16 bytes, given 4/);
    p.add("embed", plan[0]!.data);
    assert.throws(() => p.add("embed", plan[0]!.data), /written twice/);
    assert.throws(() => p.finish(), /4 planned tensor\(s\) were never written .*nothing was saved/);
    assert.deepEqual(readdirSync(dir), []);
  });
});
