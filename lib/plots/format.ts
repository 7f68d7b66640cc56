// Number formatting shared by plots, tables and progress bars.

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"] as const;

/** The binary unit (power of 1024) that shows `maxBytes` as a number between 1 and 1024. */
export function byteUnitFor(maxBytes: number): { name: string; scale: number } {
  let i = 0;
  while (i < BYTE_UNITS.length - 1 && Math.abs(maxBytes) >= 1024 ** (i + 1)) i++;
  return { name: BYTE_UNITS[i], scale: 1024 ** i };
}

/** 1536 -> "1.50 KiB", 0 -> "0 B". */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return "?";
  const unit = byteUnitFor(bytes);
  if (unit.scale === 1) return `${Math.round(bytes)} B`;
  const v = bytes / unit.scale;
  return `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${unit.name}`;
}

/** Seconds as "42s", "3m 05s", "2h 03m". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

/** Compact number for labels: 12345 -> "12.3K", 0.0002 -> "2.0e-4". */
export function formatCompact(v: number): string {
  if (!Number.isFinite(v)) return "?";
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "K";
  if (a >= 0.01) return String(Number(v.toPrecision(4)));
  return v.toExponential(1);
}

/** Escapes text for HTML and XML content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}
