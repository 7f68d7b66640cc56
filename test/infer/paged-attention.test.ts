// Backend.pagedAttention and kvCacheWrite against the packed causal attention op: the same keys and
// values, scattered over the blocks of either cache layout, must give the same outputs for
// prefill (many queries per sequence) and decode (one query per sequence).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { asDecodeBackend, type AttentionShape, type DecodeBackend, type KvSegment, type Tensor } from "../../lib/backend/types.js";
import { CudaBackend, cudaAvailable } from "../../lib/backend/cuda/index.js";
import { Rng } from "../../lib/model/random.js";
import { backends, randn, type NamedBackend } from "../ops/backends.js";

// The CUDA backend joins when a GPU and the library are present (bf16 storage: looser tolerance).
const targets: NamedBackend[] = [...backends(), ...(cudaAvailable().ok ? [{ name: "cuda", make: () => new CudaBackend() }] : [])];

const BS = 16;
// Head dim 16: the smallest the CUDA reference attention (tsl_attention_fwd) takes.
const SHAPE: AttentionShape = { numHeads: 4, numKvHeads: 2, headDim: 16, scale: 1 / Math.sqrt(16) };
const KW = SHAPE.numKvHeads * SHAPE.headDim, QW = SHAPE.numHeads * SHAPE.headDim;

function maxRelErr(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num = Math.max(num, Math.abs(a[i] - b[i])); den = Math.max(den, Math.abs(b[i])); }
  return num / den;
}

/** Rows [from, to) of a [T, w] host array. */
const rows = (x: Float32Array, w: number, from: number, to: number) => x.subarray(from * w, to * w);

interface Layout { segments: KvSegment[]; tables: number[][]; free(): void }

function segmentsOf(be: DecodeBackend, rowsPer: number[]): KvSegment[] {
  return rowsPer.map((r) => ({ k: be.zeros([r, KW], be.computeDtype, "kv_cache"), v: be.zeros([r, KW], be.computeDtype, "kv_cache") }));
}

/** Paged: one pool, each sequence's blocks drawn at random from it. */
function pagedLayout(be: DecodeBackend, lens: number[], seed: number): Layout {
  const need = lens.map((l) => Math.ceil(l / BS));
  const total = need.reduce((a, b) => a + b, 0) + 3;
  const ids = new Rng(seed).shuffle(Array.from({ length: total }, (_, i) => i));
  let next = 0;
  const segments = segmentsOf(be, [total * BS]);
  return { segments, tables: need.map((n) => ids.slice(next, (next += n))), free: () => segments.forEach((s) => { be.free(s.k); be.free(s.v); }) };
}

/** Contiguous: one sequence over chunks of several sizes, block table 0, 1, 2, ... */
function chunkedLayout(be: DecodeBackend, len: number): Layout {
  const chunks = [48, 32, 64];
  assert.ok(chunks.reduce((a, b) => a + b) >= len);
  const segments = segmentsOf(be, chunks);
  return { segments, tables: [Array.from({ length: Math.ceil(len / BS) }, (_, i) => i)], free: () => segments.forEach((s) => { be.free(s.k); be.free(s.v); }) };
}

/**
 * Writes each sequence's keys/values into the layout, runs pagedAttention for its last `nq[b]`
 * positions, and compares with the packed attention op over the whole sequences.
 */
