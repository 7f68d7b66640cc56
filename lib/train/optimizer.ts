// AdamW over the LoRA parameters: fp32 first and second moments in the "optimizer" category,
// global-norm gradient clipping, and the state that save/resume carries.
import type { Backend, Tensor } from "../backend/types.js";

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export class AdamWState {
  readonly m: Tensor[];
  readonly v: Tensor[];
  /** Updates applied so far (AdamW's bias-correction step count). */
  step = 0;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;

  constructor(private readonly be: Backend, readonly params: readonly Tensor[], readonly grads: readonly Tensor[], opts: AdamWOptions = {}) {
    this.m = params.map((p) => be.zeros(p.shape, "f32", "optimizer"));
    this.v = params.map((p) => be.zeros(p.shape, "f32", "optimizer"));
    // PyTorch's AdamW defaults except weight decay, which LoRA recipes (Unsloth, PEFT examples) set to 0.
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
  }

  /** Global L2 norm of the gradients. */
  gradNorm(): number {
    return Math.sqrt(this.be.sumOfSquares(this.grads));
  }

  /** Scales gradients so their global norm is at most maxNorm (torch clip_grad_norm_); returns the norm before. */
  clip(maxNorm: number): number {
    const norm = this.gradNorm();
    if (maxNorm > 0 && norm > maxNorm) {
      const s = maxNorm / (norm + 1e-6);
      for (const g of this.grads) this.be.scaleInPlace(g, s);
    }
    return norm;
  }

  apply(lr: number): void {
    this.step++;
    this.be.adamw(this.params, this.grads, this.m, this.v, {
      lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay, step: this.step,
    });
  }

  free(): void {
    for (const t of [...this.m, ...this.v]) this.be.free(t);
  }
}
