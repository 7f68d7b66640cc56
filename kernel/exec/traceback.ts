// Errors as Jupyter shows them: ename, evalue, and a traceback whose frames point at cell
// lines (through the esbuild source map of each cell), without the kernel's own frames.
import type { SourceMap } from "node:module";
import { FUNCTION_SUFFIX } from "./persist-rewrite.js";
import { CellSyntaxError } from "./transpile.js";
import { join, sep } from "node:path";
import { projectRoot } from "../../lib/paths.js";

// Frames of the kernel and of the engine say nothing about the user's code: an engine error reaches
// the user as its message (what was wrong, what to do), never as a stack from inside tsloth.
const KERNEL_DIRS = ["kernel", "lib", join("dist", "kernel"), join("dist", "lib"), "node_modules"].map((d) => join(projectRoot(), d) + sep);

export interface CellRecord {
  /** What the frontend shows as the cell's label: In[label]. */
  label: number | string;
  source: string;
  map: SourceMap;
  prefixColumns: number;
}

export interface FormattedError {
  ename: string;
  evalue: string;
  traceback: string[];
}

export const CELL_FILE_PATTERN = /tsloth-cell-(\d+)\.js/;
export const cellFileName = (id: number) => `tsloth-cell-${id}.js`;

const RED = "\x1b[0;31m";
const GREEN = "\x1b[0;32m";
const RESET = "\x1b[0m";

function errorName(error: unknown): string {
  if (error instanceof Error || (error !== null && typeof error === "object" && "name" in error)) {
    return String((error as { name: unknown }).name);
  }
  return "Error";
}

function errorValue(error: unknown): string {
  if (error instanceof Error || (error !== null && typeof error === "object" && "message" in error)) {
    return String((error as { message: unknown }).message);
  }
  return typeof error === "string" ? error : String(error);
}

function cellLine(cell: CellRecord, line: number): string {
  const text = cell.source.split("\n")[line - 1];
  return text === undefined ? "" : `${GREEN}----> ${line}${RESET} ${text.trim()}`;
}

export function formatSyntaxError(e: CellSyntaxError, label: number | string): FormattedError {
  const caret = " ".repeat(Math.max(0, e.column - 1)) + "^";
  return {
    ename: "SyntaxError",
    evalue: e.message,
    traceback: [`Cell In[${label}], line ${e.line}`, `    ${e.lineText}`, `    ${caret}`, `${RED}SyntaxError${RESET}: ${e.message}`],
  };
}

export function formatError(error: unknown, cells: ReadonlyMap<number, CellRecord>): FormattedError {
  const ename = errorName(error);
  const evalue = errorValue(error);
  const stack = error instanceof Error && typeof error.stack === "string" ? error.stack : "";
  const frames: string[] = [];
  for (const raw of stack.split("\n").slice(1)) {
    const frame = raw.trim();
    if (!frame.startsWith("at ")) continue;
    const cellMatch = CELL_FILE_PATTERN.exec(frame);
    if (cellMatch) {
      const cell = cells.get(Number(cellMatch[1]));
      const pos = /:(\d+):(\d+)\)?$/.exec(frame);
      if (!cell || !pos) continue;
      const line = Number(pos[1]) - 1;
      const column = Number(pos[2]) - 1 - (line === 0 ? cell.prefixColumns : 0);
      const entry = cell.map.findEntry(line, Math.max(0, column)) as { originalLine?: number };
      const cellLineNo = (entry.originalLine ?? line) + 1;
      const fn = /^at (?:async )?([^\s(]+) \(/.exec(frame)?.[1]?.replace(FUNCTION_SUFFIX, "");
      const where = fn && !fn.startsWith("<anonymous>") && fn !== "eval" ? `, in ${fn}` : "";
      const header = `Cell In[${cell.label}], line ${cellLineNo}${where}`;
      // The async wrapper and the script around it report the same cell line twice.
      if (frames.includes(header)) continue;
      frames.push(header);
      const text = cellLine(cell, cellLineNo);
      if (text) frames.push(text);
    } else if (!/\(?node:/.test(frame) && !KERNEL_DIRS.some((d) => frame.includes(d))) {
      frames.push(`    ${frame}`);
    }
  }
  return { ename, evalue, traceback: [...frames, `${RED}${ename}${RESET}: ${evalue}`] };
}
