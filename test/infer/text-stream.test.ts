// Streaming text: pieces are emitted only when they end on a whole character, so multi-byte
// characters split over several byte-level tokens are never shown half-decoded, and the pieces add
// up to the full decode.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { Tokenizer } from "../../lib/formats/tokenizer.js";
import { resolveModelDir } from "../../lib/formats/resolve-model.js";
import { TextStream } from "../../lib/infer/text-stream.js";

describe("TextStream", () => {
  let tok: Tokenizer;
  before(async () => { tok = await Tokenizer.fromDir(resolveModelDir("tsloth-tiny")); });

  for (const text of ["héllo wörld — ça va? 日本語のテキスト 🙂👍🏽 done", "plain ascii text, nothing special"]) {
    it(`pieces of ${JSON.stringify(text.slice(0, 12))}… join to the full decode with no partial characters`, () => {
      const ids = tok.encode(text, { addSpecialTokens: false });
      const s = new TextStream(tok);
      const pieces = ids.map((id) => s.push(id));
      pieces.push(s.flush());
      assert.equal(pieces.join(""), tok.decode(ids, { skipSpecialTokens: true }));
      assert.ok(!pieces.some((p) => p.includes("\uFFFD")), `a piece held half a character: ${JSON.stringify(pieces)}`);
    });
  }

  it("a multi-byte character split across tokens is held back until complete", () => {
    const ids = tok.encode("🙂", { addSpecialTokens: false });
    assert.ok(ids.length > 1, "the tiny tokenizer spells the emoji with several byte tokens");
    const s = new TextStream(tok);
    const pieces = ids.map((id) => s.push(id));
    assert.deepEqual(pieces.slice(0, -1).filter((p) => p !== ""), []);
    assert.equal(pieces[pieces.length - 1], "🙂");
  });
});
