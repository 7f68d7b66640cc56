// Recorded decode steps (lib/infer/step-graphs.ts) on the CPU backend, whose recordStep is the spec
// of a replay (run the step again on the inputs' current contents): greedy generation through
// replays must equal eager generation exactly, new recordings must be made when the running set
// shrinks or the contiguous cache grows, nothing may stay allocated afterwards, and greedy picks
// made on the device (argmaxRows) must equal the host's picks from the logits.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { loadModel4bit, memoryReport, type Model } from "../../lib/index.js";
import { decodeWithKvCache, type DecodeLoopOptions, type KvLayout, type StepGraphStats } from "../../lib/infer/decode-loop.js";
import { resolveSampling, Sampler } from "../../lib/infer/sampling.js";

const PROMPTS = ["The capital of France is", "Once upon a time", "Q: What is two plus two?\nA:"];

type Stats = StepGraphStats;

describe("recorded decode steps (CPU spec)", () => {
  let model: Model;
  let ids: number[][];
  before(async () => {
    model = await loadModel4bit("tsloth-tiny", { backend: "cpu" });
    ids = PROMPTS.map((p) => model.tokenizer.encode(p));
  });

  async function decode(prompts: number[][], layout: KvLayout, maxNewTokens: number, stepGraphs: boolean, eos: number[] = []) {
    const stats: Stats[] = [];
    const o: DecodeLoopOptions = {
      maxNewTokens, eosTokenIds: eos, sampler: new Sampler(resolveSampling({})), layout, stepGraphs,
      onStepGraphs: (s) => stats.push(s),
    };
    const out = await decodeWithKvCache(model.engine, prompts, o);
    return { ids: out.map((r) => r.ids), stats };
  }

  it("one sequence: replayed steps give the eager tokens; one recording after one eager decode step", async () => {
    const N = 24;
    const eager = await decode([ids[0]], "contiguous", N, false);
    const replayed = await decode([ids[0]], "contiguous", N, true);
    assert.deepEqual(replayed.ids, eager.ids);
    assert.deepEqual(eager.stats, [], "no recorder when step graphs are off");
    // N tokens = prefill + N − 1 decode steps: the first runs eagerly, the second is recorded.
    assert.deepEqual(replayed.stats.map(({ replays, recordings, unavailable }) => ({ replays, recordings, unavailable })),
      [{ replays: N - 2, recordings: 1, unavailable: null }]);
  });

  it("greedy picks made on the device equal those made on the host from the downloaded logits, replayed or not", async () => {
    const N = 16;
    const host = await decodeWithKvCache(model.engine, [ids[2]], {
      maxNewTokens: N, eosTokenIds: [], sampler: new Sampler(resolveSampling({})), layout: "contiguous", stepGraphs: true,
      onLogits: () => {},  // someone wants the logits: they are downloaded and picked on the host
    });
    for (const stepGraphs of [true, false]) {
      const device = await decode([ids[2]], "contiguous", N, stepGraphs);
      assert.deepEqual(device.ids, host.map((r) => r.ids), `step graphs ${stepGraphs}`);
    }
  });

  it("the contiguous cache growing past prompt + 512 makes a new recording, tokens unchanged", async () => {
    const N = 530;
    const eager = await decode([ids[1]], "contiguous", N, false);
    const replayed = await decode([ids[1]], "contiguous", N, true);
    assert.deepEqual(replayed.ids, eager.ids);
    const [s] = replayed.stats;
    assert.equal(s.recordings, 2, "one recording per cache segment count");
    assert.equal(s.replays, N - 1 - 2, "each new shape costs one eager step; the step that records it replays");
  });

  it("paged batch: a sequence stopping early changes the batch, which is recorded anew; tokens unchanged", async () => {
    const N = 20;
    const free = await decode(ids, "paged", N, false);
    // An EOS that prompt 0 emits midway and the others never emit before it.
    const stop = free.ids[0].find((t, k) => k >= 6 && !free.ids[1].slice(0, k + 1).includes(t) && !free.ids[2].slice(0, k + 1).includes(t));
    assert.ok(stop !== undefined, "found a token to stop prompt 0 early");
    const eager = await decode(ids, "paged", N, false, [stop]);
    const replayed = await decode(ids, "paged", N, true, [stop]);
    assert.deepEqual(replayed.ids, eager.ids);
    assert.ok(eager.ids[0].length < N && eager.ids[1].length === N, "prompt 0 stopped early, prompt 1 ran to the limit");
    assert.equal(replayed.stats[0].recordings, 2, "batches of 3 and of 2 sequences");
    const before = memoryReport(model).current;
    assert.equal(before.kv_cache, 0);
    assert.equal(before.workspace, 0, "recordings and their inputs are released");
  });
});
