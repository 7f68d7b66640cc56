// Generation on the embedded tiny model (assets/tsloth-tiny): the cached decoder must produce the
// same greedy tokens as the no-cache reference loop, with either KV cache layout, with several
// prompts at once, and with LoRA adapters attached; streaming, stopping and aborting behave.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { asDecodeBackend } from "../../lib/backend/types.js";
import { attachLora, generate, loadModel4bit, memoryReport, type Model } from "../../lib/index.js";
import { decodeWithKvCache } from "../../lib/infer/decode-loop.js";
import { greedyDecode } from "../../lib/infer/greedy.js";
import { resolveSampling, Sampler } from "../../lib/infer/sampling.js";
import { randomizeLoraB } from "../model/random-model.js";

const PROMPTS = ["The capital of France is", "Once upon a time", "Q: What is two plus two?\nA:"];
const N = 40;

describe("generate on tsloth-tiny (CPU)", () => {
  let model: Model;
  let ids: number[][];
  before(async () => {
    model = await loadModel4bit("tsloth-tiny", { backend: "cpu" });
    ids = PROMPTS.map((p) => model.tokenizer.encode(p));
  });
  const greedy = () => new Sampler(resolveSampling({}));
  // No EOS: every run makes exactly N tokens, so long outputs are compared.
  const noCache = (p: number[]) => greedyDecode(model.engine, p, { maxNewTokens: N, eosTokenIds: [] });
  const cached = (ps: number[][], layout: "contiguous" | "paged", prefillOverCache = false) =>
    decodeWithKvCache(model.engine, ps, { maxNewTokens: N, eosTokenIds: [], sampler: greedy(), layout, prefillOverCache });

  it("greedy tokens: contiguous cache = paged cache = no-cache loop", async () => {
    for (const p of ids) {
      const want = await noCache(p);
      assert.equal(want.length, N);
      assert.deepEqual((await cached([p], "contiguous"))[0].ids, want);
      assert.deepEqual((await cached([p], "paged"))[0].ids, want);
      assert.deepEqual((await cached([p], "paged", true))[0].ids, want, "prefill through the cache's attention");
    }
  });

  it("several prompts of different lengths in one paged batch = each alone", async () => {
    const together = await cached(ids, "paged");
    for (let i = 0; i < ids.length; i++) {
      assert.deepEqual(together[i].ids, (await cached([ids[i]], "contiguous"))[0].ids, `prompt ${i}`);
      assert.equal(together[i].finishReason, "length");
    }
  });

  it("with LoRA attached (unmerged, B non-zero) the layouts and the no-cache loop still agree, and differ from the base", async () => {
    const base = await noCache(ids[0]);
    attachLora(model, { r: 4, seed: 7 });
    randomizeLoraB(model.backend, model.engine, 9, 0.5);
    try {
      const want = await noCache(ids[0]);
      assert.notDeepEqual(want, base, "adapters with non-zero B change the output");
      assert.deepEqual((await cached([ids[0]], "contiguous"))[0].ids, want);
      assert.deepEqual((await cached(ids, "paged"))[0].ids, want);
    } finally {
      model.engine.lora = null;
    }
  });

  it("KV memory is accounted as kv_cache while generating and released after", async () => {
    const be = asDecodeBackend(model.backend);
    let seen = 0;
    await decodeWithKvCache(model.engine, [ids[0]], {
      maxNewTokens: 3, eosTokenIds: [], sampler: greedy(), layout: "contiguous",
      onToken: () => { seen = Math.max(seen, be.memory().current.kv_cache); },
    });
    const c = model.config;
    // prompt + 512 positions rounded to blocks, k and v, every layer, f32 on the CPU backend.
    const rows = Math.ceil((ids[0].length + 512) / 16) * 16;
    assert.equal(seen, rows * 2 * c.numLayers * c.numKvHeads * c.headDim * 4);
    assert.equal(memoryReport(model).current.kv_cache, 0);
  });

  it("public generate: one prompt → one result, several → an array; streamed text equals the result", async () => {
    const pieces: string[][] = [[], [], []];
    const out = await generate(model, PROMPTS, { maxNewTokens: 24, onText: (t, i) => pieces[i].push(t) });
    assert.equal(out.length, 3);
    out.forEach((g, i) => {
      assert.equal(pieces[i].join(""), g.text);
      assert.ok(g.ids.length > 0 && g.ids.length <= 24);
      assert.ok(!pieces[i].some((p) => p.includes("\uFFFD")));
    });
    const one = await generate(model, PROMPTS[1], { maxNewTokens: 24 });
    assert.deepEqual(one.ids, out[1].ids);
    assert.equal(one.promptTokens, ids[1].length);
  });

  it("stops at EOS (included in ids, not in text) and reports why", async () => {
    const out = await generate(model, [{ role: "user", content: "Hi" }], { maxNewTokens: 200 });
    if (out.finishReason === "eos") {
      assert.ok(model.tokenizer.eosTokenIds.includes(out.ids[out.ids.length - 1]));
      assert.ok(out.ids.length < 200);
    } else assert.equal(out.ids.length, 200);
    // chat: true wraps a string as a user message: same ids as passing the chat.
    const viaFlag = await generate(model, "Hi", { maxNewTokens: 200, chat: true });
    assert.deepEqual(viaFlag.ids, out.ids);
  });

  it("an AbortSignal stops cleanly after the token in flight, keeping what was generated", async () => {
    const ac = new AbortController();
    const out = await generate(model, PROMPTS, {
      maxNewTokens: 100, signal: ac.signal,
      onToken: (_, i) => { if (i === 0) ac.abort(); },
    });
    for (const g of out) {
      assert.equal(g.finishReason, "aborted");
      assert.ok(g.ids.length <= 1);
    }
    assert.equal(memoryReport(model).current.kv_cache, 0);
  });

  it("seeded sampling is reproducible and differs across seeds", async () => {
    const o = { maxNewTokens: 30, temperature: 1.2, topK: 50, topP: 0.95, repetitionPenalty: 1.1 };
    const a = await generate(model, PROMPTS[0], { ...o, seed: 1 });
    const b = await generate(model, PROMPTS[0], { ...o, seed: 1 });
    const c = await generate(model, PROMPTS[0], { ...o, seed: 2 });
    assert.deepEqual(a.ids, b.ids);
    assert.notDeepEqual(a.ids, c.ids);
  });

  it("refuses bad options with a clear message", async () => {
    await assert.rejects(generate(model, "x", { temperature: -1 }), /--temperature must be 0 \(greedy\) or positive/);
    await assert.rejects(generate(model, "x", { topP: 0 }), /--top_p must be in \(0, 1\]/);
    await assert.rejects(generate(model, "x", { maxNewTokens: 0 }), /--max_new_tokens must be a positive integer/);
    await assert.rejects(generate(model, [], {}), /no prompts given/);
  });
});
