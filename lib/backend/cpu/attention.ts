// Causal attention with grouped-query heads over packed sequences, one query row at a time
// (scores for a single row of a single head are all that is ever held), FlashAttention-2's
// backward recomputing probabilities from the saved log-sum-exp (Dao 2023).
import type { AttentionShape, Tensor } from "../types.js";
import { f32Data, i32Data, readF32, type CpuAlloc } from "./tensor.js";

function checkShapes(q: Tensor, k: Tensor, cu: Int32Array, s: AttentionShape): number {
  const t = q.shape[0];
  if (s.numHeads % s.numKvHeads !== 0) throw new Error(`tsloth: ${s.numHeads} query heads is not a multiple of ${s.numKvHeads} kv heads`);
  if (q.shape[1] !== s.numHeads * s.headDim || k.shape[1] !== s.numKvHeads * s.headDim) throw new Error("tsloth: attention q/k widths do not match the head shape");
  if (cu[0] !== 0 || cu[cu.length - 1] !== t) throw new Error(`tsloth: cuSeqlens must run from 0 to ${t}, found ${cu[0]}..${cu[cu.length - 1]}`);
  return t;
}

export function attention(al: CpuAlloc, q: Tensor, k: Tensor, v: Tensor, cuSeqlens: Tensor, s: AttentionShape): { o: Tensor; lse: Tensor } {
  const cu = i32Data(cuSeqlens);
  const T = checkShapes(q, k, cu, s);
  const { numHeads: hq, numKvHeads: hkv, headDim: d, scale } = s;
  const group = hq / hkv;
  const qs = readF32(q), ks = readF32(k), vs = readF32(v);
  const o = al.out([T, hq * d]);
  const lse = al.out([hq, T]);
  const od = f32Data(o), ld = f32Data(lse);
  const qw = hq * d, kw = hkv * d;
  const acc = new Float64Array(d);
  let scores = new Float64Array(0);
  for (let b = 0; b + 1 < cu.length; b++) {
    const start = cu[b], end = cu[b + 1];
    if (scores.length < end - start) scores = new Float64Array(end - start);
    for (let h = 0; h < hq; h++) {
      const kvo = Math.floor(h / group) * d;
      for (let t = start; t < end; t++) {
        const qo = t * qw + h * d;
        let max = -Infinity;
        for (let j = start; j <= t; j++) {
          const ko = j * kw + kvo;
          let dot = 0;
          for (let i = 0; i < d; i++) dot += qs[qo + i] * ks[ko + i];
          const sc = dot * scale;
          scores[j - start] = sc;
          if (sc > max) max = sc;
        }
        let sum = 0;
        acc.fill(0);
        for (let j = start; j <= t; j++) {
          const p = Math.exp(scores[j - start] - max);
          sum += p;
          const vo = j * kw + kvo;
          for (let i = 0; i < d; i++) acc[i] += p * vs[vo + i];
        }
        for (let i = 0; i < d; i++) od[qo + i] = acc[i] / sum;
        ld[h * T + t] = max + Math.log(sum);
      }
    }
  }
  return { o, lse };
}

export function attentionBackward(
  al: CpuAlloc, dO: Tensor, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, cuSeqlens: Tensor, s: AttentionShape,
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const cu = i32Data(cuSeqlens);
  const T = checkShapes(q, k, cu, s);
  const { numHeads: hq, numKvHeads: hkv, headDim: d, scale } = s;
  const group = hq / hkv;
  const qs = readF32(q), ks = readF32(k), vs = readF32(v), os = readF32(o), g = readF32(dO), ls = readF32(lse);
  const qw = hq * d, kw = hkv * d;
  const dq = al.out([T, qw]), dk = al.out([T, kw]), dv = al.out([T, kw]);
  const dqd = f32Data(dq);
  // k/v gradients sum over many query rows and heads: accumulate in f64.
  const dkAcc = new Float64Array(T * kw), dvAcc = new Float64Array(T * kw);
  const dqRow = new Float64Array(d);
  for (let b = 0; b + 1 < cu.length; b++) {
    const start = cu[b], end = cu[b + 1];
    for (let h = 0; h < hq; h++) {
      const kvo = Math.floor(h / group) * d;
      for (let t = start; t < end; t++) {
        const qo = t * qw + h * d;
        let delta = 0;
        for (let i = 0; i < d; i++) delta += g[qo + i] * os[qo + i];
        const l = ls[h * T + t];
        dqRow.fill(0);
        for (let j = start; j <= t; j++) {
          const ko = j * kw + kvo;
          let dot = 0, dp = 0;
          for (let i = 0; i < d; i++) {
            dot += qs[qo + i] * ks[ko + i];
            dp += g[qo + i] * vs[ko + i];
          }
          const p = Math.exp(dot * scale - l);
          const ds = p * (dp - delta) * scale;
          for (let i = 0; i < d; i++) {
            dqRow[i] += ds * ks[ko + i];
            dkAcc[ko + i] += ds * qs[qo + i];
            dvAcc[ko + i] += p * g[qo + i];
          }
        }
        for (let i = 0; i < d; i++) dqd[qo + i] = dqRow[i];
      }
    }
  }
  f32Data(dk).set(dkAcc);
  f32Data(dv).set(dvAcc);
  return { dq, dk, dv };
}
