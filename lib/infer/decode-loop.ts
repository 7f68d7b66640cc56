// The generation loop over a KV cache: prefill each admitted prompt once, then one decode step per
// token for every running sequence together, sampling, streaming and stopping per sequence.
// Sequences are admitted while the cache can hold their whole budget (prompt + max new tokens), so
// a running sequence never waits for a block; finished ones give their blocks back to later ones.
import { asDecodeBackend, type DecodeBackend } from "../backend/types.js";
import { cachedStepGreedyIds, cachedStepLogits, type CachedStep } from "../model/cached-forward.js";
import type { LlamaModel } from "../model/llama.js";
import { ContiguousKvCache } from "./contiguous-kv-cache.js";
import { KV_BLOCK_SIZE, type KvCache } from "./kv-cache.js";
import { DEFAULT_KV_MEMORY_SHARE, PagedKvCache, sizeKvPool } from "./paged-kv-cache.js";
import type { TokenPicker } from "./sampling.js";
import { DecodeStepGraphs } from "./step-graphs.js";

export type KvLayout = "contiguous" | "paged";
export type FinishReason = "eos" | "length" | "aborted";

export interface DecodeLoopOptions {
  maxNewTokens: number;
  eosTokenIds: readonly number[];
  sampler: TokenPicker;
  /** "contiguous" runs prompts one at a time; "paged" runs them together (default: paged for several). */
  layout?: KvLayout;
  /** Share of free device memory the paged pool may take. */
  kvMemoryShare?: number;
  signal?: AbortSignal;
  /** Each new token of prompt `index` as it is chosen. */
  onToken?: (index: number, id: number) => void;
  /** The logits each new token of prompt `index` was chosen from (before any sampling processor). */
  onLogits?: (index: number, logits: Float32Array) => void;
  /** Prefill through the cache's attention instead of the packed kernel (tests both paths). */
  prefillOverCache?: boolean;
  /** Replay recorded decode steps (lib/infer/step-graphs.ts); default: where the backend says it pays (CUDA). */
  stepGraphs?: boolean;
  /** Called once generation ends with how many decode steps were replayed and recordings made. */
  onStepGraphs?: (stats: StepGraphStats) => void;
}

export interface StepGraphStats {
  replays: number;
  recordings: number;
  /** Why steps stopped being recorded, or null. */
  unavailable: string | null;
  /** Wall time of the replays including the download of each output (logits or ids), which waits for it. */
  replaySeconds: number;
}

export interface DecodedSequence {
  ids: number[];
  finishReason: FinishReason;
}

interface Running {
  index: number;
  seen: number[];
  out: number[];
}

const nextTick = () => new Promise<void>((r) => setImmediate(r));

/**
 * Runs one cached step over `seqs` (decode steps through `graphs` when given) and returns each one's
 * next token: picked on the device when `onDevice` (plain greedy), else `choose(i, logitsRow)`.
 */
function step(model: LlamaModel, be: DecodeBackend, cache: KvCache, seqs: number[], newTokens: number[][], fresh: boolean,
  graphs: DecodeStepGraphs | null, onDevice: boolean, choose: (i: number, logits: Float32Array) => number): number[] {
  const ids: number[] = [], positions: number[] = [], slots: number[] = [], cu = [0];
  seqs.forEach((s, i) => {
    const start = cache.length(s);
    const toks = newTokens[i];
    slots.push(...cache.append(s, toks.length));
    toks.forEach((id, j) => { ids.push(id); positions.push(start + j); });
    cu.push(ids.length);
  });
  const { tables, maxBlocks } = cache.blockTables(seqs);
  const s: CachedStep = {
    ids: Int32Array.from(ids), positions: Int32Array.from(positions), cuQueryLens: Int32Array.from(cu), slots: Int32Array.from(slots),
    contextLens: Int32Array.from(seqs, (q) => cache.length(q)), blockTables: tables, maxBlocks, blockSize: cache.blockSize,
    attention: fresh ? "fresh" : "cache",
  };
  const segments = (l: number) => cache.segments(l);
  const replay = graphs !== null && !fresh;
  if (onDevice) return Array.from(replay ? graphs.greedyIds(s, segments) : cachedStepGreedyIds(model, be, segments, s));
  const logits = replay ? graphs.logits(s, segments) : cachedStepLogits(model, be, segments, s);
  const V = model.config.vocabSize;
  return seqs.map((_, i) => choose(i, logits.subarray(i * V, (i + 1) * V)));
}

