// Runs cells: magics, TypeScript -> JavaScript, persistent declarations, top-level await,
// interrupts, the last expression's value, and errors that point into the cell.
import { SourceMap } from "node:module";
import { Script } from "node:vm";
import { parseCellMagic, replaceLineMagics } from "../magics/cell-syntax.js";
import type { MagicRunner } from "../magics/run.js";
import { MagicUsageError } from "../magics/types.js";
import { beginCell, endCell, KeyboardInterrupt, whenInterrupted } from "./interrupt.js";
import { rewriteForPersistence } from "./persist-rewrite.js";
import { cellFileName, formatError, formatSyntaxError, type CellRecord, type FormattedError } from "./traceback.js";
import { CellSyntaxError, transpileCell } from "./transpile.js";

export type CellOutcome = { status: "ok"; value: unknown; hasValue: boolean } | { status: "error"; error: FormattedError };

// vm's message when breakOnSigint stops a script ("Script execution was interrupted by `SIGINT`").
const SIGINT_BREAK = /^Script execution (was )?interrupted/;

// A cell that is one object literal (`{ a: 1 }`) means the object, not a block with a label,
// as in Node's REPL; the parentheses stay on the cell's first and last lines.
function transpileWholeCell(ts: string, fileName: string): ReturnType<typeof transpileCell> {
  if (/^\s*\{/.test(ts) && /\}\s*$/.test(ts)) {
    try {
      return transpileCell(`(${ts})`, fileName);
    } catch {
      // not an expression: a block after all
    }
  }
  return transpileCell(ts, fileName);
}

export class CellExecutor {
  private readonly cells = new Map<number, CellRecord>();
  private nextId = 1;

  constructor(private readonly magics: MagicRunner) {}

  /** Runs one cell; `label` is what tracebacks call it (In[label]). */
  async run(source: string, label: number | string): Promise<CellOutcome> {
    const cellMagic = parseCellMagic(source);
    if (cellMagic) {
      return this.guard(label, () => this.magics.runCell(cellMagic.name, cellMagic.args, cellMagic.body), true);
    }
    const id = this.nextId++;
    let script: Script;
    let hasValue: boolean;
    try {
      const fileName = cellFileName(id);
      const { js, sourceMap } = transpileWholeCell(replaceLineMagics(source), `In[${label}]`);
      const persistent = rewriteForPersistence(js);
      hasValue = persistent.hasValue;
      this.cells.set(id, { label, source, map: new SourceMap(JSON.parse(sourceMap)), prefixColumns: persistent.prefixColumns });
      script = new Script(persistent.code, { filename: fileName });
    } catch (e) {
      if (e instanceof CellSyntaxError) return { status: "error", error: formatSyntaxError(e, label) };
      return { status: "error", error: formatError(e, this.cells) };
    }
    return this.guard(label, () => script.runInThisContext({ breakOnSigint: true }) as Promise<unknown>, hasValue);
  }

  /** Evaluates one expression (user_expressions) in the cells' global scope. */
  evaluate(expression: string): unknown {
    const { js } = transpileCell(`(${expression}\n)`, "user_expression.ts");
    return new Script(js, { filename: "user_expression.js" }).runInThisContext();
  }

  private async guard(label: number | string, body: () => unknown, hasValue: boolean): Promise<CellOutcome> {
    const signal = beginCell();
    try {
      const value = await Promise.race([body(), whenInterrupted(signal)]);
      return { status: "ok", value, hasValue: hasValue && value !== undefined };
    } catch (e) {
      return { status: "error", error: this.describe(e, label) };
    } finally {
      endCell();
    }
  }

  private describe(error: unknown, label: number | string): FormattedError {
    if (error instanceof KeyboardInterrupt || (error instanceof Error && SIGINT_BREAK.test(error.message))) {
      return { ename: "KeyboardInterrupt", evalue: "the cell was interrupted", traceback: [`Cell In[${label}]`, "\x1b[0;31mKeyboardInterrupt\x1b[0m: the cell was interrupted"] };
    }
    if (error instanceof MagicUsageError) {
      return { ename: "UsageError", evalue: error.message, traceback: [`\x1b[0;31mUsageError\x1b[0m: ${error.message}`] };
    }
    return formatError(error, this.cells);
  }
}
