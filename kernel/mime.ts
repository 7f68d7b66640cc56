// The mime bundle of a value. An object chooses its own bundle by defining a method under
// Symbol.for("tsloth.mimeBundle") that returns { "text/html": ..., "image/png": base64, ... };
// lib/ uses the same symbol (no import of kernel/ needed) for plots and reports.
import { inspect } from "node:util";

export const MIME_BUNDLE = Symbol.for("tsloth.mimeBundle");

export type MimeBundle = Record<string, unknown>;

const MAX_TABLE_ROWS = 50;

export function isMimeBundle(value: unknown): value is MimeBundle {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length > 0 && keys.every((k) => /^[a-z]+\/[\w.+-]+$/.test(k));
}

export function textPlain(value: unknown): string {
  return inspect(value, { depth: 4, maxArrayLength: 100, breakLength: 100 });
}

export function mimeBundleOf(value: unknown): MimeBundle {
  if (value !== null && (typeof value === "object" || typeof value === "function")) {
    const own = (value as { [MIME_BUNDLE]?: unknown })[MIME_BUNDLE];
    if (typeof own === "function") {
      const bundle = (own as () => MimeBundle).call(value);
      return { "text/plain": textPlain(value), ...bundle };
    }
  }
  const bundle: MimeBundle = { "text/plain": textPlain(value) };
  const html = htmlTable(value);
  if (html) bundle["text/html"] = html;
  return bundle;
}

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
const cell = (v: unknown) => escapeHtml(typeof v === "string" ? v : inspect(v, { depth: 1, breakLength: Infinity }));

/** Arrays of records and arrays of rows render as a table in rich frontends. */
function htmlTable(value: unknown): string | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  const rows = value.slice(0, MAX_TABLE_ROWS);
  const more = value.length > rows.length ? `<p>… ${value.length - rows.length} more rows</p>` : "";
  const isRecord = (r: unknown) => r !== null && typeof r === "object" && !Array.isArray(r) && Object.getPrototypeOf(r) === Object.prototype;
  if (rows.every(isRecord)) {
    const columns = [...new Set(rows.flatMap((r) => Object.keys(r as object)))];
    const head = `<tr><th></th>${columns.map((c) => `<th>${escapeHtml(c)}</th>`).join("")}</tr>`;
    const body = rows
      .map((r, i) => `<tr><th>${i}</th>${columns.map((c) => `<td>${c in (r as object) ? cell((r as Record<string, unknown>)[c]) : ""}</td>`).join("")}</tr>`)
      .join("");
    return `<table class="tsloth-table"><thead>${head}</thead><tbody>${body}</tbody></table>${more}`;
  }
  if (rows.every((r) => Array.isArray(r)) && rows.some((r) => (r as unknown[]).length > 1)) {
    const body = rows.map((r, i) => `<tr><th>${i}</th>${(r as unknown[]).map((v) => `<td>${cell(v)}</td>`).join("")}</tr>`).join("");
    return `<table class="tsloth-table"><tbody>${body}</tbody></table>${more}`;
  }
  return undefined;
}
