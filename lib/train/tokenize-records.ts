// Records → token samples with a per-token target mask: chat through the model's chat template
// with loss on assistant tokens only (completion-only training), text with loss on every token.
// Over-long samples are truncated with a warning, or refused when asked.
import type { ChatMessage } from "../formats/tokenizer.js";
import type { TrainingRecord } from "./jsonl-dataset.js";

/** What the data pipeline needs from a tokenizer (lib/formats/tokenizer.ts provides it). */
export interface DataTokenizer {
  encode(text: string): number[];
  encodeChat(messages: ChatMessage[]): { ids: number[]; assistantMask: boolean[] };
  readonly eosTokenIds: readonly number[];
  readonly bosTokenId?: number | null;
}

export interface TokenSample {
  ids: number[];
  /** True where the token is a training target (its prediction from the previous token is scored). */
  targetMask: boolean[];
  line: number;
}

export interface TokenizeOptions {
  maxSeqLength: number;
  /** "truncate": cut and warn once; "refuse": throw naming the line. */
  overLength: "truncate" | "refuse";
  /** Train on assistant tokens only (default true); false scores the whole conversation. */
  completionOnly?: boolean;
  warn?: (message: string) => void;
}

export function tokenizeRecords(records: readonly TrainingRecord[], tok: DataTokenizer, opts: TokenizeOptions): TokenSample[] {
  const out: TokenSample[] = [];
  let truncated = 0, longest = 0;
  for (const r of records) {
    let ids: number[], mask: boolean[];
    if (r.kind === "chat") {
      const enc = tok.encodeChat(r.messages);
      ids = enc.ids;
      mask = opts.completionOnly === false ? enc.ids.map(() => true) : enc.assistantMask;
    } else {
      ids = tok.encode(r.text);
      if (tok.bosTokenId != null && ids[0] !== tok.bosTokenId) ids.unshift(tok.bosTokenId);
      if (tok.eosTokenIds.length > 0) ids.push(tok.eosTokenIds[0]);
      mask = ids.map(() => true);
    }
    if (ids.length > opts.maxSeqLength) {
      if (opts.overLength === "refuse")
        throw new Error(`tsloth: data line ${r.line} is ${ids.length} tokens, longer than max_seq_length ${opts.maxSeqLength}; raise --max_seq_length or allow truncation`);
      truncated++;
      longest = Math.max(longest, ids.length);
      ids = ids.slice(0, opts.maxSeqLength);
      mask = mask.slice(0, opts.maxSeqLength);
    }
    if (ids.length < 2 || !mask.slice(1).some(Boolean)) continue;
    out.push({ ids, targetMask: mask, line: r.line });
  }
  if (truncated > 0)
    opts.warn?.(`tsloth: ${truncated} sample(s) longer than max_seq_length ${opts.maxSeqLength} (longest ${longest} tokens) were truncated; raise --max_seq_length to keep them whole`);
  if (out.length === 0) throw new Error("tsloth: no sample has a token to train on after tokenization (are there assistant replies?)");
  return out;
}
