// Learning-rate schedules with linear warmup, as transformers' get_linear_schedule_with_warmup and
// get_cosine_schedule_with_warmup define them (step counts from 0; the rate used for update k).
export type ScheduleName = "linear" | "cosine" | "constant";

export const SCHEDULES: readonly ScheduleName[] = ["linear", "cosine", "constant"];

export function parseSchedule(s: string | undefined): ScheduleName {
  if (s === undefined) return "linear";
  if ((SCHEDULES as readonly string[]).includes(s)) return s as ScheduleName;
  throw new Error(`tsloth: learning-rate schedule "${s}" is not known; expected one of ${SCHEDULES.join(", ")}`);
}

/** Rate for optimizer update `step` (0-based) of `total`. */
export function learningRate(schedule: ScheduleName, peak: number, step: number, total: number, warmup: number): number {
  if (step < warmup) return (peak * step) / Math.max(1, warmup);
  if (schedule === "constant") return peak;
  const progress = (step - warmup) / Math.max(1, total - warmup);
  if (schedule === "linear") return peak * Math.max(0, 1 - progress);
  return peak * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}
