// The model the engine magics work on: the last one %load_4bit loaded (kept in the kernel's state).
import type { Model } from "../../lib/index.js";
import { MagicUsageError, type MagicContext } from "./types.js";

const MODEL_KEY = "model";

export function setCurrentModel(ctx: MagicContext, model: Model): void {
  ctx.state.set(MODEL_KEY, model);
}

export function currentModel(ctx: MagicContext, magic: string): Model {
  const model = ctx.state.get(MODEL_KEY) as Model | undefined;
  if (!model) throw new MagicUsageError(`%${magic}: no model is loaded; run %load_4bit MODEL first (for example %load_4bit tsloth-tiny)`);
  return model;
}

export function maybeCurrentModel(ctx: MagicContext): Model | undefined {
  return ctx.state.get(MODEL_KEY) as Model | undefined;
}

/** "q,k,v" -> ["q","k","v"]; undefined stays undefined (the lib default). */
export function listOption(value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  return String(value).split(",").map((s) => s.trim()).filter((s) => s.length > 0);
}

/**
 * Gives a magic's result a one-line display (the object stays whole for code that binds it), so
 * a cell shows "Trained 160 steps ..." rather than a dump of the object.
 */
export function shownAs<T extends object>(value: T, text: string): T {
  Object.defineProperty(value, Symbol.for("tsloth.mimeBundle"), {
    value: () => ({ "text/plain": text }),
    enumerable: false,
    configurable: true,
  });
  return value;
}
