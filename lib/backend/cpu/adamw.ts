// AdamW (Loshchilov & Hutter 2019) with PyTorch's update order: decoupled decay, then the
// bias-corrected Adam step. fp32 params and state, updated in place.
import type { AdamWHyper, Tensor } from "../types.js";
import { f32Data } from "./tensor.js";

export function adamw(params: readonly Tensor[], grads: readonly Tensor[], m: readonly Tensor[], v: readonly Tensor[], hp: AdamWHyper): void {
  const bc1 = 1 - hp.beta1 ** hp.step;
  const bc2 = 1 - hp.beta2 ** hp.step;
  const stepSize = hp.lr / bc1;
  const bc2Sqrt = Math.sqrt(bc2);
  const decay = 1 - hp.lr * hp.weightDecay;
  for (let k = 0; k < params.length; k++) {
    const p = f32Data(params[k]), g = f32Data(grads[k]), mk = f32Data(m[k]), vk = f32Data(v[k]);
    for (let i = 0; i < p.length; i++) {
      const gi = g[i];
      mk[i] = hp.beta1 * mk[i] + (1 - hp.beta1) * gi;
      vk[i] = hp.beta2 * vk[i] + (1 - hp.beta2) * gi * gi;
      p[i] = p[i] * decay - (stepSize * mk[i]) / (Math.sqrt(vk[i]) / bc2Sqrt + hp.eps);
    }
  }
}
