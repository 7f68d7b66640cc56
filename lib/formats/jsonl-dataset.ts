// The training data format: JSON Lines, one example per line, either a chat
//   {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}
// (roles system/user/assistant; rendered with the model's chat template, loss on assistant tokens)
// or a plain text {"text": "..."} (loss on every token). Blank lines are skipped.
import { readFileSync } from "node:fs";
import type { ChatMessage } from "./tokenizer.js";

export type DatasetExample = { kind: "chat"; messages: ChatMessage[] } | { kind: "text"; text: string };

const ROLES = new Set(["system", "user", "assistant", "tool"]);

/** Parses one line; `where` ("file:line") prefixes every error. */
export function parseDatasetLine(line: string, where: string): DatasetExample {
  let row: unknown;
  try {
    row = JSON.parse(line);
  } catch (e) {
    throw new Error(`tsloth: ${where}: not valid JSON (${(e as Error).message})`);
  }
  const r = row as { messages?: unknown; text?: unknown };
  if (typeof r === "object" && r !== null && Array.isArray(r.messages)) {
    const messages = r.messages.map((m, i) => {
      const msg = m as { role?: unknown; content?: unknown };
      if (typeof msg !== "object" || msg === null || typeof msg.role !== "string" || typeof msg.content !== "string")
        throw new Error(`tsloth: ${where}: messages[${i}] must be {"role": string, "content": string}, found ${JSON.stringify(m)}`);
      if (!ROLES.has(msg.role)) throw new Error(`tsloth: ${where}: messages[${i}] has role "${msg.role}"; expected system, user, assistant or tool`);
      return { role: msg.role, content: msg.content };
    });
    if (!messages.some((m) => m.role === "assistant")) throw new Error(`tsloth: ${where}: a chat needs at least one assistant message to learn from`);
    return { kind: "chat", messages };
  }
  if (typeof r === "object" && r !== null && typeof r.text === "string") return { kind: "text", text: r.text };
  throw new Error(`tsloth: ${where}: expected {"messages": [...]} or {"text": "..."}, found ${line.slice(0, 80)}`);
}

/** Reads a whole JSONL dataset (datasets for LoRA fine-tuning are small next to the model). */
export function readJsonlDataset(path: string): DatasetExample[] {
  const lines = readFileSync(path, "utf8").split("\n");
  const out: DatasetExample[] = [];
  lines.forEach((line, i) => {
    if (line.trim()) out.push(parseDatasetLine(line, `${path}:${i + 1}`));
  });
  if (out.length === 0) throw new Error(`tsloth: ${path} holds no examples; expected one JSON object per line`);
  return out;
}
