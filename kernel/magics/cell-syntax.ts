// Where magics sit in a cell. A cell magic is a cell whose first line is `%%name args`. A line
// magic is a line `%name args`, optionally bound: `x = %name args` (or `const x = %name args`),
// and `%name?` shows its help. Each magic line becomes one awaited call on the same line, so
// magics run in order with the code around them and line numbers stay those of the cell.
import { RUNTIME } from "../exec/persist-rewrite.js";
import { lookupMagic } from "./registry.js";

const LINE_MAGIC = /^(\s*)(?:((?:const|let|var)\s+)?([A-Za-z_$][\w$]*)\s*=\s*)?%([A-Za-z_]\w*)(\?)?(?:(\s.*))?$/;

export interface CellMagicCall {
  name: string;
  args: string;
  body: string;
}

export function parseCellMagic(source: string): CellMagicCall | undefined {
  const match = /^\s*%%([A-Za-z_]\w*)([^\n]*)(?:\n|$)/.exec(source);
  if (!match) return undefined;
  return { name: match[1], args: match[2].trim(), body: source.slice(match[0].length) };
}

export interface LineMagic {
  line: number;
  indent: string;
  declaration: string;
  target: string | undefined;
  name: string;
  help: boolean;
  args: string;
}

export function findLineMagics(source: string): LineMagic[] {
  const found: LineMagic[] = [];
  source.split("\n").forEach((text, line) => {
    const m = LINE_MAGIC.exec(text);
    if (m) found.push({ line, indent: m[1], declaration: m[2] ?? "", target: m[3], name: m[4], help: m[5] === "?", args: (m[6] ?? "").trim() });
  });
  return found;
}

/**
 * A line magic's arguments as a JavaScript expression. As in IPython, `{expr}` is replaced by the
 * value of a TypeScript expression of the cell (`%load_4bit {MODEL_DIR}`), `{{` and `}}` stand for
 * literal braces; everything else is passed as written.
 */
export function magicArgsExpression(args: string): string {
  if (!args.includes("{") && !args.includes("}")) return JSON.stringify(args);
  let out = "";
  for (let i = 0; i < args.length; i++) {
    const c = args[i]!;
    if ((c === "{" || c === "}") && args[i + 1] === c) {
      out += c;
      i++;
    } else if (c === "{") {
      let depth = 1;
      let j = i + 1;
      for (; j < args.length && depth > 0; j++) {
        if (args[j] === "{") depth++;
        else if (args[j] === "}") depth--;
      }
      if (depth > 0) throw new SyntaxError(`magic arguments: "{" at column ${i + 1} is never closed (write {{ for a literal brace): ${args}`);
      out += "${String(" + args.slice(i + 1, j - 1) + ")}";
      i = j - 1;
    } else if (c === "}") {
      throw new SyntaxError(`magic arguments: "}" at column ${i + 1} closes nothing (write }} for a literal brace): ${args}`);
    } else {
      out += c === "`" || c === "\\" || c === "$" ? "\\" + c : c;
    }
  }
  return "`" + out + "`";
}

/** The cell with each magic line replaced by a call the executor's runtime answers. */
export function replaceLineMagics(source: string): string {
  const lines = source.split("\n");
  for (const m of findLineMagics(source)) {
    const call = m.help
      ? `await ${RUNTIME}.magicHelp(${JSON.stringify(m.name)})`
      : `await ${RUNTIME}.magic(${JSON.stringify(m.name)}, ${magicArgsExpression(m.args)})`;
    lines[m.line] = `${m.indent}${m.target ? `${m.declaration}${m.target} = ` : ""}${call};`;
  }
  return lines.join("\n");
}

/** The cell as the language service sees it: magic lines typed by their result, not run. */
export function magicLinesForTypes(source: string): string {
  const lines = source.split("\n");
  for (const m of findLineMagics(source)) {
    const type = lookupMagic(m.name)?.resultType ?? "any";
    lines[m.line] = m.target ? `${m.indent}var ${m.target}: ${type} = undefined as any;` : "";
  }
  return lines.join("\n");
}
