// Cross-entropy fused with the LM head, a chunk of tokens at a time, so [T, vocab] logits are never
// held at once (the chunked loss of Unsloth / Liger-Kernel). Ignored rows (label −100) cost nothing.
import type { Tensor } from "../types.js";
import { matmulNN, matmulNT } from "./matmul.js";
import { f32Data, i32Data, readF32, type CpuAlloc } from "./tensor.js";

export const IGNORE_INDEX = -100;

function activeRows(labels: Int32Array): Int32Array {
  let n = 0;
  for (const l of labels) if (l !== IGNORE_INDEX) n++;
  const rows = new Int32Array(n);
  n = 0;
  for (let t = 0; t < labels.length; t++) if (labels[t] !== IGNORE_INDEX) rows[n++] = t;
  return rows;
}

function gatherRows(hs: Float32Array, rows: Int32Array, from: number, to: number, width: number, out: Float32Array): void {
  for (let r = from; r < to; r++) out.set(hs.subarray(rows[r] * width, rows[r] * width + width), (r - from) * width);
}

export function crossEntropyLmHead(al: CpuAlloc, h: Tensor, head: Tensor, labels: Tensor, chunkTokens: number): { lossSum: Tensor; lse: Tensor } {
  const [vocab, width] = head.shape;
  const hs = readF32(h), w = readF32(head), lab = i32Data(labels);
  const T = lab.length;
  const rows = activeRows(lab);
  const lse = al.out([T]);
  const ld = f32Data(lse);
  const chunk = Math.max(1, Math.min(chunkTokens, rows.length));
  const hChunk = new Float32Array(chunk * width);
  const logitsBuf = al.scratch(chunk * vocab);
  const logits = f32Data(logitsBuf);
  let lossSum = 0;
  for (let c0 = 0; c0 < rows.length; c0 += chunk) {
    const c1 = Math.min(rows.length, c0 + chunk);
    const n = c1 - c0;
    gatherRows(hs, rows, c0, c1, width, hChunk);
    matmulNT(hChunk, w, logits, n, vocab, width);
    for (let r = 0; r < n; r++) {
      const o = r * vocab;
      let max = -Infinity;
      for (let v = 0; v < vocab; v++) if (logits[o + v] > max) max = logits[o + v];
      let sum = 0;
      for (let v = 0; v < vocab; v++) sum += Math.exp(logits[o + v] - max);
      const l = max + Math.log(sum);
      const t = rows[c0 + r];
      const label = lab[t];
      if (label < 0 || label >= vocab) throw new Error(`tsloth: label ${label} outside the vocabulary (size ${vocab})`);
      ld[t] = l;
      lossSum += l - logits[o + label];
    }
  }
  al.free(logitsBuf);
  const ls = al.out([1]);
  f32Data(ls)[0] = lossSum;
  return { lossSum: ls, lse };
}

export function crossEntropyLmHeadBackward(
  al: CpuAlloc, h: Tensor, head: Tensor, labels: Tensor, lse: Tensor, gradScale: number, chunkTokens: number,
): Tensor {
  const [vocab, width] = head.shape;
  const hs = readF32(h), w = readF32(head), lab = i32Data(labels), ld = readF32(lse);
  const rows = activeRows(lab);
  const dh = al.out(h.shape);
  const dd = f32Data(dh);
  const chunk = Math.max(1, Math.min(chunkTokens, rows.length));
  const hChunk = new Float32Array(chunk * width);
  const logitsBuf = al.scratch(chunk * vocab);
  const logits = f32Data(logitsBuf);
  const dChunk = new Float32Array(chunk * width);
  for (let c0 = 0; c0 < rows.length; c0 += chunk) {
    const c1 = Math.min(rows.length, c0 + chunk);
    const n = c1 - c0;
    gatherRows(hs, rows, c0, c1, width, hChunk);
    matmulNT(hChunk, w, logits, n, vocab, width);
    for (let r = 0; r < n; r++) {
      const o = r * vocab;
      const t = rows[c0 + r];
      const l = ld[t];
      for (let v = 0; v < vocab; v++) logits[o + v] = Math.exp(logits[o + v] - l) * gradScale;
      logits[o + lab[t]] -= gradScale;
    }
    matmulNN(logits, w, dChunk, n, width, vocab);
    for (let r = 0; r < n; r++) dd.set(dChunk.subarray(r * width, r * width + width), rows[c0 + r] * width);
  }
  al.free(logitsBuf);
  return dh;
}

/** The spec of the training form: the loss of crossEntropyLmHead and the dh of its backward. */
export function crossEntropyLmHeadAndGrad(
  al: CpuAlloc, h: Tensor, head: Tensor, labels: Tensor, gradScale: number, chunkTokens: number,
): { lossSum: Tensor; dh: Tensor } {
  const { lossSum, lse } = crossEntropyLmHead(al, h, head, labels, chunkTokens);
  const dh = crossEntropyLmHeadBackward(al, h, head, labels, lse, gradScale, chunkTokens);
  al.free(lse);
  return { lossSum, dh };
}

export function lmHeadLogits(al: CpuAlloc, h: Tensor, head: Tensor): Tensor {
  const [vocab, width] = head.shape;
  const hs = readF32(h);
  const t = hs.length / width;
  const y = al.out([t, vocab]);
  matmulNT(hs, readF32(head), f32Data(y), t, vocab, width);
  return y;
}
