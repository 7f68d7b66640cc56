// Choosing the next token from logits, in the order Hugging Face's generate applies its processors:
// repetition penalty (Keskar et al. 2019, CTRL), then temperature, top-k, top-p (nucleus sampling,
// Holtzman et al. 2020), then a seeded draw. Temperature 0 is greedy (argmax after the penalty).
import { Rng } from "../model/random.js";

export interface SamplingOptions {
  /** 0 (default): greedy. Otherwise logits are divided by it before sampling. */
  temperature?: number;
  /** Keep the k most likely tokens (0: all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1: all). */
  topP?: number;
  /** > 1 discourages tokens already in the prompt or output (1: off). */
  repetitionPenalty?: number;
  /** Seed of the draws (default 3407). */
  seed?: number;
}

export interface ResolvedSampling {
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  seed: number;
}

export function resolveSampling(o: SamplingOptions): ResolvedSampling {
  const temperature = o.temperature ?? 0, topK = o.topK ?? 0, topP = o.topP ?? 1, repetitionPenalty = o.repetitionPenalty ?? 1;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new Error(`tsloth: --temperature must be 0 (greedy) or positive, found ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0) throw new Error(`tsloth: --top_k must be a non-negative integer (0 keeps every token), found ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new Error(`tsloth: --top_p must be in (0, 1], found ${topP}`);
  if (!(repetitionPenalty > 0) || !Number.isFinite(repetitionPenalty)) throw new Error(`tsloth: --repetition_penalty must be positive (1 is off), found ${repetitionPenalty}`);
  const seed = o.seed ?? 3407;
  if (!Number.isInteger(seed)) throw new Error(`tsloth: --seed must be an integer, found ${seed}`);
  return { temperature, topK, topP, repetitionPenalty, seed };
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0, bestValue = values[0];
  for (let i = 1; i < values.length; i++) {
    const v = values[i];
    if (v > bestValue) { best = i; bestValue = v; }
  }
  return best;
}

/** What the decoder asks for each new token: a choice from one row of logits and the ids seen so far. */
export interface TokenPicker {
  pick(logitsRow: Float32Array, seen: readonly number[]): number;
  /** True when pick is the plain argmax of the row: the decoder may then pick on the device. */
  readonly argmaxOnly?: boolean;
}

export class Sampler implements TokenPicker {
  private readonly rng: Rng;
  constructor(readonly options: ResolvedSampling) {
    this.rng = new Rng(options.seed);
  }

  get greedy(): boolean {
    return this.options.temperature === 0;
  }

  get argmaxOnly(): boolean {
    return this.options.temperature === 0 && this.options.repetitionPenalty === 1;
  }

  /** The next token given one row of logits and the ids seen so far (prompt and output). */
  pick(logitsRow: Float32Array, seen: readonly number[]): number {
    const { temperature, topK, topP, repetitionPenalty } = this.options;
    // Plain greedy needs no copy: a 128K-entry vocabulary would cost as much as the argmax.
    if (this.argmaxOnly) return argmax(logitsRow);
    const logits = Float64Array.from(logitsRow);
    if (repetitionPenalty !== 1) {
      // CTRL's penalty as HF applies it: once per distinct seen token, dividing positive logits and
      // multiplying negative ones.
      for (const id of new Set(seen)) logits[id] = logits[id] < 0 ? logits[id] * repetitionPenalty : logits[id] / repetitionPenalty;
    }
    if (temperature === 0) return argmax(logits);
    // Only tokens within 30 nats of the best can carry probability (e^-30 ≈ 1e-13 each), so the
    // sort runs over those instead of a 128K vocabulary per token.
    const best = logits[argmax(logits)];
    const candidates: number[] = [];
    for (let i = 0; i < logits.length; i++) if ((best - logits[i]) / temperature < 30) candidates.push(i);
    const order = candidates.sort((a, b) => logits[b] - logits[a] || a - b);
    const keep = topK > 0 ? Math.min(topK, order.length) : order.length;
    const max = logits[order[0]];
    const probs = new Float64Array(keep);
    let sum = 0;
    for (let i = 0; i < keep; i++) sum += probs[i] = Math.exp((logits[order[i]] - max) / temperature);
    // Nucleus: the smallest prefix (by probability) whose mass reaches topP, at least one token.
    let n = keep;
    if (topP < 1) {
      let cum = 0;
      for (let i = 0; i < keep; i++) {
        cum += probs[i] / sum;
        if (cum >= topP) { n = i + 1; break; }
      }
    }
    let mass = 0;
    for (let i = 0; i < n; i++) mass += probs[i];
    let r = this.rng.next() * mass;
    for (let i = 0; i < n; i++) {
      r -= probs[i];
      if (r < 0) return order[i];
    }
    return order[n - 1];
  }
}