function check(be: DecodeBackend, lens: number[], nq: number[], layout: Layout, seed: number): number {
  const T = lens.reduce((a, b) => a + b, 0);
  const q = randn(seed, T * QW), k = randn(seed + 1, T * KW), v = randn(seed + 2, T * KW);
  const cu = [0];
  for (const l of lens) cu.push(cu[cu.length - 1] + l);
  const up = (a: Float32Array, w: number) => be.upload(a, [a.length / w, w], "f32", "activations");
  const i32 = (a: number[], shape: number[]) => be.upload(Int32Array.from(a), shape, "i32", "activations");
  const tq = up(q, QW), tk = up(k, KW), tv = up(v, KW), tcu = i32(cu, [cu.length]);
  const ref = be.attention(tq, tk, tv, tcu, SHAPE);
  const refO = be.download(ref.o);
  // Scatter keys/values through kvCacheWrite, in a shuffled order to catch slot mix-ups.
  const slots: number[] = [];
  lens.forEach((l, b) => { for (let p = 0; p < l; p++) slots.push(layout.tables[b][Math.floor(p / BS)] * BS + (p % BS)); });
  const perm = new Rng(seed + 3).shuffle(Array.from({ length: T }, (_, i) => i));
  const pk = new Float32Array(T * KW), pv = new Float32Array(T * KW);
  perm.forEach((src, dst) => { pk.set(rows(k, KW, src, src + 1), dst * KW); pv.set(rows(v, KW, src, src + 1), dst * KW); });
  const tslots = i32(perm.map((src) => slots[src]), [T]), pkT = up(pk, KW), pvT = up(pv, KW);
  be.kvCacheWrite(layout.segments, BS, pkT, pvT, tslots);
  // Queries: the last nq[b] positions of each sequence.
  const qRows: Float32Array[] = [], want: Float32Array[] = [], cuq = [0];
  lens.forEach((l, b) => {
    qRows.push(rows(q, QW, cu[b] + l - nq[b], cu[b] + l));
    want.push(rows(refO, QW, cu[b] + l - nq[b], cu[b] + l));
    cuq.push(cuq[cuq.length - 1] + nq[b]);
  });
  const concat = (xs: Float32Array[]) => { const o = new Float32Array(xs.reduce((a, x) => a + x.length, 0)); let p = 0; for (const x of xs) { o.set(x, p); p += x.length; } return o; };
  const maxBlocks = Math.max(...layout.tables.map((t) => t.length));
  const table = layout.tables.flatMap((t) => [...t, ...new Array(maxBlocks - t.length).fill(0)]);
  const view = { blockSize: BS, blockTables: i32(table, [lens.length, maxBlocks]), contextLens: i32(lens, [lens.length]), maxContextLen: Math.max(...lens) };
  const tqq = up(concat(qRows), QW), tcuq = i32(cuq, [cuq.length]);
  const o = be.pagedAttention(tqq, layout.segments, view, tcuq, SHAPE);
  const err = maxRelErr(be.download(o), concat(want));
  for (const t of [tq, tk, tv, tcu, ref.o, ref.lse, tslots, pkT, pvT, view.blockTables, view.contextLens, tqq, tcuq, o] as Tensor[]) be.free(t);
  layout.free();
  return err;
}

for (const { name, make } of targets) {
  describe(`pagedAttention and kvCacheWrite (${name})`, () => {
    const tol = name === "cpu" ? 1e-5 : 2e-2;
    it("decode over a paged pool matches causal attention (sequences of 1, 17, 40 and 64 positions)", () => {
      const be = asDecodeBackend(make());
      const lens = [1, 17, 40, 64];
      assert.ok(check(be, lens, [1, 1, 1, 1], pagedLayout(be, lens, 11), 100) < tol);
    });
    it("prefill over a paged pool (many queries per sequence, causal within them) matches", () => {
      const be = asDecodeBackend(make());
      const lens = [23, 5, 33];
      assert.ok(check(be, lens, [23, 3, 10], pagedLayout(be, lens, 12), 200) < tol);
    });
    it("a context longer than one split (FlashDecoding merge on CUDA) matches", () => {
      const be = asDecodeBackend(make());
      const lens = [700, 3];
      assert.ok(check(be, lens, [1, 1], pagedLayout(be, lens, 13), 500) < tol);
    });
    it("decode and prefill over contiguous chunks of different sizes match", () => {
      const be = asDecodeBackend(make());
      assert.ok(check(be, [130], [1], chunkedLayout(be, 130), 300) < tol);
      assert.ok(check(be, [97], [50], chunkedLayout(be, 97), 400) < tol);
    });
    it("refuses a slot outside the cache", { skip: name !== "cpu" && "slots live on the device there" }, () => {
      const be = asDecodeBackend(make());
      const segs = segmentsOf(be, [BS]);
      const k = be.upload(randn(5, KW), [1, KW], "f32", "activations");
      const slots = be.upload(Int32Array.from([BS]), [1], "i32", "activations");
      assert.throws(() => be.kvCacheWrite(segs, BS, k, k, slots), /outside the cache/);
    });
  });
}
