// A small tokenizer for the JavaScript esbuild prints: enough to find top-level statements and
// the names they declare. Template literals (with their ${} parts) are one token, comments are
// skipped, and `/` is read as a regex where an expression may start (the usual heuristic).

export type TokenKind = "name" | "punct" | "string" | "template" | "regex" | "number";

export interface Token {
  kind: TokenKind;
  value: string;
  start: number;
  end: number;
  /** Line (0-based) where the token starts. */
  line: number;
}

const PUNCTUATORS = [
  ">>>=", "...", "===", "!==", "**=", "<<=", ">>=", ">>>", "&&=", "||=", "??=",
  "=>", "==", "!=", "<=", ">=", "&&", "||", "??", "?.", "++", "--", "+=", "-=", "*=", "/=", "%=",
  "&=", "|=", "^=", "<<", ">>", "**",
];
const KEYWORDS_BEFORE_EXPRESSION = new Set([
  "return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case", "do", "else", "yield", "await",
]);

const isIdStart = (c: string) => /[A-Za-z_$\u0080-\uffff]/.test(c);
const isIdPart = (c: string) => /[\w$\u0080-\uffff]/.test(c);

export function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 0;
  const countLines = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (src.charCodeAt(k) === 10) line++;
  };
  const push = (kind: TokenKind, start: number, end: number) => {
    tokens.push({ kind, value: src.slice(start, end), start, end, line });
    countLines(start, end);
  };

  const skipString = (at: number): number => {
    const quote = src[at];
    let k = at + 1;
    while (k < src.length && src[k] !== quote) k += src[k] === "\\" ? 2 : 1;
    return k + 1;
  };
  // Returns the index after the closing backquote, descending into ${ ... } code.
  const skipTemplate = (at: number): number => {
    let k = at + 1;
    while (k < src.length) {
      const c = src[k];
      if (c === "\\") k += 2;
      else if (c === "`") return k + 1;
      else if (c === "$" && src[k + 1] === "{") k = skipCode(k + 2, "}");
      else k++;
    }
    return k;
  };
  // Skips balanced code up to and including `close`.
  const skipCode = (at: number, close: string): number => {
    let depth = 0;
    let k = at;
    while (k < src.length) {
      const c = src[k];
      if (c === "'" || c === '"') k = skipString(k);
      else if (c === "`") k = skipTemplate(k);
      else if (c === "/" && src[k + 1] === "/") k = lineEnd(k);
      else if (c === "/" && src[k + 1] === "*") k = blockCommentEnd(k);
      else if (c === "{") (depth++, k++);
      else if (c === "}") {
        if (depth === 0 && close === "}") return k + 1;
        depth--;
        k++;
      } else k++;
    }
    return k;
  };
  const lineEnd = (at: number) => {
    const n = src.indexOf("\n", at);
    return n < 0 ? src.length : n;
  };
  const blockCommentEnd = (at: number) => {
    const n = src.indexOf("*/", at + 2);
    return n < 0 ? src.length : n + 2;
  };
  const regexAllowed = () => {
    const prev = tokens[tokens.length - 1];
    if (!prev) return true;
    if (prev.kind === "name") return KEYWORDS_BEFORE_EXPRESSION.has(prev.value);
    if (prev.kind === "punct") return prev.value !== ")" && prev.value !== "]";
    return false;
  };
  const skipRegex = (at: number): number => {
    let k = at + 1;
    let inClass = false;
    while (k < src.length && src[k] !== "\n") {
      const c = src[k];
      if (c === "\\") k += 2;
      else if (c === "[") (inClass = true, k++);
      else if (c === "]") (inClass = false, k++);
      else if (c === "/" && !inClass) {
        k++;
        while (k < src.length && isIdPart(src[k])) k++;
        return k;
      } else k++;
    }
    return k;
  };

  while (i < src.length) {
    const c = src[i];
    if (c === "\n") (line++, i++);
    else if (c === " " || c === "\t" || c === "\r") i++;
    else if (c === "/" && src[i + 1] === "/") i = lineEnd(i);
    else if (c === "/" && src[i + 1] === "*") {
      const end = blockCommentEnd(i);
      countLines(i, end);
      i = end;
    } else if (c === "'" || c === '"') {
      const end = skipString(i);
      push("string", i, end);
      i = end;
    } else if (c === "`") {
      const end = skipTemplate(i);
      push("template", i, end);
      i = end;
    } else if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(src[i + 1] ?? ""))) {
      let k = i + 1;
      while (k < src.length && /[\w.]/.test(src[k])) k++;
      push("number", i, k);
      i = k;
    } else if (isIdStart(c) || c === "#") {
      let k = i + 1;
      while (k < src.length && isIdPart(src[k])) k++;
      push("name", i, k);
      i = k;
    } else if (c === "/" && regexAllowed()) {
      const end = skipRegex(i);
      push("regex", i, end);
      i = end;
    } else {
      const p = PUNCTUATORS.find((q) => src.startsWith(q, i)) ?? c;
      push("punct", i, i + p.length);
      i += p.length;
    }
  }
  return tokens;
}

/** Index of the token that closes the bracket opened at `open` (tokens[open] is ( [ or {). */
export function matchingClose(tokens: Token[], open: number): number {
  let depth = 0;
  for (let k = open; k < tokens.length; k++) {
    const t = tokens[k];
    if (t.kind !== "punct") continue;
    if (t.value === "(" || t.value === "[" || t.value === "{") depth++;
    else if (t.value === ")" || t.value === "]" || t.value === "}") {
      depth--;
      if (depth === 0) return k;
    }
  }
  return tokens.length - 1;
}

/** Splits tokens[from, to) at commas that are not inside brackets. */
export function splitTopLevel(tokens: Token[], from: number, to: number, separator = ","): Array<[number, number]> {
  const parts: Array<[number, number]> = [];
  let depth = 0;
  let start = from;
  for (let k = from; k < to; k++) {
    const t = tokens[k];
    if (t.kind !== "punct") continue;
    if (t.value === "(" || t.value === "[" || t.value === "{") depth++;
    else if (t.value === ")" || t.value === "]" || t.value === "}") depth--;
    else if (depth === 0 && t.value === separator) {
      parts.push([start, k]);
      start = k + 1;
    }
  }
  parts.push([start, to]);
  return parts;
}
