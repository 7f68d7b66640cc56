// tsloth's tokenizer against the `tokenizers` Python package (test/py/check_formats_tokenizers.py)
// on a few hundred varied strings, for the shipped tokenizer and two more layouts real models use.
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assetPath } from "../../lib/paths.js";
import { Tokenizer } from "../../lib/formats/tokenizer.js";
import { referenceSkip, runReference } from "./reference-python.js";

const skip = referenceSkip(["tokenizers"]);

const FRAGMENTS = [
  "Hello, world!", "The weather was warm.", "  leading spaces", "trailing spaces   ", "tabs\tand\t\ttabs",
  "new\nline", "\n\n\n", "\r\n windows \r\n", "a    b     c", " ", "", "I'm", "you'll", "DON'T", "we've", "they'd",
  "12345678", "3.14159", "1,000,000", "v2.0.1", "x^2 + y^2 = z^2", "café", "naïve", "Ünïcödé", "ßtraße", "日本語のテキスト",
  "中文字符", "العربية", "עברית", "русский текст", "Ελληνικά", "हिन्दी", "🦥", "🙂🙃", "👩‍💻", "🇫🇷", "e\u0301", "\u00a0nbsp\u00a0",
  "\u200bzero-width", "def add(a, b):\n    return a + b\n", "const x = [1, 2, 3].map((v) => v * 2);", "if (a && b || !c) { return; }",
  "<html><body>tag</body></html>", "SELECT * FROM t WHERE id = 42;", "path/to/file.txt", "https://example.com/a?b=c",
  "email@example.com", "#include <stdio.h>", "$HOME && ~/dir", "«quoted»", "“curly” ‘quotes’", "—dash–", "…", "©®™",
  "<|im_start|>user", "<|im_end|>", "<s>", "</s>", "<|begin_of_text|>", "<unk>", "<0x41>", "Tilde lives in Mossvale.",
];

/** Deterministic mixtures of the fragments, so every run checks the same few hundred strings. */
function testStrings(): string[] {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const out = [...FRAGMENTS];
  while (out.length < 300) {
    const n = 1 + Math.floor(rand() * 4);
    const seps = [" ", "", "\n", "  ", "\t", " \n "];
    let s = "";
    for (let i = 0; i < n; i++) s += (i ? seps[Math.floor(rand() * seps.length)] : "") + FRAGMENTS[Math.floor(rand() * FRAGMENTS.length)];
    out.push(s);
  }
  return out;
}

interface Row {
  with: number[];
  without: number[];
  decoded: string;
}

describe("tokenizer ids match the tokenizers package", { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), "tsloth-ref-tok-"));
  const strings = testStrings();
  const dirs = [assetPath("tsloth-tiny"), join(dir, "spm-bytefallback"), join(dir, "regex-bytelevel")];
  let reference: Record<string, Row[]> = {};
  before(() => {
    runReference("check_formats_tokenizers.py", ["make", dir]);
    writeFileSync(join(dir, "strings.json"), JSON.stringify(strings));
    runReference("check_formats_tokenizers.py", ["encode", join(dir, "strings.json"), join(dir, "ids.json"), ...dirs]);
    reference = JSON.parse(readFileSync(join(dir, "ids.json"), "utf8"));
  });

  for (const [i, label] of ["the shipped byte-level BPE", "a Llama 2 style metaspace BPE with byte fallback", "a Llama 3 style regex split + byte-level BPE"].entries()) {
    it(`gives the same ids and text for ${label} on ${strings.length} strings`, async () => {
      const tok = await Tokenizer.fromDir(dirs[i]!);
      const rows = reference[dirs[i]!]!;
      assert.equal(rows.length, strings.length);
      const mismatches: string[] = [];
      strings.forEach((s, j) => {
        const ref = rows[j]!;
        const withSpecial = tok.encode(s);
        const without = tok.encode(s, { addSpecialTokens: false });
        const decoded = tok.decode(ref.with, { skipSpecialTokens: true });
        if (JSON.stringify(withSpecial) !== JSON.stringify(ref.with)) mismatches.push(`${JSON.stringify(s)}: ids ${JSON.stringify(withSpecial)} != ${JSON.stringify(ref.with)}`);
        else if (JSON.stringify(without) !== JSON.stringify(ref.without)) mismatches.push(`${JSON.stringify(s)}: ids without special tokens differ`);
        else if (decoded !== ref.decoded) mismatches.push(`${JSON.stringify(s)}: decoded ${JSON.stringify(decoded)} != ${JSON.stringify(ref.decoded)}`);
      });
      assert.deepEqual(mismatches.slice(0, 5), [], `${mismatches.length} of ${strings.length} strings differ`);
    });
  }
});

describe("chat templates render as transformers renders them", { skip: referenceSkip(["transformers"]) }, () => {
  it("gives apply_chat_template's text, generation prompt and ids for the shipped model", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsloth-ref-chat-"));
    const chats = [
      [{ role: "user", content: "Where does Tilde live?" }, { role: "assistant", content: "Tilde lives in Mossvale." }],
      [{ role: "system", content: "Answer briefly." }, { role: "user", content: "Hi! 🦥" }, { role: "assistant", content: "Hello." },
        { role: "user", content: "Two  spaces\nand a newline?" }, { role: "assistant", content: "def f():\n    return 1" }],
    ];
    writeFileSync(join(dir, "chats.json"), JSON.stringify(chats));
    runReference("check_formats_tokenizers.py", ["chat", join(dir, "chats.json"), join(dir, "out.json"), assetPath("tsloth-tiny")]);
    const ref = JSON.parse(readFileSync(join(dir, "out.json"), "utf8")) as { text: string; prompt: string; ids: number[] }[];
    const tok = await Tokenizer.fromDir(assetPath("tsloth-tiny"));
    chats.forEach((messages, i) => {
      assert.equal(tok.applyChatTemplate(messages), ref[i]!.text);
      assert.equal(tok.applyChatTemplate(messages.slice(0, -1), { addGenerationPrompt: true }), ref[i]!.prompt);
      assert.deepEqual(tok.encodeChat(messages).ids, ref[i]!.ids);
    });
  });
});
