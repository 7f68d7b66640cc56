// Turns one cell's JavaScript into a script whose top-level declarations outlive the cell and
// may be declared again by a later cell, with top-level await and the last expression's value.
//
// The cell body runs inside `(async () => { ... })()`; every name it declares at top level is
// declared once with `var` in front of it (a `var` at script top level is a property of the
// global object, which is what Node's REPL does with useGlobal), and the declaration itself
// becomes an assignment. Edits never add or remove line breaks, so the esbuild source map
// still maps lines of the result to lines of the cell.
import { splitTopLevel, tokenize, type Token } from "./js-tokens.js";
import { boundNames, splitStatements } from "./statements.js";

export interface PersistentScript {
  code: string;
  /** Names the cell declares at top level. */
  declared: string[];
  /** True when the cell ends with an expression whose value is the cell's result. */
  hasValue: boolean;
  /** Columns added in front of line 1 (for mapping positions back). */
  prefixColumns: number;
}

/** Runtime hooks the rewritten code calls; installed on globalThis by the executor. */
export const RUNTIME = "__tsloth";
/** Suffix of the real declaration of a cell's top-level function (tracebacks strip it). */
export const FUNCTION_SUFFIX = "$cell";

interface Edit {
  at: number;
  remove: number;
  insert: string;
}

export function rewriteForPersistence(js: string): PersistentScript {
  const tokens = tokenize(js);
  const statements = splitStatements(tokens);
  const edits: Edit[] = [];
  const declared = new Set<string>();
  const functions: string[] = [];
  let hasValue = false;

  // Dynamic import() everywhere: a vm script has no module loader of its own.
  tokens.forEach((t, k) => {
    if (t.kind === "name" && t.value === "import" && tokens[k + 1]?.value === "(" && tokens[k - 1]?.value !== ".") {
      edits.push({ at: t.start, remove: t.end - t.start, insert: `${RUNTIME}.import` });
    }
  });

  const isReexport = (k: number) =>
    tokens[statements[k].first].value === "export" && ["{", "*"].includes(tokens[statements[k].first + 1]?.value);
  let lastIndex = statements.length - 1;
  while (lastIndex >= 0 && isReexport(lastIndex)) lastIndex--;

  statements.forEach((s, index) => {
    let first = s.first;
    const head = tokens[first];
    if (head.kind === "name" && head.value === "export") {
      const next = tokens[first + 1];
      if (next?.value === "{" || next?.value === "*") {
        blank(js, tokens, first, s.last, edits); // re-exports mean nothing in a cell
        return;
      }
      edits.push({ at: head.start, remove: (next?.value === "default" ? next.end : head.end) - head.start, insert: "" });
      first += next?.value === "default" ? 2 : 1;
    }
    const t = tokens[first];
    const isLast = index === lastIndex;
    if (t.kind === "name" && t.value === "import" && tokens[first + 1]?.value !== "(" && tokens[first + 1]?.value !== ".") {
      rewriteImport(js, tokens, first, s.last, edits, declared);
    } else if (t.kind === "name" && (t.value === "const" || t.value === "let" || t.value === "var") && isDeclarationStart(tokens, first)) {
      rewriteDeclaration(tokens, first, s.last, edits, declared);
    } else if (t.kind === "name" && t.value === "class" && tokens[first + 1]?.kind === "name" && tokens[first + 1].value !== "extends") {
      const name = tokens[first + 1].value;
      declared.add(name);
      edits.push({ at: t.start, remove: 0, insert: `${name} = ` });
      if (tokens[s.last].value !== ";") edits.push({ at: tokens[s.last].end, remove: 0, insert: ";" });
    } else if (t.kind === "name" && (t.value === "function" || (t.value === "async" && tokens[first + 1]?.value === "function"))) {
      let k = first + (t.value === "async" ? 2 : 1);
      if (tokens[k]?.value === "*") k++;
      if (tokens[k]?.kind === "name") {
        // Renamed, and the global of the plain name set before the body runs: calls inside the
        // cell (recursion included) go through the global, so redefining the function in a
        // later cell reaches every caller, and declarations stay hoisted.
        functions.push(tokens[k].value);
        edits.push({ at: tokens[k].end, remove: 0, insert: FUNCTION_SUFFIX });
      }
    } else if (isLast && isExpressionStart(tokens, first)) {
      hasValue = true;
      const end = tokens[s.last].value === ";" ? tokens[s.last].start : tokens[s.last].end;
      edits.push({ at: tokens[first].start, remove: 0, insert: "return (" }, { at: end, remove: 0, insert: ")" });
    }
  });

  for (const f of functions) declared.add(f);
  const names = [...declared];
  const prefix =
    (names.length ? `var ${names.join(", ")}; ` : "") +
    `(async () => { ` +
    functions.map((f) => `${f} = ${RUNTIME}.named(${f}${FUNCTION_SUFFIX}, "${f}"); `).join("");
  return { code: prefix + applyEdits(js, edits) + "\n})()", declared: names, hasValue, prefixColumns: prefix.length };
}

