// Greedy decoding with a plain loop: each new token re-runs the whole sequence (no KV cache). Simple
// and exact, and quadratic in the output length: it is the reference the cached decoder
// (decode-loop.ts) is tested against, not what generate uses.
import type { LlamaModel } from "../model/llama.js";

export interface GreedyOptions {
  maxNewTokens: number;
  /** Stop when one of these is produced (it is included in the output). */
  eosTokenIds: readonly number[];
  signal?: AbortSignal;
  /** Called with each new token id. */
  onToken?: (id: number) => void;
}

export function argmax(values: Float32Array, from = 0, to = values.length): number {
  let best = from;
  for (let i = from + 1; i < to; i++) if (values[i] > values[best]) best = i;
  return best - from;
}

/** New token ids after the prompt. */
export async function greedyDecode(model: LlamaModel, promptIds: readonly number[], o: GreedyOptions): Promise<number[]> {
  if (promptIds.length === 0) throw new Error("tsloth: the prompt is empty; greedy decoding needs at least one token");
  const ids = [...promptIds];
  const out: number[] = [];
  for (let k = 0; k < o.maxNewTokens; k++) {
    if (o.signal?.aborted) break;
    const next = argmax(model.lastTokenLogits(Int32Array.from(ids)));
    ids.push(next);
    out.push(next);
    o.onToken?.(next);
    if (o.eosTokenIds.includes(next)) break;
    await new Promise<void>((r) => setImmediate(r));
  }
  return out;
}
