// Memory over time as stacked areas, one per category (the engine's accounting plus memory
// other processes hold), with the device's own "in use" figure as a line where it is known.
import { categoryColor, categoryLabel, HOST_CATEGORIES, MEMORY_VIEW_CATEGORIES } from "../memory/categories.js";
import { byteUnitFor, formatBytes } from "./format.js";
import type { PlotOptions } from "./loss-plot.js";
import { type MimeBundle, PLOTLY_MIME, type PlotlyFigure } from "./mime-bundle.js";
import { plotHtml } from "./plot-html.js";
import { type ChartSpec, renderChart, svgDocument } from "./svg-chart.js";

/** One point of the memory history: seconds since the history started, bytes by category. */
export interface MemorySample {
  t: number;
  bytes: Readonly<Record<string, number>>;
  /** What the device itself reports in use (NVML / CUDA runtime), when known. */
  deviceUsedBytes?: number;
}

const DEVICE_LINE_COLOR = "#222222";

/** Known categories in stacking order, then any others the engine reported, skipping all-zero ones. */
function presentCategories(samples: readonly MemorySample[]): string[] {
  const seen = new Set<string>();
  for (const s of samples) for (const [k, v] of Object.entries(s.bytes)) if (v > 0) seen.add(k);
  const known = MEMORY_VIEW_CATEGORIES.filter((c) => seen.has(c));
  const extra = [...seen].filter((c) => !(MEMORY_VIEW_CATEGORIES as readonly string[]).includes(c)).sort();
  return [...known, ...extra];
}

const label = categoryLabel;
const color = categoryColor;

function scaleFor(samples: readonly MemorySample[]) {
  let max = 0;
  for (const s of samples) {
    const total = Object.values(s.bytes).reduce((a, b) => a + Math.max(0, b), 0);
    max = Math.max(max, total, s.deviceUsedBytes ?? 0);
  }
  return byteUnitFor(max);
}

export function vramChartSpec(samples: readonly MemorySample[], title = "Memory by category"): ChartSpec {
  const unit = scaleFor(samples);
  const x = samples.map((s) => s.t);
  const device = samples.filter((s) => s.deviceUsedBytes !== undefined);
  return {
    title,
    xLabel: "seconds",
    yLabel: unit.name,
    stack: {
      x,
      layers: presentCategories(samples).map((c) => ({ name: label(c), color: color(c), y: samples.map((s) => (s.bytes[c] ?? 0) / unit.scale) })),
    },
    lines: device.length
      ? [{ name: "device in use", color: DEVICE_LINE_COLOR, x: device.map((s) => s.t), y: device.map((s) => s.deviceUsedBytes! / unit.scale), dashed: true }]
      : [],
  };
}

export function vramFigure(samples: readonly MemorySample[], opts: PlotOptions = {}): PlotlyFigure {
  const unit = scaleFor(samples);
  const x = samples.map((s) => s.t);
  const data: Record<string, unknown>[] = presentCategories(samples).map((c) => ({
    type: "scatter", mode: "lines", stackgroup: "memory", name: label(c),
    x, y: samples.map((s) => (s.bytes[c] ?? 0) / unit.scale),
    line: { color: color(c), width: 0.5 }, fillcolor: color(c),
    hovertemplate: `%{y:.3f} ${unit.name}<extra>${label(c)}</extra>`,
  }));
  const device = samples.filter((s) => s.deviceUsedBytes !== undefined);
  if (device.length) {
    data.push({
      type: "scatter", mode: "lines", name: "device in use", x: device.map((s) => s.t), y: device.map((s) => s.deviceUsedBytes! / unit.scale),
      line: { color: DEVICE_LINE_COLOR, width: 1.5, dash: "dash" }, hovertemplate: `%{y:.3f} ${unit.name}<extra>device in use</extra>`,
    });
  }
  return {
    data,
    layout: {
      title: { text: opts.title ?? "Memory by category" },
      xaxis: { title: { text: "seconds" } },
      yaxis: { title: { text: unit.name }, rangemode: "tozero" },
      height: opts.height ?? 380,
      margin: { l: 60, r: 20, t: 50, b: 50 },
      legend: { orientation: "h", y: -0.22, traceorder: "reversed" },
      hovermode: "x unified",
    },
  };
}

/** "memory at 12.0s: 1.20 GiB (base weights (NF4) 0.80 GiB, ...); peak 1.50 GiB at 9.5s" */
export function vramSummary(samples: readonly MemorySample[]): string {
  if (samples.length === 0) return "memory: no samples yet";
  const last = samples[samples.length - 1];
  // Device totals leave out host-resident categories (offloaded copies sit in host RAM).
  const total = (s: MemorySample) =>
    Object.entries(s.bytes).reduce((a, [c, b]) => a + (HOST_CATEGORIES.has(c) ? 0 : Math.max(0, b)), 0);
  let peak = last;
  for (const s of samples) if (total(s) > total(peak)) peak = s;
  const parts = presentCategories([last]).map((c) => `${label(c)} ${formatBytes(last.bytes[c])}`);
  return `memory at ${last.t.toFixed(1)}s: device ${formatBytes(total(last))} (${parts.join(", ") || "nothing allocated"}); device peak ${formatBytes(total(peak))} at ${peak.t.toFixed(1)}s`;
}

/** The VRAM-by-category plot as a mime bundle. */
export function vramPlotBundle(samples: readonly MemorySample[], opts: PlotOptions = {}): MimeBundle {
  const width = opts.width ?? 720;
  const height = opts.height ?? 380;
  const title = opts.title ?? "Memory by category";
  const svg = svgDocument(width, height, renderChart(vramChartSpec(samples, title), { x: 0, y: 0, width, height }), title);
  const figure = vramFigure(samples, opts);
  return {
    "text/plain": vramSummary(samples),
    "text/html": plotHtml(figure, svg, { embedLibrary: opts.embedLibrary, alt: vramSummary(samples) }),
    "image/svg+xml": svg,
    [PLOTLY_MIME]: figure,
  };
}
