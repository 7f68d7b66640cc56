// LoRA adapters (Hu et al. 2021) on a frozen base: fp32 A [r, in] and B [out, r] per targeted
// projection, their gradients, PEFT-compatible names and initialization.
import type { Backend, LoraAdapter, LoraGrads, Tensor } from "../backend/types.js";
import type { ModelConfig } from "../formats/hf-config.js";
import { Rng } from "./random.js";
import { hfLinearKey, LINEAR_NAMES, linearShape, type LinearName } from "./weights.js";

export interface LoraOptions {
  /** Rank; DESIGN.md default 16. */
  r?: number;
  /** Scale numerator; default 16 (scale = alpha / r, or alpha / sqrt(r) with rsLoRA). */
  alpha?: number;
  /** Projections to adapt; default all seven. Accepts "q" or "q_proj". */
  targets?: readonly string[];
  seed?: number;
  /** Rank-stabilized LoRA (Kalajdzievski 2023): scale = alpha / sqrt(r). */
  rslora?: boolean;
}

export interface ResolvedLoraOptions {
  r: number;
  alpha: number;
  targets: LinearName[];
  seed: number;
  rslora: boolean;
}

export interface LoraSlot {
  layer: number;
  target: LinearName;
  adapter: LoraAdapter;
  grads: LoraGrads;
}

export interface LoraState {
  options: ResolvedLoraOptions;
  /** slots[layer][target], undefined where a projection is not adapted. */
  byLayer: Partial<Record<LinearName, LoraSlot>>[];
  /** Every slot in a fixed order (layer, then q,k,v,o,gate,up,down): the optimizer's order. */
  slots: LoraSlot[];
}

export const DEFAULT_LORA: ResolvedLoraOptions = { r: 16, alpha: 16, targets: [...LINEAR_NAMES], seed: 3407, rslora: false };

export function resolveLoraTargets(targets: readonly string[]): LinearName[] {
  const out: LinearName[] = [];
  for (const raw of targets) {
    const t = raw.trim().replace(/_proj$/, "");
    if (!(LINEAR_NAMES as readonly string[]).includes(t)) {
      throw new Error(
        `tsloth: LoRA target "${raw}" is not a projection of this model; expected some of ${LINEAR_NAMES.join(", ")} ` +
          `(or their _proj names, e.g. q_proj, down_proj).`,
      );
    }
    if (!out.includes(t as LinearName)) out.push(t as LinearName);
  }
  if (out.length === 0) throw new Error(`tsloth: LoRA needs at least one target; expected some of ${LINEAR_NAMES.join(", ")}`);
  return out;
}

export function resolveLoraOptions(o: LoraOptions): ResolvedLoraOptions {
  const r = o.r ?? DEFAULT_LORA.r;
  if (!Number.isInteger(r) || r <= 0) throw new Error(`tsloth: LoRA rank r must be a positive integer, found ${r}`);
  const alpha = o.alpha ?? DEFAULT_LORA.alpha;
  if (!(alpha > 0)) throw new Error(`tsloth: LoRA alpha must be positive, found ${alpha}`);
  return { r, alpha, targets: resolveLoraTargets(o.targets ?? DEFAULT_LORA.targets), seed: o.seed ?? DEFAULT_LORA.seed, rslora: o.rslora ?? false };
}

export function loraScale(o: ResolvedLoraOptions): number {
  return o.rslora ? o.alpha / Math.sqrt(o.r) : o.alpha / o.r;
}

/** PEFT's key of a LoRA weight: base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight. */
export function peftLoraKey(layer: number, target: LinearName, which: "A" | "B"): string {
  return `base_model.model.${hfLinearKey(layer, target)}.lora_${which}.weight`;
}

/**
 * Creates adapters with PEFT's default init: A from kaiming_uniform(a=√5), i.e. U(±1/√in), and B
 * zero, so training starts from the base model's function. Draws follow the slot order.
 */
export function createLora(be: Backend, config: ModelConfig, options: LoraOptions): LoraState {
  const opts = resolveLoraOptions(options);
  const rng = new Rng(opts.seed);
  const scale = loraScale(opts);
  const byLayer: Partial<Record<LinearName, LoraSlot>>[] = [];
  const slots: LoraSlot[] = [];
  for (let layer = 0; layer < config.numLayers; layer++) {
    const row: Partial<Record<LinearName, LoraSlot>> = {};
    for (const target of LINEAR_NAMES) {
      if (!opts.targets.includes(target)) continue;
      const [out, inF] = linearShape(config, target);
      const bound = 1 / Math.sqrt(inF);
      const a = new Float32Array(opts.r * inF);
      for (let i = 0; i < a.length; i++) a[i] = rng.uniform(-bound, bound);
      const slot: LoraSlot = {
        layer,
        target,
        adapter: { a: be.upload(a, [opts.r, inF], "f32", "adapters"), b: be.zeros([out, opts.r], "f32", "adapters"), scale },
        grads: { a: be.zeros([opts.r, inF], "f32", "adapters"), b: be.zeros([out, opts.r], "f32", "adapters") },
      };
      row[target] = slot;
      slots.push(slot);
    }
    byLayer.push(row);
  }
  return { options: opts, byLayer, slots };
}

/** The trainable tensors and their gradients, in slot order (A then B per slot). */
export function loraParams(state: LoraState): { params: Tensor[]; grads: Tensor[]; names: string[] } {
  const params: Tensor[] = [], grads: Tensor[] = [], names: string[] = [];
  for (const s of state.slots) {
    params.push(s.adapter.a, s.adapter.b);
    grads.push(s.grads.a, s.grads.b);
    names.push(peftLoraKey(s.layer, s.target, "A"), peftLoraKey(s.layer, s.target, "B"));
  }
  return { params, grads, names };
}

export function zeroLoraGrads(be: Backend, state: LoraState): void {
  for (const s of state.slots) {
    be.zeroInPlace(s.grads.a);
    be.zeroInPlace(s.grads.b);
  }
}

export function freeLora(be: Backend, state: LoraState): void {
  for (const s of state.slots) for (const t of [s.adapter.a, s.adapter.b, s.grads.a, s.grads.b]) be.free(t);
}

export function countLoraParams(state: LoraState): number {
  let n = 0;
  for (const s of state.slots) n += s.adapter.a.shape[0] * s.adapter.a.shape[1] + s.adapter.b.shape[0] * s.adapter.b.shape[1];
  return n;
}
