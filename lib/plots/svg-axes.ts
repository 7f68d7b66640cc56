// Axis arithmetic for the SVG charts: "nice" tick steps (1, 2, 2.5, 5 x 10^k), after Heckbert,
// "Nice numbers for graph labels", Graphics Gems (1990).

export interface AxisScale {
  min: number;
  max: number;
  ticks: number[];
}

function niceStep(span: number, targetTicks: number): number {
  const raw = span / Math.max(1, targetTicks);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  const nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
  return nice * mag;
}

/**
 * A scale covering [lo, hi] with about `targetTicks` ticks. `snap` widens the domain to whole
 * steps (good for value axes); without it the domain is the data range and only ticks are nice
 * (good for step/time axes, whose ends carry meaning).
 */
export function niceScale(lo: number, hi: number, targetTicks = 5, snap = true): AxisScale {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return { min: 0, max: 1, ticks: [0, 0.5, 1] };
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep(hi - lo, targetTicks);
  const min = snap ? Math.floor(lo / step + 1e-9) * step : lo;
  const max = snap ? Math.ceil(hi / step - 1e-9) * step : hi;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step - 1e-9) * step; t <= max + step * 1e-9; t += step) {
    ticks.push(Number(t.toPrecision(12)));
  }
  return { min, max, ticks };
}

/** Maps a data value to pixels for a scale laid over [p0, p1]. */
export function project(scale: AxisScale, v: number, p0: number, p1: number): number {
  return p0 + ((v - scale.min) / (scale.max - scale.min)) * (p1 - p0);
}

/** Keeps at most `limit` points (evenly strided, always keeping the last) so outputs stay small. */
export function decimateIndices(n: number, limit: number): number[] {
  if (n <= limit) return Array.from({ length: n }, (_, i) => i);
  const out: number[] = [];
  const stride = (n - 1) / (limit - 1);
  for (let k = 0; k < limit; k++) out.push(Math.round(k * stride));
  return out;
}
