// complete_request, inspect_request (type-aware, through the TypeScript language service) and
// is_complete_request (through the transpiler's parse).
import { findLineMagics } from "../magics/cell-syntax.js";
import { magicHelp } from "../magics/help.js";
import { listMagics, lookupMagic } from "../magics/registry.js";
import { codePointsToUtf16, utf16ToCodePoints } from "../exec/positions.js";
import { completeness } from "../exec/transpile.js";
import type { Handler } from "./types.js";

const codeAndCursor = (content: Record<string, unknown>) => {
  const code = typeof content.code === "string" ? content.code : "";
  const points = typeof content.cursor_pos === "number" ? content.cursor_pos : [...code].length;
  return { code, cursor: codePointsToUtf16(code, points) };
};

export const complete: Handler = async (request, kernel) => {
  await kernel.magicsReady;
  const { code, cursor } = codeAndCursor(request.content);
  const before = code.slice(0, cursor);
  const option = /(^|\n)\s*(?:[\w$]+\s*=\s*)?%%?(\w+)\s(?:[^\n]*\s)?--([\w-]*)$/.exec(before);
  const optionsOf = option ? lookupMagic(option[2])?.options : undefined;
  if (option && optionsOf) {
    const word = option[3];
    const matches = optionsOf.filter((o) => o.name.startsWith(word.replace(/-/g, "_"))).map((o) => `--${o.name}`);
    const start = cursor - word.length - 2;
    request.reply("complete_reply", {
      status: "ok", matches, cursor_start: utf16ToCodePoints(code, start), cursor_end: utf16ToCodePoints(code, cursor), metadata: {},
    });
    return;
  }
  const magic = /(^|\n)\s*(?:[\w$]+\s*=\s*)?(%%?)(\w*)$/.exec(before);
  if (magic) {
    const word = magic[3];
    const matches = listMagics().filter((m) => m.name.startsWith(word)).map((m) => magic[2] + m.name);
    const start = cursor - word.length - magic[2].length;
    request.reply("complete_reply", {
      status: "ok", matches, cursor_start: utf16ToCodePoints(code, start), cursor_end: utf16ToCodePoints(code, cursor), metadata: {},
    });
    return;
  }
  const result = kernel.language.complete(code, cursor);
  request.reply("complete_reply", {
    status: "ok",
    matches: result.matches,
    cursor_start: utf16ToCodePoints(code, result.start),
    cursor_end: utf16ToCodePoints(code, result.end),
    metadata: {
      _jupyter_types_experimental: result.types.map((t) => ({
        text: t.text, type: t.type, start: utf16ToCodePoints(code, result.start), end: utf16ToCodePoints(code, result.end),
      })),
    },
  });
};

export const inspect: Handler = async (request, kernel) => {
  await kernel.magicsReady;
  const { code, cursor } = codeAndCursor(request.content);
  const magicName = /%%?(\w+)$/.exec(code.slice(0, cursor) + (/^\w*/.exec(code.slice(cursor))?.[0] ?? ""))?.[1];
  const magic = magicName ? lookupMagic(magicName) : undefined;
  const text = magic ? magicHelp(magic) : kernel.language.inspect(code, cursor);
  request.reply("inspect_reply", {
    status: "ok",
    found: text !== undefined,
    data: text === undefined ? {} : magic ? { "text/plain": text } : { "text/plain": text, "text/markdown": "```typescript\n" + text + "\n```" },
    metadata: {},
  });
};

export const isComplete: Handler = (request) => {
  const code = typeof request.content.code === "string" ? request.content.code : "";
  const magicLines = new Set(findLineMagics(code).map((m) => m.line));
  if (/^\s*%%/.test(code)) {
    // A cell magic's body ends with an empty line, as in IPython's console.
    const done = /\n[^]*\n\s*$/.test(code);
    request.reply("is_complete_reply", done ? { status: "complete" } : { status: "incomplete", indent: "" });
    return;
  }
  const tsOnly = code.split("\n").map((l, i) => (magicLines.has(i) ? "" : l)).join("\n");
  const status = completeness(tsOnly);
  const depth = (tsOnly.match(/[{([]/g)?.length ?? 0) - (tsOnly.match(/[})\]]/g)?.length ?? 0);
  request.reply("is_complete_reply", status === "incomplete" ? { status, indent: "  ".repeat(Math.max(1, depth)) } : { status });
};
