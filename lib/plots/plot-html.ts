// The text/html of one plot: its static SVG, replaced in place by an interactive plotly.js plot
// when window.Plotly is (or becomes) available. See plotly-library.ts for how the library arrives.
import { randomUUID } from "node:crypto";
import { escapeXml } from "./format.js";
import type { PlotlyFigure } from "./mime-bundle.js";
import { PLOTLY_READY_EVENT, plotlyLibraryScript, takePlotlyLibraryScript } from "./plotly-library.js";

export type EmbedLibrary = "auto" | "always" | "never";

/** JSON safe inside a <script>: "<" escaped so no "</script>" or "<!--" can appear. */
export function scriptSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

// Drawing waits for the element to be attached: Notebook 6 runs output scripts before it
// inserts the output into the page, and JupyterLab's windowed notebooks attach cells only when
// they scroll into view. Retries back off to once a second and stop after about seven minutes.
const DRAW_SCRIPT = `
var tries=0;
function draw(){
  if(!window.Plotly)return;
  var host=document.getElementById(id);
  if(!host||!host.isConnected){if(++tries<400)setTimeout(draw,Math.min(1000,50*tries));return;}
  if(host.getAttribute("data-drawn"))return;
  host.setAttribute("data-drawn","1");
  var live=document.createElement("div");live.className="tsloth-plotly";
  live.style.height=(fig.layout.height||450)+"px";
  host.appendChild(live);
  window.Plotly.newPlot(live,fig.data,fig.layout,{displaylogo:false,responsive:true}).then(function(){
    var s=host.querySelector(".tsloth-static");if(s)s.style.display="none";
  });
}
if(window.Plotly)draw();else window.addEventListener(${JSON.stringify(PLOTLY_READY_EVENT)},draw);
`;

/** HTML for one figure: static SVG inside a container, a small draw script, and the library when due. */
export function plotHtml(figure: PlotlyFigure, svg: string, opts: { embedLibrary?: EmbedLibrary; alt?: string } = {}): string {
  const alt = opts.alt ?? "plot";
  const id = "tsloth-plot-" + randomUUID();
  const mode = opts.embedLibrary ?? "auto";
  // "always" makes a self-contained output (a plot exported on its own); "auto" carries the
  // library only in the first output of this process.
  const library = mode === "never" ? "" : mode === "always" ? (takePlotlyLibraryScript(), plotlyLibraryScript()) : takePlotlyLibraryScript();
  // The static plot is an <img> with a data: URI rather than inline <svg>: HTML sanitizers of
  // untrusted notebooks (Notebook 6's Caja, JupyterLab's) strip <svg> elements and leave their text
  // as soup, but keep images with data: URIs.
  const img = `<img class="tsloth-static-img" alt="${escapeXml(alt)}" style="max-width:100%" src="data:image/svg+xml;base64,${Buffer.from(svg).toString("base64")}">`;
  return (
    `<div id="${id}" class="tsloth-plot" style="max-width:100%;overflow-x:auto">` +
    `<div class="tsloth-static">${img}</div></div>` +
    library +
    `<script type="text/javascript">(function(){var id=${JSON.stringify(id)};var fig=${scriptSafeJson(figure)};${DRAW_SCRIPT}})();</script>`
  );
}

