// Incremental detokenization for streaming: a token may end in the middle of a multi-byte character
// (byte-level BPE), and some tokenizers change a piece's text depending on what precedes it. So the
// text is decoded over a short window of recent tokens and only what follows the previously
// emitted text is emitted, and only once it no longer ends in U+FFFD (an incomplete character).
// The same scheme as Hugging Face text-generation-inference's decode_token.
export interface Detokenizer {
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
}

export class TextStream {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(private readonly tok: Detokenizer) {}

  private text(from: number, to: number): string {
    if (to <= from) return "";
    return this.tok.decode(this.ids.slice(from, to), { skipSpecialTokens: true });
  }

  /** Adds a token; returns the new complete text ("" while a character is still incomplete). */
  push(id: number): string {
    this.ids.push(id);
    const prefix = this.text(this.prefixOffset, this.readOffset);
    const full = this.text(this.prefixOffset, this.ids.length);
    if (full.length > prefix.length && !full.endsWith("\uFFFD")) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return full.slice(prefix.length);
    }
    return "";
  }

  /** Whatever is still held back at the end (an incomplete character decodes as U+FFFD). */
  flush(): string {
    const prefix = this.text(this.prefixOffset, this.readOffset);
    const full = this.text(this.prefixOffset, this.ids.length);
    this.prefixOffset = this.readOffset = this.ids.length;
    return full.length > prefix.length ? full.slice(prefix.length) : "";
  }
}
