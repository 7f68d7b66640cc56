// Linear layers on the GPU: a frozen base (NF4 or dense) plus an optional f32 LoRA adapter. An NF4
// base is dequantized into one reused bf16 workspace and kept there until another layer needs it,
// so a forward followed by its backward (or a recompute) dequantizes once (DESIGN.md).
import type { FrozenLinear, LoraAdapter, LoraGrads, Nf4Weight, Tensor } from "../types.js";
import type { CudaBackend } from "./backend.js";
import { gemvApplies, nf4Gemv } from "./decode-ops.js";
import { check } from "./native.js";
import { nf4GemmSmall, smallBatchApplies } from "./nf4-small-batch.js";
import { withDtype } from "./ops.js";
import { asCuda, CudaTensor, lastDim, rowsOf } from "./tensor.js";

export class LinearOps {
  private workspace: { base: FrozenLinear | null; tensor: CudaTensor } | null = null;

  constructor(private readonly be: CudaBackend) {}

  /** The base weight as bf16 [out, in]: the tensor itself when already bf16, else the workspace. */
  private denseWeight(base: FrozenLinear): CudaTensor {
    const w = base.weight;
    if (w.kind === "dense" && w.weight.dtype === "bf16") return asCuda(w.weight, "weight");
    if (this.workspace?.base === base) return this.workspace.tensor;
    const n = w.outFeatures * w.inFeatures;
    if (!this.workspace || this.workspace.tensor.numel < n) {
      this.release();
      this.workspace = { base: null, tensor: this.be.alloc([n], "bf16", "workspace") };
    }
    const ws = this.workspace.tensor;
    if (w.kind === "nf4") this.dequantize(w, ws, n);
    else {
      const src = asCuda(w.weight, "weight");
      check(this.be.lib.cast(src.ptr, src.code, ws.ptr, ws.code, n), "tsl_cast");
    }
    this.workspace.base = base;
    return ws;
  }

  private dequantize(w: Nf4Weight, out: CudaTensor, n: number): void {
    const packed = asCuda(w.packed, "nf4 packed"), absmax = asCuda(w.absmax, "nf4 absmax");
    const nested = w.nested;
    const f32Absmax = nested ? null : absmax;
    if (!nested && absmax.dtype !== "f32") throw new Error(`tsloth: NF4 absmax without double quantization must be f32, found ${absmax.dtype}`);
    check(
      this.be.lib.nf4Dequantize(
        packed.ptr, n, w.blocksize, f32Absmax?.ptr ?? null, nested ? absmax.ptr : null,
        nested ? asCuda(nested.absmax).ptr : null, nested ? asCuda(nested.code).ptr : null,
        nested?.blocksize ?? 0, nested?.offset ?? 0, out.ptr, out.code,
      ),
      "tsl_nf4_dequantize",
    );
  }

  forward(x: Tensor, base: FrozenLinear, lora: LoraAdapter | null): Tensor {
    const inF = base.weight.inFeatures, outF = base.weight.outFeatures;
    if (lastDim(x) !== inF) throw new Error(`tsloth: linear expects ${inF} input features, found ${lastDim(x)}`);
    const T = rowsOf(x);
    // Batch-1 decode reads the 4-bit codes once instead of dequantizing W (decode-ops.ts).
    if (base.weight.kind === "nf4" && gemvApplies(base.weight, T)) return nf4Gemv(this.be, x, base.weight, base.bias, lora);
    // Batched decode (2..16 rows) reads them once on tensor cores (nf4-small-batch.ts).
    if (base.weight.kind === "nf4" && smallBatchApplies(base.weight, x, T)) return nf4GemmSmall(this.be, x, T, base.weight, base.bias, lora);
    const w = this.denseWeight(base);
    const bias = base.bias ? asCuda(base.bias, "bias") : null;
    const { a, b, r } = adapter(lora);
    return withDtype(this.be, "bf16", [x], (cx) => {
      const y = this.be.alloc([T, outF], "bf16");
      check(
        this.be.lib.linearFwd(cx.ptr, w.ptr, bias?.ptr ?? null, bias?.code ?? 0, a?.ptr ?? null, b?.ptr ?? null, lora?.scale ?? 0, T, inF, outF, r, y.ptr),
        "tsl_linear_fwd",
      );
      return y;
    });
  }

  backward(dy: Tensor, x: Tensor, base: FrozenLinear, lora: LoraAdapter | null, grads: LoraGrads | null, needDx: boolean): Tensor | null {
    const inF = base.weight.inFeatures, outF = base.weight.outFeatures;
    const T = rowsOf(x);
    if (!needDx && !(lora && grads)) return null;
    const w = this.denseWeight(base);
    const { a, b, r } = adapter(lora);
    const ga = grads && lora ? f32(grads.a, "LoRA grad a") : null;
    const gb = grads && lora ? f32(grads.b, "LoRA grad b") : null;
    return withDtype(this.be, "bf16", [dy, x], (cdy, cx) => {
      const dx = needDx ? this.be.alloc([T, inF], "bf16") : null;
      check(
        this.be.lib.linearBwd(cdy.ptr, cx.ptr, w.ptr, a?.ptr ?? null, b?.ptr ?? null, lora?.scale ?? 0, T, inF, outF, r,
          dx?.ptr ?? null, ga?.ptr ?? null, gb?.ptr ?? null),
        "tsl_linear_bwd",
      );
      return dx;
    });
  }

  /** Called when a tensor is freed: a freed workspace must not be reused. */
  forget(t: CudaTensor): void {
    if (this.workspace?.tensor === t) this.workspace = null;
  }

  release(): void {
    const ws = this.workspace;
    this.workspace = null;
    if (ws) this.be.free(ws.tensor);
  }
}

function f32(t: Tensor, what: string): CudaTensor {
  const c = asCuda(t, what);
  if (c.dtype !== "f32") throw new Error(`tsloth: ${what} must be f32 (adapters train in f32), found ${c.dtype}`);
  return c;
}

function adapter(lora: LoraAdapter | null): { a: CudaTensor | null; b: CudaTensor | null; r: number } {
  if (!lora) return { a: null, b: null, r: 0 };
  return { a: f32(lora.a, "LoRA a"), b: f32(lora.b, "LoRA b"), r: lora.a.shape[0] };
}
