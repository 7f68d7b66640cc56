// KV-cache writes and causal attention over a block-organized cache (PagedAttention, Kwon et al.
// 2023), the reference for both cache layouts: a query row is scored against its sequence's cached
// positions block by block, one row of one head at a time, in f64.
import { f32ToBf16, f32ToF16 } from "../../formats/dtype.js";
import type { AttentionShape, KvBlockView, KvSegment, Tensor } from "../types.js";
import { asCpu, f32Data, i32Data, readF32, type CpuAlloc } from "./tensor.js";

const lastDim = (t: Tensor): number => t.shape[t.shape.length - 1];

/** Maps global block ids to (segment, first row) over segments laid end to end. */
export class SegmentLocator {
  private readonly firstBlock: number[] = [];
  readonly totalBlocks: number;
  constructor(readonly segments: readonly KvSegment[], readonly blockSize: number) {
    let n = 0;
    for (const s of segments) {
      const rows = s.k.shape[0];
      if (rows % blockSize !== 0 || s.v.shape[0] !== rows) throw new Error(`tsloth: a KV segment has ${rows} rows, not a multiple of the block size ${blockSize}`);
      this.firstBlock.push(n);
      n += rows / blockSize;
    }
    this.totalBlocks = n;
  }
  /** The segment index and row within it of a global slot (block id · blockSize + offset). */
  locate(slot: number): { seg: number; row: number } {
    const block = Math.floor(slot / this.blockSize);
    if (!(block >= 0 && block < this.totalBlocks)) throw new Error(`tsloth: KV slot ${slot} is outside the cache (${this.totalBlocks} blocks)`);
    let s = this.firstBlock.length - 1;
    while (this.firstBlock[s] > block) s--;
    return { seg: s, row: slot - this.firstBlock[s] * this.blockSize };
  }
}

function writeRow(dst: Tensor, row: number, values: Float32Array): void {
  const c = asCpu(dst);
  const w = values.length, off = row * w;
  if (c.dtype === "f32") (c.data as Float32Array).set(values, off);
  else if (c.dtype === "bf16") (c.data as Uint16Array).set(f32ToBf16(values), off);
  else if (c.dtype === "f16") (c.data as Uint16Array).set(f32ToF16(values), off);
  else throw new Error(`tsloth: KV storage must be a float tensor, found ${c.dtype}`);
}

export function kvCacheWrite(segments: readonly KvSegment[], blockSize: number, k: Tensor, v: Tensor, slots: Tensor): void {
  const loc = new SegmentLocator(segments, blockSize);
  const sl = i32Data(slots);
  const w = lastDim(k);
  if (segments.length > 0 && lastDim(segments[0].k) !== w) throw new Error(`tsloth: KV rows are ${lastDim(segments[0].k)} wide, new keys ${w}`);
  const ks = readF32(k), vs = readF32(v);
  for (let t = 0; t < sl.length; t++) {
    const { seg, row } = loc.locate(sl[t]);
    writeRow(segments[seg].k, row, ks.subarray(t * w, (t + 1) * w));
    writeRow(segments[seg].v, row, vs.subarray(t * w, (t + 1) * w));
  }
}

export function pagedAttention(
  al: CpuAlloc, q: Tensor, segments: readonly KvSegment[], view: KvBlockView, cuQueryLens: Tensor, s: AttentionShape,
): Tensor {
  const { numHeads: hq, numKvHeads: hkv, headDim: d, scale } = s;
  if (hq % hkv !== 0) throw new Error(`tsloth: ${hq} query heads is not a multiple of ${hkv} kv heads`);
  const bs = view.blockSize;
  const loc = new SegmentLocator(segments, bs);
  const kData = segments.map((g) => readF32(g.k)), vData = segments.map((g) => readF32(g.v));
  const tables = i32Data(view.blockTables), lens = i32Data(view.contextLens), cu = i32Data(cuQueryLens);
  const B = lens.length, maxBlocks = view.blockTables.shape[1] ?? 0;
  const T = q.shape[0], qw = hq * d, kw = hkv * d, group = hq / hkv;
  if (cu.length !== B + 1 || cu[0] !== 0 || cu[B] !== T) throw new Error(`tsloth: cuQueryLens must run from 0 to ${T} over ${B} sequences`);
  const qs = readF32(q);
  const o = al.out([T, qw]);
  const od = f32Data(o);
  const acc = new Float64Array(d);
  let scores = new Float64Array(0);
  let where = new Int32Array(0);
  for (let b = 0; b < B; b++) {
    const n = cu[b + 1] - cu[b], len = lens[b];
    if (n > len) throw new Error(`tsloth: sequence ${b} has ${n} queries but only ${len} cached positions`);
    if (Math.ceil(len / bs) > maxBlocks) throw new Error(`tsloth: sequence ${b} needs ${Math.ceil(len / bs)} blocks, its table has ${maxBlocks}`);
    // Segment and row of every cached position of this sequence, resolved once for all heads.
    if (where.length < 2 * len) where = new Int32Array(2 * len);
    for (let p = 0; p < len; p++) {
      const { seg, row } = loc.locate(tables[b * maxBlocks + Math.floor(p / bs)] * bs + (p % bs));
      where[2 * p] = seg;
      where[2 * p + 1] = row;
    }
    if (scores.length < len) scores = new Float64Array(len);
    for (let i = 0; i < n; i++) {
      const t = cu[b] + i, pos = len - n + i;
      for (let h = 0; h < hq; h++) {
        const qo = t * qw + h * d, kvo = Math.floor(h / group) * d;
        let max = -Infinity;
        for (let p = 0; p <= pos; p++) {
          const ks = kData[where[2 * p]], ko = where[2 * p + 1] * kw + kvo;
          let dot = 0;
          for (let j = 0; j < d; j++) dot += qs[qo + j] * ks[ko + j];
          scores[p] = dot * scale;
          if (scores[p] > max) max = scores[p];
        }
        let sum = 0;
        acc.fill(0);
        for (let p = 0; p <= pos; p++) {
          const e = Math.exp(scores[p] - max);
          sum += e;
          const vs = vData[where[2 * p]], vo = where[2 * p + 1] * kw + kvo;
          for (let j = 0; j < d; j++) acc[j] += e * vs[vo + j];
        }
        for (let j = 0; j < d; j++) od[qo + j] = acc[j] / sum;
      }
    }
  }
  return o;
}