function isDeclarationStart(tokens: Token[], k: number): boolean {
  const next = tokens[k + 1];
  // `let` can be an identifier in sloppy code (`let = 1`, `let[0]`); esbuild never prints that, but be safe.
  return next !== undefined && (next.kind === "name" || next.value === "{" || next.value === "[");
}

const STATEMENT_KEYWORDS = new Set([
  "if", "for", "while", "do", "switch", "try", "throw", "return", "break", "continue", "debugger", "function", "class",
  "const", "let", "var", "import", "export", "with",
]);

function isExpressionStart(tokens: Token[], k: number): boolean {
  const t = tokens[k];
  if (t.kind === "punct") return t.value !== "{" && t.value !== ";";
  if (t.kind !== "name") return true;
  if (t.value === "async" && tokens[k + 1]?.value === "function") return false;
  if (tokens[k + 1]?.value === ":" && tokens[k + 1].kind === "punct") return false; // label
  return !STATEMENT_KEYWORDS.has(t.value);
}

function rewriteDeclaration(tokens: Token[], first: number, last: number, edits: Edit[], declared: Set<string>): void {
  const keyword = tokens[first];
  const end = tokens[last].value === ";" ? last : last + 1;
  edits.push({ at: keyword.start, remove: keyword.end - keyword.start, insert: "(" });
  for (const [a, b] of splitTopLevel(tokens, first + 1, end)) {
    if (a >= b) continue;
    const [pattern, ...init] = splitTopLevel(tokens, a, b, "=");
    for (const n of boundNames(tokens, pattern[0], pattern[1])) declared.add(n);
    if (init.length === 0) edits.push({ at: tokens[b - 1].end, remove: 0, insert: " = void 0" });
  }
  const close = tokens[end - 1].end;
  edits.push({ at: close, remove: 0, insert: ")" });
  if (end > last) edits.push({ at: close, remove: 0, insert: ";" });
}

// import d, { a, b as c } from "m";  import * as ns from "m";  import "m";
function rewriteImport(js: string, tokens: Token[], first: number, last: number, edits: Edit[], declared: Set<string>): void {
  const fromAt = tokens.findIndex((t, k) => k > first && k <= last && t.kind === "string");
  if (fromAt < 0) return;
  const source = `await ${RUNTIME}.import(${tokens[fromAt].value})`;
  const parts: string[] = [];
  let namespace: string | undefined;
  let defaultName: string | undefined;
  for (let k = first + 1; k < fromAt; k++) {
    const t = tokens[k];
    if (t.value === "type" && tokens[k + 1]?.kind === "name" && tokens[k + 1].value !== "from") continue;
    if (t.value === "*" && tokens[k + 1]?.value === "as") {
      namespace = tokens[k + 2].value;
      k += 2;
    } else if (t.value === "{") {
      const close = tokens.findIndex((u, j) => j > k && u.value === "}");
      for (const [a, b] of splitTopLevel(tokens, k + 1, close)) {
        if (a >= b) continue;
        const asAt = tokens.slice(a, b).findIndex((u) => u.value === "as");
        const imported = tokens[a].value;
        const local = asAt > 0 ? tokens[a + asAt + 1].value : imported;
        parts.push(imported === local ? local : `${imported}: ${local}`);
        declared.add(local);
      }
      k = close;
    } else if (t.kind === "name" && t.value !== "from") {
      defaultName = t.value;
    }
  }
  if (defaultName) (declared.add(defaultName), parts.unshift(`default: ${defaultName}`));
  if (namespace) declared.add(namespace);
  let text: string;
  if (namespace) text = `(${namespace} = ${source}${parts.length ? `, { ${parts.join(", ")} } = ${namespace}` : ""});`;
  else if (parts.length) text = `({ ${parts.join(", ")} } = ${source});`;
  else text = `${source};`;
  replaceKeepingLines(js, tokens[first].start, tokens[last].end, text, edits);
}

function blank(js: string, tokens: Token[], first: number, last: number, edits: Edit[]): void {
  replaceKeepingLines(js, tokens[first].start, tokens[last].end, "", edits);
}

function replaceKeepingLines(js: string, start: number, end: number, text: string, edits: Edit[]): void {
  const lines = js.slice(start, end).split("\n").length - 1;
  edits.push({ at: start, remove: end - start, insert: text + "\n".repeat(lines) });
}

function applyEdits(js: string, edits: Edit[]): string {
  const sorted = edits.map((e, order) => ({ ...e, order })).sort((a, b) => a.at - b.at || a.order - b.order);
  let out = "";
  let cursor = 0;
  for (const e of sorted) {
    if (e.at < cursor) continue; // overlapping edit inside a replaced range
    out += js.slice(cursor, e.at) + e.insert;
    cursor = e.at + e.remove;
  }
  return out + js.slice(cursor);
}
