// %vram's output: device memory now, the engine's breakdown by category (current and peak), host
// RAM, and the history since the kernel started as a stacked area plot.
import { escapeXml, formatBytes } from "../plots/format.js";
import { type MimeBundle, PLOTLY_MIME } from "../plots/mime-bundle.js";
import { plotHtml, type EmbedLibrary } from "../plots/plot-html.js";
import { renderChart, svgDocument } from "../plots/svg-chart.js";
import { type MemorySample, vramChartSpec, vramFigure, vramSummary } from "../plots/vram-plot.js";
import { categoryColor, categoryLabel, HOST_CATEGORIES, MEMORY_VIEW_CATEGORIES } from "./categories.js";
import type { VramSnapshot } from "./vram-snapshot.js";

export interface VramRow {
  category: string;
  label: string;
  currentBytes: number;
  peakBytes: number;
  onDevice: boolean;
}

/** Table rows in the views' category order, then any category the engine added. */
export function vramRows(s: VramSnapshot): VramRow[] {
  const names = [
    ...MEMORY_VIEW_CATEGORIES.filter((c) => c in s.categories),
    ...Object.keys(s.categories).filter((c) => !(MEMORY_VIEW_CATEGORIES as readonly string[]).includes(c)).sort(),
  ];
  return names.map((c) => ({
    category: c,
    label: categoryLabel(c),
    currentBytes: s.categories[c].current,
    peakBytes: s.categories[c].peak,
    onDevice: !HOST_CATEGORIES.has(c),
  }));
}

function headline(s: VramSnapshot): string {
  if (!s.device) return `no GPU: ${s.backend ?? "cpu"} backend holds ${formatBytes(s.engineDeviceBytes)}`;
  const pct = s.device.totalBytes > 0 ? ((s.device.usedBytes / s.device.totalBytes) * 100).toFixed(1) : "?";
  return `${s.device.name ?? "GPU"}: ${formatBytes(s.device.usedBytes)} used of ${formatBytes(s.device.totalBytes)} (${pct}%), ${formatBytes(s.device.freeBytes)} free`;
}

function hostLine(s: VramSnapshot): string {
  return `host RAM: ${formatBytes(s.host.availableBytes)} available of ${formatBytes(s.host.totalBytes)}; this process ${formatBytes(s.host.processRssBytes)} resident`;
}

export function vramText(s: VramSnapshot): string {
  const rows = vramRows(s);
  const w = Math.max(8, ...rows.map((r) => r.label.length));
  const lines = [headline(s), `${"category".padEnd(w)}  ${"now".padStart(10)}  ${"peak".padStart(10)}`];
  for (const r of rows) lines.push(`${r.label.padEnd(w)}  ${formatBytes(r.currentBytes).padStart(10)}  ${formatBytes(r.peakBytes).padStart(10)}`);
  lines.push(`${"tsloth on device".padEnd(w)}  ${formatBytes(s.engineDeviceBytes).padStart(10)}`);
  lines.push(hostLine(s), s.note);
  return lines.join("\n");
}

function tableHtml(s: VramSnapshot): string {
  const rows = vramRows(s);
  const scale = Math.max(1, ...rows.map((r) => r.peakBytes));
  const td = `style="padding:2px 10px;text-align:right;font-variant-numeric:tabular-nums"`;
  const body = rows
    .map((r) => {
      const w = ((r.currentBytes / scale) * 120).toFixed(1);
      return (
        `<tr><td style="padding:2px 10px;text-align:left;white-space:nowrap"><span style="display:inline-block;width:10px;height:10px;background:${categoryColor(r.category)};margin-right:6px"></span>${escapeXml(r.label)}</td>` +
        `<td ${td}>${formatBytes(r.currentBytes)}</td><td ${td}>${formatBytes(r.peakBytes)}</td>` +
        `<td style="padding:2px 10px;text-align:left"><div style="width:${w}px;height:8px;background:${categoryColor(r.category)}"></div></td></tr>`
      );
    })
    .join("");
  return (
    `<table class="tsloth-vram" style="border-collapse:collapse;font-size:13px;margin:6px 0">` +
    `<thead><tr><th style="padding:2px 10px;text-align:left">category</th><th ${td}>now</th><th ${td}>peak</th><th></th></tr></thead>` +
    `<tbody>${body}<tr style="border-top:1px solid #ccc"><td style="padding:2px 10px;text-align:left"><b>tsloth on device</b></td><td ${td}><b>${formatBytes(s.engineDeviceBytes)}</b></td><td></td><td></td></tr></tbody></table>`
  );
}

/** %vram's bundle: table and stacked plot of the history (the snapshot alone when no history is kept). */
export function vramBundle(s: VramSnapshot, history?: readonly MemorySample[], opts: { embedLibrary?: EmbedLibrary } = {}): MimeBundle {
  const samples: readonly MemorySample[] = history?.length
    ? history
    : [{ t: 0, bytes: Object.fromEntries(Object.entries(s.categories).map(([c, b]) => [c, b.current])), deviceUsedBytes: s.device?.usedBytes }];
  const title = s.device ? "Memory by category" : `Memory by category (${s.backend ?? "cpu"} backend, no GPU)`;
  const width = 720;
  const height = 380;
  const svg = svgDocument(width, height, renderChart(vramChartSpec(samples, title), { x: 0, y: 0, width, height }), title);
  const figure = vramFigure(samples, { title });
  const html =
    `<div class="tsloth-vram-view" style="font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:13px">` +
    `<div style="font-weight:600">${escapeXml(headline(s))}</div>${tableHtml(s)}` +
    `<div style="color:#555">${escapeXml(hostLine(s))}</div><div style="color:#555;margin-bottom:6px">${escapeXml(s.note)}</div>` +
    plotHtml(figure, svg, { embedLibrary: opts.embedLibrary, alt: vramSummary(samples) }) +
    `</div>`;
  return {
    "text/plain": vramText(s) + "\n" + vramSummary(samples),
    "text/html": html,
    "image/svg+xml": svg,
    [PLOTLY_MIME]: figure,
  };
}
