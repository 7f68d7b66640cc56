// A small SVG chart writer: axes, ticks, labels, legend, lines (optionally on a right-hand axis)
// and stacked areas. It is the static fallback of every plot, shown where no script runs
// (static .ipynb renderings, untrusted notebooks, frontends without Plotly).
import { escapeXml } from "./format.js";
import { type AxisScale, decimateIndices, niceScale, project } from "./svg-axes.js";

export interface LineSeries {
  name: string;
  color: string;
  x: readonly number[];
  y: readonly number[];
  axis?: "left" | "right";
  dashed?: boolean;
}

export interface StackLayer {
  name: string;
  color: string;
  y: readonly number[];
}

export interface ChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  y2Label?: string;
  lines?: LineSeries[];
  /** Layers stacked bottom-up over a shared x. */
  stack?: { x: readonly number[]; layers: StackLayer[] };
  formatY?: (v: number) => string;
  formatY2?: (v: number) => string;
  formatX?: (v: number) => string;
}

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

const FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";
const MAX_POINTS = 1500;
const CHAR_W = 6.6; // average glyph width at 12px, for laying out legend entries
const AXIS_COLOR = "#444";
const GRID_COLOR = "#e5e5e5";

const n2 = (v: number) => (Math.round(v * 10) / 10).toString();

function text(x: number, y: number, s: string, attrs = ""): string {
  return `<text x="${n2(x)}" y="${n2(y)}" ${attrs}>${escapeXml(s)}</text>`;
}

function decimalsOf(step: number): number {
  for (let d = 0; d < 6; d++) {
    const scaled = step * 10 ** d;
    if (Math.abs(Math.round(scaled) - scaled) < 1e-6 * scaled) return d;
  }
  return 6;
}

function defaultFormat(step: number): (v: number) => string {
  const decimals = decimalsOf(step);
  return (v) => (Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(1) : v.toFixed(decimals));
}

