// The one live display of a training run: progress bar, loss plot and memory plot, rebuilt from
// the trainer's progress events and throttled so a frontend gets a few updates per second at most.
// The caller sends the first bundle as display_data with a display_id and later ones as
// update_display_data with the same id; finish() gives the final state that stays in the notebook.
import { escapeXml } from "./format.js";
import { type LossPoint, lossChartSpec, lossFigure, lossSummary } from "./loss-plot.js";
import { type MimeBundle, PLOTLY_MIME, type PlotlyFigure } from "./mime-bundle.js";
import { plotHtml } from "./plot-html.js";
import { progressHtml, progressText, type TrainingProgress } from "./progress-bar.js";
import { renderChart, svgDocument } from "./svg-chart.js";
import { type MemorySample, vramChartSpec, vramFigure, vramSummary } from "./vram-plot.js";

export interface TrainingViewOptions {
  /** Least time between two emitted updates; 500 ms keeps a frontend at two redraws a second. */
  minIntervalMs?: number;
  /** Clock in milliseconds (tests pass a fake one). */
  now?: () => number;
}

/** Loss and memory side by side in one figure (two subplots, two legends). */
export function trainingFigure(loss: readonly LossPoint[], memory: readonly MemorySample[], title: string): PlotlyFigure {
  const lf = lossFigure(loss);
  const vf = vramFigure(memory);
  const data = [
    ...lf.data.map((t) => ({ ...t, xaxis: "x", yaxis: t.yaxis === "y2" ? "y3" : "y", legend: "legend" })),
    ...vf.data.map((t) => ({ ...t, xaxis: "x2", yaxis: "y2", legend: "legend2" })),
  ];
  const vy = (vf.layout.yaxis as Record<string, unknown>) ?? {};
  const layout: Record<string, unknown> = {
    title: { text: title, font: { size: 13 } },
    height: 400,
    margin: { l: 60, r: 60, t: 50, b: 40 },
    hovermode: "x unified",
    xaxis: { domain: [0, 0.42], anchor: "y", title: { text: "step" } },
    yaxis: { anchor: "x", title: { text: "loss" } },
    xaxis2: { domain: [0.58, 1], anchor: "y2", title: { text: "seconds" } },
    yaxis2: { ...vy, anchor: "x2" },
    legend: { orientation: "h", x: 0, y: -0.25 },
    legend2: { orientation: "h", x: 0.58, y: -0.25, traceorder: "reversed" },
  };
  if (lf.layout.yaxis2) layout.yaxis3 = { ...(lf.layout.yaxis2 as Record<string, unknown>), overlaying: "y", anchor: "x", side: "right" };
  return { data, layout };
}

/** In HTML the progress bar sits above the plot, so the figure's progress title would repeat it. */
function withoutTitle(f: PlotlyFigure): PlotlyFigure {
  const { title: _title, ...layout } = f.layout;
  return { data: f.data, layout: { ...layout, margin: { l: 60, r: 60, t: 20, b: 40 } } };
}

/** The whole display for one state of the run. */
export function trainingBundle(progress: TrainingProgress, loss: readonly LossPoint[], memory: readonly MemorySample[]): MimeBundle {
  const text = progressText(progress);
  const width = 1100;
  const chartH = 380;
  const body =
    `<text x="16" y="22" font-family="ui-monospace, Menlo, Consolas, monospace" font-size="12" fill="#222">${escapeXml(text)}</text>` +
    renderChart(lossChartSpec(loss), { x: 0, y: 32, width: width / 2, height: chartH }) +
    renderChart(vramChartSpec(memory), { x: width / 2, y: 32, width: width / 2, height: chartH });
  const svg = svgDocument(width, chartH + 40, body, "Training progress");
  const figure = trainingFigure(loss, memory, text);
  return {
    "text/plain": [text, lossSummary(loss), vramSummary(memory)].join("\n"),
    // A live display is replaced whole by every update, so it never carries the plotly library:
    // emit takePlotlyLibraryBundle() as its own output before the first frame.
    "text/html": progressHtml(progress) + plotHtml(withoutTitle(figure), svg, { embedLibrary: "never", alt: text }),
    "image/svg+xml": svg,
    [PLOTLY_MIME]: figure,
  };
}

/** Collects a run's progress events and hands out throttled bundles of the live display. */
export class TrainingView {
  private readonly loss: LossPoint[] = [];
  private memory: readonly MemorySample[] = [];
  private last: TrainingProgress | undefined;
  private lastEmit = -Infinity;
  private readonly minIntervalMs: number;
  private readonly now: () => number;

  constructor(opts: TrainingViewOptions = {}) {
    this.minIntervalMs = opts.minIntervalMs ?? 500;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Records one step (every step is kept for the loss plot) and returns a bundle when an update
   * is due, undefined when it would come too soon after the previous one.
   */
  update(progress: TrainingProgress, memory?: readonly MemorySample[]): MimeBundle | undefined {
    this.record(progress, memory);
    const t = this.now();
    if (t - this.lastEmit < this.minIntervalMs) return undefined;
    this.lastEmit = t;
    return trainingBundle(progress, this.loss, this.memory);
  }

  /** The final state, always returned (also after an interruption: pass stopped: "interrupted"). */
  finish(progress?: TrainingProgress, memory?: readonly MemorySample[]): MimeBundle {
    if (progress) this.record(progress, memory);
    if (!this.last) throw new Error("tsloth: TrainingView.finish() needs a progress event; none was recorded.");
    this.lastEmit = this.now();
    return trainingBundle(this.last, this.loss, this.memory);
  }

  lossPoints(): readonly LossPoint[] {
    return this.loss;
  }

  private record(progress: TrainingProgress, memory?: readonly MemorySample[]): void {
    const prev = this.loss[this.loss.length - 1];
    if (!prev || prev.step !== progress.step) this.loss.push({ step: progress.step, loss: progress.loss, lr: progress.lr });
    if (memory) this.memory = memory;
    this.last = progress;
  }
}
