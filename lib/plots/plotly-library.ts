// How plot outputs get plotly.js without a network and without megabytes in every output.
//
// The choice: plotly.min.js (from the plotly.js-dist-min package, ~4.8 MB) travels inside ONE
// output per kernel process, the first rich plot (or a separate loader output that the caller
// emits before a live display, see takePlotlyLibraryBundle). That output defines window.Plotly
// and fires a "tsloth:plotly-ready" event. Every plot's text/html holds its static SVG plus a
// ~1 KB script that draws the interactive plot in its place as soon as window.Plotly exists (now,
// or when the event fires), so outputs may render in any order.
//
// Frontends:
// - Classic Notebook 6 loads require.js, which defines `define`; a UMD bundle would register
//   itself anonymously there ("Mismatched anonymous define()") instead of setting window.Plotly.
//   The library runs inside a function whose parameters shadow define/module/exports, so it
//   always takes its browser-global path.
// - JupyterLab, Notebook 7 and VS Code run all outputs of a notebook in one page/webview, so
//   window.Plotly set by one output serves the others.
// - A reopened notebook: trusted notebooks re-run output scripts; the saved loader output
//   defines Plotly again and waiting plots draw. Untrusted ones (or a notebook whose loader
//   output was cleared) keep the static SVG, which is a complete plot, not a placeholder; it is
//   an <img> with a data: URI, which HTML sanitizers keep where they strip inline <svg>.
// - Static renderings (nbconvert HTML) show the same image; consoles show text/plain.
// Limits: Colab renders each output in its own iframe, so there only the output that carries
//   the library becomes interactive; the others keep the SVG. A browser page reloaded while the
//   kernel keeps running, without the notebook having been saved, has no loader output until
//   resetPlotlyLibrary() is called (the next plot carries the library again).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { MimeBundle } from "./mime-bundle.js";

export const PLOTLY_READY_EVENT = "tsloth:plotly-ready";

let emitted = false;
let cachedSource: string | undefined;

function plotlySource(): string {
  if (cachedSource === undefined) {
    const require = createRequire(import.meta.url);
    const path = require.resolve("plotly.js-dist-min/plotly.min.js");
    // Inside an HTML <script>, "</script" would end the element early and "<!--" could switch the
    // parser into its escaped state; \x3C is the same character to JavaScript in strings and regexes.
    cachedSource = readFileSync(path, "utf8").replace(/<\/script/gi, "\\x3C/script").replace(/<!--/g, "\\x3C!--");
  }
  return cachedSource;
}

/** The <script> that defines window.Plotly (once per page) and announces it. Megabytes: use sparingly. */
export function plotlyLibraryScript(): string {
  return (
    `<script type="text/javascript">(function(){` +
    `if(!window.Plotly){(function(define,module,exports){\n${plotlySource()}\n}).call(window);}` +
    `window.dispatchEvent(new Event(${JSON.stringify(PLOTLY_READY_EVENT)}));` +
    `})();</script>`
  );
}

/**
 * The library script the first time this process asks, "" afterwards. Plot bundles call it with
 * their embedLibrary option set to "auto".
 */
export function takePlotlyLibraryScript(): string {
  if (emitted) return "";
  emitted = true;
  return plotlyLibraryScript();
}

/** True until some output of this process has carried the library. */
export function plotlyLibraryPending(): boolean {
  return !emitted;
}

/** Makes the next plot carry the library again (after a browser reload, or a new frontend). */
export function resetPlotlyLibrary(): void {
  emitted = false;
}

/**
 * A standalone output that only loads the library, or undefined when this process already sent
 * it. Emit it as its own display_data before a live display (update_display_data replaces the
 * whole bundle, so a live display must not be the output that carries the library).
 */
export function takePlotlyLibraryBundle(): MimeBundle | undefined {
  const script = takePlotlyLibraryScript();
  if (!script) return undefined;
  return { "text/plain": "", "text/html": `<div class="tsloth-plotly-loader" style="display:none"></div>${script}` };
}
