// The training progress bar: step/total, loss, learning rate, tokens/s and ETA, as text for
// consoles and as HTML for notebooks.
import { escapeXml, formatCompact, formatDuration } from "./format.js";
import type { MimeBundle } from "./mime-bundle.js";

/** What a training step reports (field names follow the trainer's progress events). */
export interface TrainingProgress {
  step: number;
  totalSteps: number;
  loss: number;
  lr?: number;
  tokensPerSec?: number;
  /** Seconds since training began. */
  elapsed?: number;
  /** Seconds left; derived from elapsed and steps when absent. */
  eta?: number;
  gradNorm?: number;
  /** Set when training stopped early (interrupted, or an error). */
  stopped?: string;
}

const BAR_CELLS = 30;

function etaSeconds(p: TrainingProgress): number | undefined {
  if (p.eta !== undefined) return p.eta;
  if (p.elapsed === undefined || p.step <= 0) return undefined;
  return (p.elapsed / p.step) * Math.max(0, p.totalSteps - p.step);
}

function fraction(p: TrainingProgress): number {
  return p.totalSteps > 0 ? Math.min(1, Math.max(0, p.step / p.totalSteps)) : 0;
}

/** The fields after the bar, in display order. */
export function progressFields(p: TrainingProgress): [string, string][] {
  const fields: [string, string][] = [["step", `${p.step}/${p.totalSteps}`], ["loss", Number.isFinite(p.loss) ? p.loss.toFixed(4) : String(p.loss)]];
  if (p.lr !== undefined) fields.push(["lr", p.lr.toExponential(2)]);
  if (p.gradNorm !== undefined) fields.push(["grad norm", formatCompact(p.gradNorm)]);
  if (p.tokensPerSec !== undefined) fields.push(["tokens/s", formatCompact(Math.round(p.tokensPerSec))]);
  if (p.elapsed !== undefined) fields.push(["elapsed", formatDuration(p.elapsed)]);
  const done = p.step >= p.totalSteps;
  const eta = etaSeconds(p);
  if (!done && !p.stopped && eta !== undefined) fields.push(["ETA", formatDuration(eta)]);
  return fields;
}

function status(p: TrainingProgress): string {
  if (p.stopped) return p.stopped;
  return p.step >= p.totalSteps ? "done" : "";
}

/** "[#########.....]  30% | step 30/100 | loss 1.2345 | lr 2.00e-4 | tokens/s 5.1K | ETA 1m 05s" */
export function progressText(p: TrainingProgress): string {
  const f = fraction(p);
  const filled = Math.round(f * BAR_CELLS);
  const bar = "[" + "#".repeat(filled) + ".".repeat(BAR_CELLS - filled) + "]";
  const pct = `${Math.floor(f * 100)}%`.padStart(4);
  const s = status(p);
  return [`${bar} ${pct}`, ...progressFields(p).map(([k, v]) => `${k} ${v}`), ...(s ? [s] : [])].join(" | ");
}

export function progressHtml(p: TrainingProgress): string {
  const pct = (fraction(p) * 100).toFixed(1);
  const s = status(p);
  const barColor = p.stopped ? "#D55E00" : "#0072B2";
  const cells = progressFields(p)
    .map(([k, v]) => `<span style="margin-right:14px"><span style="color:#666">${escapeXml(k)}</span> <b>${escapeXml(v)}</b></span>`)
    .join("");
  return (
    `<div class="tsloth-progress" style="font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:13px;margin:4px 0 8px">` +
    `<div style="display:flex;align-items:center;gap:10px">` +
    `<div style="flex:0 0 320px;height:12px;background:#e8e8e8;border-radius:6px;overflow:hidden">` +
    `<div class="tsloth-progress-fill" style="width:${pct}%;height:100%;background:${barColor}"></div></div>` +
    `<span style="font-variant-numeric:tabular-nums">${Math.floor(fraction(p) * 100)}%</span>` +
    (s ? `<span style="color:${barColor}">${escapeXml(s)}</span>` : "") +
    `</div><div style="margin-top:4px;font-variant-numeric:tabular-nums">${cells}</div></div>`
  );
}

export function progressBundle(p: TrainingProgress): MimeBundle {
  return { "text/plain": progressText(p), "text/html": progressHtml(p) };
}
