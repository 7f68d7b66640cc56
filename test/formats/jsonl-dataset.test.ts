import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDatasetLine, readJsonlDataset } from "../../lib/formats/jsonl-dataset.js";

describe("JSONL datasets", () => {
  it("reads chats and texts, skipping blank lines", () => {
    const p = join(mkdtempSync(join(tmpdir(), "tsloth-jsonl-")), "d.jsonl");
    writeFileSync(p, `{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n\n{"text": "plain"}\n`);
    assert.deepEqual(readJsonlDataset(p), [
      { kind: "chat", messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "hello" }] },
      { kind: "text", text: "plain" },
    ]);
  });
  it("names the file and line of a bad example", () => {
    const p = join(mkdtempSync(join(tmpdir(), "tsloth-jsonl-")), "d.jsonl");
    writeFileSync(p, `{"text": "ok"}\n{"prompt": "x"}\n`);
    assert.throws(() => readJsonlDataset(p), new RegExp(`${p}:2: expected \\{"messages": \\[...\\]\\} or \\{"text": "..."\\}`));
    assert.throws(() => parseDatasetLine(`{"messages": [{"role": "user", "content": "q"}]}`, "f:1"), /f:1: a chat needs at least one assistant message/);
    assert.throws(() => parseDatasetLine(`{"messages": [{"role": "bot", "content": "q"}]}`, "f:3"), /f:3: messages\[0\] has role "bot"/);
    assert.throws(() => parseDatasetLine(`{"messages": [{"role": "user"}]}`, "f:4"), /f:4: messages\[0\] must be/);
    assert.throws(() => parseDatasetLine(`{oops`, "f:5"), /f:5: not valid JSON/);
  });
});
