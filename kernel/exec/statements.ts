// Top-level statements of printed JavaScript, and the names a binding pattern declares.
import { matchingClose, splitTopLevel, type Token } from "./js-tokens.js";

export interface Statement {
  /** Token index range [first, last]. */
  first: number;
  last: number;
}

// Statements whose body is a block: they end at the `}` that closes it unless an
// `else` / `catch` / `finally` (or the `while` of a do-while) continues them.
const BLOCK_STATEMENTS = new Set(["function", "class", "if", "for", "while", "do", "try", "switch", "with"]);

function startsBlockStatement(tokens: Token[], i: number): boolean {
  const t = tokens[i];
  if (t.kind === "punct") return t.value === "{";
  if (t.kind !== "name") return false;
  if (t.value === "export" || t.value === "async") return startsBlockStatement(tokens, i + 1);
  if (t.value === "default" && tokens[i - 1]?.value === "export") return startsBlockStatement(tokens, i + 1);
  if (BLOCK_STATEMENTS.has(t.value)) return true;
  return tokens[i + 1]?.value === ":" && tokens[i + 1].kind === "punct"; // a label
}

function continues(tokens: Token[], next: number, closing: Token): boolean {
  const t = tokens[next];
  if (!t || t.kind !== "name") return false;
  if (t.value === "else" || t.value === "catch" || t.value === "finally") return true;
  return t.value === "while" && t.line === closing.line;
}

export function splitStatements(tokens: Token[]): Statement[] {
  const statements: Statement[] = [];
  let i = 0;
  while (i < tokens.length) {
    if (tokens[i].kind === "punct" && tokens[i].value === ";") {
      i++;
      continue;
    }
    const first = i;
    const block = startsBlockStatement(tokens, i);
    let depth = 0;
    let k = i;
    for (; k < tokens.length; k++) {
      const t = tokens[k];
      if (t.kind !== "punct") continue;
      if (t.value === "(" || t.value === "[" || t.value === "{") depth++;
      else if (t.value === ")" || t.value === "]") depth--;
      else if (t.value === "}") {
        depth--;
        if (depth === 0 && block && !continues(tokens, k + 1, t)) {
          if (tokens[k + 1]?.value === ";") k++;
          break;
        }
      } else if (t.value === ";" && depth === 0 && !continues(tokens, k + 1, t)) break;
    }
    const last = Math.min(k, tokens.length - 1);
    statements.push({ first, last });
    i = last + 1;
  }
  return statements;
}

/** Names bound by the pattern tokens[from, to): `x`, `{ a, b: c, ...d }`, `[e, , f = 1]`. */
export function boundNames(tokens: Token[], from: number, to: number): string[] {
  if (from >= to) return [];
  const t = tokens[from];
  if (t.kind === "name") return [t.value];
  if (t.value === "...") return boundNames(tokens, from + 1, to);
  const close = matchingClose(tokens, from);
  const names: string[] = [];
  for (const [a, b] of splitTopLevel(tokens, from + 1, close)) {
    if (a >= b) continue;
    const target = t.value === "{" ? propertyTarget(tokens, a, b) : [a, b];
    const [ta, tb] = target;
    const [pattern] = splitTopLevel(tokens, ta, tb, "=");
    names.push(...boundNames(tokens, pattern[0], pattern[1]));
  }
  return names;
}

// In an object pattern `key: target`, `[computed]: target`, `name = default` or `...rest`.
function propertyTarget(tokens: Token[], a: number, b: number): [number, number] {
  const parts = splitTopLevel(tokens, a, b, ":");
  return parts.length > 1 ? [parts[1][0], b] : [a, b];
}
