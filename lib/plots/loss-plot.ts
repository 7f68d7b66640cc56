// Training loss against step, with the learning rate on a right-hand axis when known.
import { formatCompact } from "./format.js";
import { type MimeBundle, PLOTLY_MIME, type PlotlyFigure } from "./mime-bundle.js";
import { type EmbedLibrary, plotHtml } from "./plot-html.js";
import { type ChartSpec, renderChart, svgDocument } from "./svg-chart.js";

export interface LossPoint {
  step: number;
  loss: number;
  lr?: number;
}

export interface PlotOptions {
  title?: string;
  width?: number;
  height?: number;
  embedLibrary?: EmbedLibrary;
}

const LOSS_COLOR = "#0072B2";
const LR_COLOR = "#D55E00";

export function lossChartSpec(points: readonly LossPoint[], title = "Training loss"): ChartSpec {
  const steps = points.map((p) => p.step);
  const lrPoints = points.filter((p) => p.lr !== undefined && Number.isFinite(p.lr));
  return {
    title,
    xLabel: "step",
    yLabel: "loss",
    y2Label: "learning rate",
    lines: [
      { name: "loss", color: LOSS_COLOR, x: steps, y: points.map((p) => p.loss) },
      ...(lrPoints.length
        ? [{ name: "learning rate", color: LR_COLOR, x: lrPoints.map((p) => p.step), y: lrPoints.map((p) => p.lr!), axis: "right" as const, dashed: true }]
        : []),
    ],
    formatY2: formatCompact,
  };
}

export function lossFigure(points: readonly LossPoint[], opts: PlotOptions = {}): PlotlyFigure {
  const lrPoints = points.filter((p) => p.lr !== undefined && Number.isFinite(p.lr));
  const data: Record<string, unknown>[] = [
    { type: "scatter", mode: "lines", name: "loss", x: points.map((p) => p.step), y: points.map((p) => p.loss), line: { color: LOSS_COLOR, width: 2 } },
  ];
  const layout: Record<string, unknown> = {
    title: { text: opts.title ?? "Training loss" },
    xaxis: { title: { text: "step" } },
    yaxis: { title: { text: "loss" } },
    height: opts.height ?? 360,
    margin: { l: 60, r: 60, t: 50, b: 50 },
    legend: { orientation: "h", y: -0.2 },
    hovermode: "x unified",
  };
  if (lrPoints.length) {
    data.push({
      type: "scatter", mode: "lines", name: "learning rate", yaxis: "y2",
      x: lrPoints.map((p) => p.step), y: lrPoints.map((p) => p.lr), line: { color: LR_COLOR, width: 1.5, dash: "dot" },
    });
    layout.yaxis2 = { title: { text: "learning rate" }, overlaying: "y", side: "right", tickformat: ".1e", showgrid: false, rangemode: "tozero" };
  }
  return { data, layout };
}

/** "step 120, loss 1.234 (min 1.100 at step 98), lr 2.0e-4" */
export function lossSummary(points: readonly LossPoint[]): string {
  if (points.length === 0) return "loss: no steps yet";
  const last = points[points.length - 1];
  let best = points[0];
  for (const p of points) if (p.loss < best.loss) best = p;
  const lr = last.lr !== undefined ? `, lr ${formatCompact(last.lr)}` : "";
  return `loss: step ${last.step}, loss ${last.loss.toFixed(4)} (min ${best.loss.toFixed(4)} at step ${best.step})${lr}, ${points.length} points`;
}

/** The loss plot as a mime bundle: Plotly JSON, HTML (interactive over static), SVG, text. */
export function lossPlotBundle(points: readonly LossPoint[], opts: PlotOptions = {}): MimeBundle {
  const width = opts.width ?? 720;
  const height = opts.height ?? 360;
  const title = opts.title ?? "Training loss";
  const svg = svgDocument(width, height, renderChart(lossChartSpec(points, title), { x: 0, y: 0, width, height }), title);
  const figure = lossFigure(points, opts);
  return {
    "text/plain": lossSummary(points),
    "text/html": plotHtml(figure, svg, { embedLibrary: opts.embedLibrary, alt: lossSummary(points) }),
    "image/svg+xml": svg,
    [PLOTLY_MIME]: figure,
  };
}