function range(values: Iterable<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

function legendRows(entries: { name: string; color: string; dashed?: boolean; area?: boolean }[], width: number) {
  const rows: { name: string; color: string; dashed?: boolean; area?: boolean; dx: number }[][] = [[]];
  let x = 0;
  for (const e of entries) {
    const w = 22 + e.name.length * CHAR_W + 14;
    if (x > 0 && x + w > width) {
      rows.push([]);
      x = 0;
    }
    rows[rows.length - 1].push({ ...e, dx: x });
    x += w;
  }
  return rows;
}

function linePath(xs: readonly number[], ys: readonly number[], sx: (v: number) => number, sy: (v: number) => number): string {
  let d = "";
  let pen = false;
  for (const i of decimateIndices(Math.min(xs.length, ys.length), MAX_POINTS)) {
    if (!Number.isFinite(ys[i]) || !Number.isFinite(xs[i])) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${n2(sx(xs[i]))} ${n2(sy(ys[i]))}`;
    pen = true;
  }
  return d;
}

/** Draws one chart inside `box` and returns it as an SVG group. */
export function renderChart(spec: ChartSpec, box: Box): string {
  const lines = spec.lines ?? [];
  const stack = spec.stack;
  const leftLines = lines.filter((l) => l.axis !== "right");
  const rightLines = lines.filter((l) => l.axis === "right");

  const legendEntries = [
    ...(stack?.layers ?? []).map((l) => ({ name: l.name, color: l.color, area: true })).reverse(),
    ...lines.map((l) => ({ name: l.name, color: l.color, dashed: l.dashed })),
  ];
  const margin = { left: 62, right: rightLines.length ? 78 : 18, top: 30, bottom: 40 };
  const legend = legendRows(legendEntries, box.width - margin.left - margin.right);
  const legendH = legendEntries.length ? legend.length * 18 + 6 : 0;
  const plot = {
    x0: box.x + margin.left,
    x1: box.x + box.width - margin.right,
    y0: box.y + margin.top,
    y1: box.y + box.height - margin.bottom - legendH,
  };

  const xs = [...lines.flatMap((l) => l.x), ...(stack?.x ?? [])];
  const [xlo, xhi] = range(xs);
  const xScale = niceScale(xlo, xhi, Math.max(2, Math.floor((plot.x1 - plot.x0) / 90)), false);

  const stackTotals = stack ? stack.x.map((_, i) => stack.layers.reduce((s, l) => s + (l.y[i] ?? 0), 0)) : [];
  const [lo, hi] = range([...leftLines.flatMap((l) => l.y), ...stackTotals]);
  const hasData = Number.isFinite(lo);
  const yScale: AxisScale = stack ? niceScale(0, hasData ? Math.max(hi, 0) : 1, 5) : niceScale(hasData ? lo : 0, hasData ? hi : 1, 5);
  const [rlo, rhi] = range(rightLines.flatMap((l) => l.y));
  const y2Scale = niceScale(rightLines.length && Number.isFinite(rlo) ? Math.min(0, rlo) : 0, Number.isFinite(rhi) ? rhi : 1, 5);

  const sx = (v: number) => project(xScale, v, plot.x0, plot.x1);
  const sy = (v: number) => project(yScale, v, plot.y1, plot.y0);
  const sy2 = (v: number) => project(y2Scale, v, plot.y1, plot.y0);
  const fx = spec.formatX ?? defaultFormat(xScale.ticks[1] - xScale.ticks[0] || 1);
  const fy = spec.formatY ?? defaultFormat(yScale.ticks[1] - yScale.ticks[0] || 1);
  const fy2 = spec.formatY2 ?? defaultFormat(y2Scale.ticks[1] - y2Scale.ticks[0] || 1);

  const out: string[] = [`<g class="chart" font-family="${escapeXml(FONT)}" font-size="12" fill="${AXIS_COLOR}">`];
  out.push(text(box.x + box.width / 2, box.y + 18, spec.title, `text-anchor="middle" font-size="14" font-weight="600" fill="#222"`));
  out.push(`<rect x="${n2(plot.x0)}" y="${n2(plot.y0)}" width="${n2(plot.x1 - plot.x0)}" height="${n2(plot.y1 - plot.y0)}" fill="#fff" stroke="none"/>`);

  // Grid and tick labels.
  for (const t of yScale.ticks) {
    const y = sy(t);
    out.push(`<line x1="${n2(plot.x0)}" x2="${n2(plot.x1)}" y1="${n2(y)}" y2="${n2(y)}" stroke="${GRID_COLOR}"/>`);
    out.push(text(plot.x0 - 6, y + 4, fy(t), `text-anchor="end"`));
  }
  if (rightLines.length) {
    for (const t of y2Scale.ticks) out.push(text(plot.x1 + 6, sy2(t) + 4, fy2(t), `text-anchor="start"`));
  }
  for (const t of xScale.ticks) {
    const x = sx(t);
    out.push(`<line x1="${n2(x)}" x2="${n2(x)}" y1="${n2(plot.y1)}" y2="${n2(plot.y1 + 4)}" stroke="${AXIS_COLOR}"/>`);
    out.push(text(x, plot.y1 + 17, fx(t), `text-anchor="middle"`));
  }

  // Data: stacked areas first, lines over them.
  if (stack) {
    const cum = new Array<number>(stack.x.length).fill(0);
    for (const layer of stack.layers) {
      const lower = cum.slice();
      for (let i = 0; i < cum.length; i++) cum[i] += layer.y[i] ?? 0;
      const idx = decimateIndices(stack.x.length, MAX_POINTS);
      if (idx.length === 0) continue;
      const up = idx.map((i) => `${n2(sx(stack.x[i]))} ${n2(sy(cum[i]))}`);
      const down = idx.reverse().map((i) => `${n2(sx(stack.x[i]))} ${n2(sy(lower[i]))}`);
      out.push(`<path class="area" data-series="${escapeXml(layer.name)}" d="M${up.join("L")}L${down.join("L")}Z" fill="${layer.color}" fill-opacity="0.85" stroke="${layer.color}" stroke-width="0.8"/>`);
    }
  }
  for (const l of lines) {
    const scaleY = l.axis === "right" ? sy2 : sy;
    const d = linePath(l.x, l.y, sx, scaleY);
    if (!d) continue;
    const dash = l.dashed ? ` stroke-dasharray="5 3"` : "";
    out.push(`<path class="line" data-series="${escapeXml(l.name)}" d="${d}" fill="none" stroke="${l.color}" stroke-width="1.8" stroke-linejoin="round"${dash}/>`);
  }
  if (!hasData && !rightLines.length) {
    out.push(text((plot.x0 + plot.x1) / 2, (plot.y0 + plot.y1) / 2, "no data yet", `text-anchor="middle" fill="#888"`));
  }

  // Axes and their titles.
  out.push(`<path d="M${n2(plot.x0)} ${n2(plot.y0)}V${n2(plot.y1)}H${n2(plot.x1)}${rightLines.length ? `V${n2(plot.y0)}` : ""}" fill="none" stroke="${AXIS_COLOR}"/>`);
  out.push(text((plot.x0 + plot.x1) / 2, plot.y1 + 34, spec.xLabel, `text-anchor="middle"`));
  const ymid = (plot.y0 + plot.y1) / 2;
  out.push(text(box.x + 14, ymid, spec.yLabel, `text-anchor="middle" transform="rotate(-90 ${n2(box.x + 14)} ${n2(ymid)})"`));
  if (rightLines.length && spec.y2Label) {
    const xr = box.x + box.width - 8;
    out.push(text(xr, ymid, spec.y2Label, `text-anchor="middle" transform="rotate(90 ${n2(xr)} ${n2(ymid)})"`));
  }

  // Legend, below the x-axis title.
  legend.forEach((row, r) => {
    const y = plot.y1 + 50 + r * 18;
    for (const e of row) {
      const x = plot.x0 + e.dx;
      out.push(
        e.area
          ? `<rect x="${n2(x)}" y="${n2(y - 9)}" width="16" height="10" fill="${e.color}" fill-opacity="0.85"/>`
          : `<line x1="${n2(x)}" x2="${n2(x + 16)}" y1="${n2(y - 4)}" y2="${n2(y - 4)}" stroke="${e.color}" stroke-width="2"${e.dashed ? ` stroke-dasharray="5 3"` : ""}/>`,
      );
      out.push(text(x + 22, y, e.name, `class="legend"`));
    }
  });
  out.push("</g>");
  return out.join("");
}

/** Wraps chart groups into a standalone SVG document (valid XML, no external references). */
export function svgDocument(width: number, height: number, body: string, title: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img">` +
    `<title>${escapeXml(title)}</title><rect width="100%" height="100%" fill="#fff"/>${body}</svg>`
  );
}
