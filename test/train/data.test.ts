import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packSamples } from "../../lib/model/batch.js";
import { parseJsonlRecords, readJsonlRecords } from "../../lib/train/jsonl-dataset.js";
import { epochMicroBatches } from "../../lib/train/micro-batches.js";
import { learningRate } from "../../lib/train/schedule.js";
import { tokenizeRecords, type DataTokenizer } from "../../lib/train/tokenize-records.js";

/** Characters as tokens; chat turns as "<role>:" prefixes, the assistant's content masked in. */
const charTokenizer: DataTokenizer = {
  eosTokenIds: [1],
  bosTokenId: 0,
  encode: (text) => [...text].map((c) => c.charCodeAt(0)),
  encodeChat(messages) {
    const ids: number[] = [0], mask: boolean[] = [false];
    for (const m of messages) {
      for (const c of `${m.role}:`) { ids.push(c.charCodeAt(0)); mask.push(false); }
      for (const c of m.content) { ids.push(c.charCodeAt(0)); mask.push(m.role === "assistant"); }
      ids.push(1); mask.push(m.role === "assistant");
    }
    return { ids, assistantMask: mask };
  },
};

describe("JSONL data", () => {
  it("reads text and chat records", () => {
    const r = parseJsonlRecords('{"text": "hi"}\n\n{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n', "d.jsonl");
    assert.equal(r.length, 2);
    assert.equal(r[0].kind, "text");
    assert.equal(r[1].kind, "chat");
    assert.equal(r[1].line, 3);
  });
  it("names the line of malformed JSON", () => {
    assert.throws(() => parseJsonlRecords('{"text": "ok"}\n{"text": oops}\n', "d.jsonl"), /d\.jsonl line 2: not valid JSON/);
  });
  it("names the line of a record with neither text nor messages", () => {
    assert.throws(() => parseJsonlRecords('{"text": "ok"}\n{"prompt": "x"}\n', "d.jsonl"), /d\.jsonl line 2: expected \{"messages": \[\.\.\.\]\} or \{"text": "\.\.\."\}/);
  });
  it("says when the data file is missing", () => {
    assert.throws(() => readJsonlRecords("/nonexistent/data.jsonl"), /data file \/nonexistent\/data\.jsonl does not exist/);
  });
  it("reads a file from disk", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsloth-data-"));
    try {
      writeFileSync(join(dir, "d.jsonl"), '{"text": "a"}\n{"text": "b"}\n');
      assert.equal(readJsonlRecords(join(dir, "d.jsonl")).length, 2);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe("tokenization and packing", () => {
  const chat = parseJsonlRecords('{"messages": [{"role": "user", "content": "qq"}, {"role": "assistant", "content": "ab"}]}', "d");
  it("trains on completions only: prompt tokens get label -100", () => {
    const [s] = tokenizeRecords(chat, charTokenizer, { maxSeqLength: 64, overLength: "refuse" });
    const b = packSamples([s]);
    const targets = [...b.labels].filter((l) => l !== -100);
    assert.deepEqual(targets, ["a".charCodeAt(0), "b".charCodeAt(0), 1]);
  });
  it("truncates over-long samples with a warning, or refuses naming the line", () => {
    const text = parseJsonlRecords('{"text": "0123456789"}', "d");
    const warnings: string[] = [];
    const [s] = tokenizeRecords(text, charTokenizer, { maxSeqLength: 5, overLength: "truncate", warn: (w) => warnings.push(w) });
    assert.equal(s.ids.length, 5);
    assert.match(warnings[0], /1 sample\(s\) longer than max_seq_length 5 \(longest 12 tokens\) were truncated/);
    assert.throws(() => tokenizeRecords(text, charTokenizer, { maxSeqLength: 5, overLength: "refuse" }), /data line 1 is 12 tokens, longer than max_seq_length 5/);
  });
  it("packs short samples up to max_seq_length without padding, positions restarting per sample", () => {
    const recs = parseJsonlRecords(["aaaa", "bbb", "cc", "ddddd"].map((t) => JSON.stringify({ text: t })).join("\n"), "d");
    const samples = tokenizeRecords(recs, charTokenizer, { maxSeqLength: 16, overLength: "refuse" });
    const packed = epochMicroBatches(samples, 0, { batchSize: 1, packing: true, maxSeqLength: 16, seed: 1 });
    const total = samples.reduce((n, s) => n + s.ids.length, 0);
    assert.equal(packed.reduce((n, b) => n + b.ids.length, 0), total);
    for (const b of packed) {
      assert.ok(b.ids.length <= 16);
      for (let s = 0; s + 1 < b.cuSeqlens.length; s++) {
        assert.equal(b.positions[b.cuSeqlens[s]], 0);
        assert.equal(b.labels[b.cuSeqlens[s + 1] - 1], -100, "no sample predicts the next sample's first token");
      }
    }
    assert.ok(packed.length < samples.length);
    const unpacked = epochMicroBatches(samples, 0, { batchSize: 1, packing: false, maxSeqLength: 16, seed: 1 });
    assert.equal(unpacked.length, samples.length);
  });
});

describe("learning-rate schedules", () => {
  it("warms up linearly, then decays linearly or by cosine to zero", () => {
    assert.equal(learningRate("linear", 1, 0, 10, 2), 0);
    assert.equal(learningRate("linear", 1, 1, 10, 2), 0.5);
    assert.equal(learningRate("linear", 1, 2, 10, 2), 1);
    assert.equal(learningRate("linear", 1, 6, 10, 2), 0.5);
    assert.ok(Math.abs(learningRate("cosine", 1, 6, 10, 2) - 0.5) < 1e-12);
    assert.ok(learningRate("cosine", 1, 3, 10, 2) > learningRate("linear", 1, 3, 10, 2));
    assert.equal(learningRate("constant", 0.3, 9, 10, 2), 0.3);
  });
});