async function runOnCache(model: LlamaModel, be: DecodeBackend, cache: KvCache, prompts: readonly number[][], order: number[],
  fits: (index: number) => boolean, released: (index: number) => void, o: DecodeLoopOptions, results: DecodedSequence[]): Promise<void> {
  // Block tables of recorded steps hold the longest budget (prompt + max new tokens) of these prompts.
  const width = Math.max(...order.map((i) => Math.ceil((prompts[i].length + o.maxNewTokens) / cache.blockSize)));
  const graphs = (o.stepGraphs ?? be.stepRecordingPays) ? new DecodeStepGraphs(model, be, width) : null;
  try {
    await decodeAll(model, be, cache, prompts, order, fits, released, o, results, graphs);
  } finally {
    graphs?.free();
    if (graphs) {
      const { replays, recordings, unavailable, replaySeconds } = graphs;
      o.onStepGraphs?.({ replays, recordings, unavailable, replaySeconds });
    }
  }
}

async function decodeAll(model: LlamaModel, be: DecodeBackend, cache: KvCache, prompts: readonly number[][], order: number[],
  fits: (index: number) => boolean, released: (index: number) => void, o: DecodeLoopOptions, results: DecodedSequence[],
  graphs: DecodeStepGraphs | null): Promise<void> {
  const waiting = [...order];
  let running: Running[] = [];
  const finish = (r: Running, reason: FinishReason) => {
    results[r.index] = { ids: r.out, finishReason: reason };
    cache.release(r.index);
    released(r.index);
  };
  const choose = (r: Running, logits: Float32Array): number => {
    o.onLogits?.(r.index, logits);
    return o.sampler.pick(logits, r.seen);
  };
  // Plain greedy with nobody asking for the logits: the pick happens on the device.
  const onDevice = o.sampler.argmaxOnly === true && o.onLogits === undefined;
  const accept = (r: Running, id: number): boolean => {
    r.out.push(id);
    r.seen.push(id);
    o.onToken?.(r.index, id);
    if (o.eosTokenIds.includes(id)) { finish(r, "eos"); return false; }
    if (r.out.length >= o.maxNewTokens) { finish(r, "length"); return false; }
    return true;
  };
  while (waiting.length > 0 || running.length > 0) {
    if (o.signal?.aborted) {
      for (const r of running) finish(r, "aborted");
      for (const i of waiting) results[i] = { ids: [], finishReason: "aborted" };
      return;
    }
    const admitted: Running[] = [];
    while (waiting.length > 0 && fits(waiting[0])) {
      const index = waiting.shift()!;
      admitted.push({ index, seen: [...prompts[index]], out: [] });
    }
    if (admitted.length > 0) {
      const picks = step(model, be, cache, admitted.map((r) => r.index), admitted.map((r) => prompts[r.index]), !o.prefillOverCache, graphs,
        onDevice, (i, row) => choose(admitted[i], row));
      admitted.forEach((r, i) => { if (accept(r, picks[i])) running.push(r); });
    } else {
      const picks = step(model, be, cache, running.map((r) => r.index), running.map((r) => [r.out[r.out.length - 1]]), false, graphs,
        onDevice, (i, row) => choose(running[i], row));
      running = running.filter((r, i) => accept(r, picks[i]));
    }
    await nextTick();
  }
}

/** New token ids for each prompt (EOS included when produced), in prompt order. */
export async function decodeWithKvCache(model: LlamaModel, prompts: readonly number[][], o: DecodeLoopOptions): Promise<DecodedSequence[]> {
  const be = asDecodeBackend(model.be);
  prompts.forEach((p, i) => { if (p.length === 0) throw new Error(`tsloth: prompt ${i} is empty; generation needs at least one token`); });
  const results: DecodedSequence[] = new Array(prompts.length);
  const layout = o.layout ?? (prompts.length > 1 ? "paged" : "contiguous");
  if (layout === "contiguous") {
    for (let i = 0; i < prompts.length; i++) {
      const cache = new ContiguousKvCache(be, model.config, prompts[i].length);
      try {
        await runOnCache(model, be, cache, prompts, [i], () => true, () => {}, o, results);
      } finally {
        cache.free();
      }
    }
    return results;
  }
  const budget = prompts.map((p) => Math.ceil((p.length + o.maxNewTokens) / KV_BLOCK_SIZE));
  const sizing = sizeKvPool(be, model.config, budget.reduce((a, b) => a + b, 0), Math.max(...budget), o.kvMemoryShare ?? DEFAULT_KV_MEMORY_SHARE);
  const cache = new PagedKvCache(be, model.config, sizing.blocks);
  let reserved = 0;
  const reservations = new Set<number>();
  const fits = (index: number) => {
    if (reserved + budget[index] > sizing.blocks) return false;
    reserved += budget[index];
    reservations.add(index);
    return true;
  };
  const released = (index: number) => { if (reservations.delete(index)) reserved -= budget[index]; };
  try {
    await runOnCache(model, be, cache, prompts, prompts.map((_, i) => i), fits, released, o, results);
  } finally {
    cache.free();
  }
  return results;
}
