// The memory categories the views show, in stacking order (bottom of the VRAM plot first): the
// engine's own accounting (lib/backend/types.ts MEMORY_CATEGORIES; DESIGN.md, "Memory is
// accounted by category everywhere") plus other_processes, what the device reports in use that
// this process did not allocate. offload_host lives in host RAM, not on the device: views draw
// it, but never count it toward device totals.

export const MEMORY_VIEW_CATEGORIES = [
  "base_weights",
  "adapters",
  "optimizer",
  "activations",
  "kv_cache",
  "workspace",
  "other_processes",
  "offload_host",
] as const;

export type MemoryViewCategory = (typeof MEMORY_VIEW_CATEGORIES)[number];

/** Categories that live in host RAM (not counted as device memory). */
export const HOST_CATEGORIES: ReadonlySet<string> = new Set(["offload_host"]);

export const CATEGORY_LABELS: Record<MemoryViewCategory, string> = {
  base_weights: "base weights (NF4)",
  adapters: "LoRA adapters",
  optimizer: "optimizer state",
  activations: "activations",
  kv_cache: "KV cache",
  workspace: "workspace",
  other_processes: "other processes",
  offload_host: "offloaded (host RAM)",
};

// Colour-blind-safe palette (Okabe & Ito, "Color Universal Design", 2008) plus a grey for
// memory tsloth does not own; same colour per category in every plot and table.
export const CATEGORY_COLORS: Record<MemoryViewCategory, string> = {
  base_weights: "#0072B2",
  adapters: "#E69F00",
  optimizer: "#D55E00",
  activations: "#009E73",
  kv_cache: "#CC79A7",
  workspace: "#F0E442",
  other_processes: "#999999",
  offload_host: "#56B4E9",
};

export function categoryLabel(c: string): string {
  return (CATEGORY_LABELS as Record<string, string>)[c] ?? c;
}

export function categoryColor(c: string): string {
  return (CATEGORY_COLORS as Record<string, string>)[c] ?? "#7f7f7f";
}

/** Current and peak bytes of one category. */
export interface CategoryBytes {
  current: number;
  peak: number;
}

/**
 * What the engine reports, in any of the shapes it comes in: the backend's MemoryReport
 * ({current, peak} records), a Map or record of {current, peak}, or a record of plain bytes.
 */
export type CategoryBreakdown =
  | { current: Readonly<Record<string, number>>; peak: Readonly<Record<string, number>> }
  | ReadonlyMap<string, CategoryBytes | number>
  | Readonly<Record<string, CategoryBytes | number>>;

function isReport(b: unknown): b is { current: Record<string, number>; peak: Record<string, number> } {
  const r = b as { current?: unknown; peak?: unknown };
  return typeof r.current === "object" && r.current !== null && typeof r.peak === "object" && r.peak !== null;
}

/** Normalizes a breakdown into a record of {current, peak} bytes by category name. */
export function normalizeBreakdown(breakdown: CategoryBreakdown | undefined): Record<string, CategoryBytes> {
  const out: Record<string, CategoryBytes> = {};
  if (!breakdown) return out;
  let entries: [string, CategoryBytes | number][];
  if (breakdown instanceof Map) entries = [...breakdown.entries()];
  else if (isReport(breakdown)) {
    entries = Object.keys(breakdown.current).map((k) => [k, { current: breakdown.current[k], peak: breakdown.peak[k] ?? breakdown.current[k] }]);
  } else entries = Object.entries(breakdown as Record<string, CategoryBytes | number>);
  for (const [name, v] of entries) {
    const bytes = typeof v === "number" ? { current: v, peak: v } : { current: v.current, peak: Math.max(v.peak, v.current) };
    if (!Number.isFinite(bytes.current) || bytes.current < 0 || !Number.isFinite(bytes.peak)) {
      throw new Error(`tsloth: memory category "${name}" reports ${bytes.current} bytes; expected a finite number >= 0. Pass the backend's memory() report.`);
    }
    out[name] = bytes;
  }
  return out;
}
