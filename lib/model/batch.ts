// A packed micro-batch: samples laid end to end without padding, with per-token positions that
// restart at each sample and FlashAttention-style cumulative sequence lengths.
export interface PackedBatch {
  ids: Int32Array;
  /** Next-token targets per position (already shifted); −100 where no loss is taken. */
  labels: Int32Array;
  positions: Int32Array;
  /** [samples + 1], from 0 to ids.length. */
  cuSeqlens: Int32Array;
}

export const IGNORE_INDEX = -100;

/**
 * Packs samples given as token ids and a per-token loss mask (true where the token is a target).
 * Labels are shifted inside each sample: position t predicts token t+1 of the same sample, so no
 * sample learns to predict the next one's first token.
 */
export function packSamples(samples: readonly { ids: ArrayLike<number>; targetMask?: ArrayLike<boolean> }[]): PackedBatch {
  let total = 0;
  for (const s of samples) total += s.ids.length;
  const ids = new Int32Array(total), labels = new Int32Array(total).fill(IGNORE_INDEX), positions = new Int32Array(total);
  const cuSeqlens = new Int32Array(samples.length + 1);
  let o = 0;
  samples.forEach((s, b) => {
    const n = s.ids.length;
    for (let t = 0; t < n; t++) {
      ids[o + t] = s.ids[t];
      positions[o + t] = t;
      if (t + 1 < n && (!s.targetMask || s.targetMask[t + 1])) labels[o + t] = s.ids[t + 1];
    }
    o += n;
    cuSeqlens[b + 1] = o;
  });
  return { ids, labels, positions, cuSeqlens };
}

export function countTargets(labels: Int32Array): number {
  let n = 0;
  for (const l of labels) if (l !== IGNORE_INDEX) n++;
  return n;
}
