// %estimate's output: predicted peak by category, the fit verdict and the nearest settings that fit.
import { escapeXml, formatBytes, formatCompact } from "../plots/format.js";
import type { MimeBundle } from "../plots/mime-bundle.js";
import { categoryColor, categoryLabel } from "./categories.js";
import type { MemoryEstimate } from "./estimator.js";

const ORDER = ["base_weights", "adapters", "optimizer", "activations", "workspace", "overhead", "offload_host"];

function rows(e: MemoryEstimate): [string, number][] {
  const names = [...ORDER.filter((c) => c in e.bytes), ...Object.keys(e.bytes).filter((c) => !ORDER.includes(c))];
  return names.map((c) => [c, e.bytes[c]]);
}

const label = (c: string) => (c === "overhead" ? "CUDA context + headroom" : categoryLabel(c));

function settingsLine(e: MemoryEstimate): string {
  const s = e.settings;
  return `batch ${s.batch} x seq ${s.seq}, gradAccum ${s.gradAccum}, LoRA r ${s.r} on ${s.targets.join(",")}, checkpoint ${s.checkpoint}`;
}

function verdict(e: MemoryEstimate): string {
  if (e.fits === undefined) return `predicted peak ${formatBytes(e.deviceBytes)} of device memory (no GPU size to compare with)`;
  if (e.fits) return `fits: ${formatBytes(e.deviceBytes)} of ${formatBytes(e.gpuBytes!)} (${formatBytes(e.gpuBytes! - e.deviceBytes)} to spare)`;
  const none = e.suggestions.length === 0 ? "; no batch, sequence or checkpointing setting fits: the base weights need a larger GPU" : "";
  return `does not fit: ${formatBytes(e.deviceBytes)} needed, ${formatBytes(e.gpuBytes!)} available${none}`;
}

export function estimateText(e: MemoryEstimate): string {
  const r = rows(e);
  const w = Math.max(...r.map(([c]) => label(c).length), 20);
  const lines = [`estimate for ${settingsLine(e)}`, `${formatCompact(e.baseParams)} base params, ${formatCompact(e.loraParams)} LoRA params`];
  for (const [c, b] of r) lines.push(`  ${label(c).padEnd(w)}  ${formatBytes(b).padStart(10)}${c === "offload_host" ? "  (host RAM)" : ""}`);
  lines.push(`  ${"device total".padEnd(w)}  ${formatBytes(e.deviceBytes).padStart(10)}`, verdict(e));
  for (const s of e.suggestions) lines.push(`  try ${s.change}: needs ${formatBytes(s.deviceBytes)}`);
  return lines.join("\n");
}

export function estimateHtml(e: MemoryEstimate): string {
  const td = `style="padding:2px 10px;text-align:right;font-variant-numeric:tabular-nums"`;
  const body = rows(e)
    .map(([c, b]) => `<tr><td style="padding:2px 10px;text-align:left"><span style="display:inline-block;width:10px;height:10px;background:${categoryColor(c)};margin-right:6px"></span>${escapeXml(label(c))}${c === "offload_host" ? " <i>(host RAM)</i>" : ""}</td><td ${td}>${formatBytes(b)}</td></tr>`)
    .join("");
  const color = e.fits === false ? "#D55E00" : e.fits ? "#009E73" : "#333";
  const tips = e.suggestions.length
    ? `<ul style="margin:4px 0">${e.suggestions.map((s) => `<li>${escapeXml(s.change)}: needs ${formatBytes(s.deviceBytes)}</li>`).join("")}</ul>`
    : "";
  return (
    `<div class="tsloth-estimate" style="font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:13px">` +
    `<div>${escapeXml(settingsLine(e))}</div>` +
    `<table style="border-collapse:collapse;margin:6px 0;font-size:13px">${body}<tr style="border-top:1px solid #ccc"><td style="padding:2px 10px;text-align:left"><b>device total</b></td><td ${td}><b>${formatBytes(e.deviceBytes)}</b></td></tr></table>` +
    `<div style="color:${color};font-weight:600">${escapeXml(verdict(e))}</div>${tips}</div>`
  );
}

export function estimateBundle(e: MemoryEstimate): MimeBundle {
  return { "text/plain": estimateText(e), "text/html": estimateHtml(e) };
}
