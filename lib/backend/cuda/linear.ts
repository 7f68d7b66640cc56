// Linear layers on the GPU: a frozen base (NF4 or dense) plus an optional f32 LoRA adapter. An NF4
// base is dequantized into one reused bf16 workspace and kept there until another layer needs it,
// so a forward followed by its backward (or a recompute) dequantizes once (DESIGN.md). Linears that
// share x (q/k/v, gate/up) run as a group: their LoRA passes over x happen once for the group.
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

  /**
   * Linears sharing x (Backend.linearGroup) above the decode paths: the adapters' x·aᵀ for the whole
   * group in one GEMM (tsl_lora_down_group: one pass over x instead of one per projection), then
   * each base dequantized in turn into the workspace and applied with its adapter's slice.
   */
  forwardGroup(x: Tensor, bases: readonly FrozenLinear[], loras: readonly (LoraAdapter | null)[]): Tensor[] {
    const T = rowsOf(x), inF = groupInFeatures(x, bases, "linearGroup");
    const group = adapterGroup(bases.map((_, i) => loras[i] ?? null), null);
    // One or a few rows take the decode kernels, which read the 4-bit codes once per linear; a group
    // without adapters has no shared pass over x to save.
    const decodes = bases.some(({ weight: w }) => w.kind === "nf4" && (gemvApplies(w, T) || smallBatchApplies(w, x, T)));
    if (decodes || group.members.length === 0) return bases.map((b, i) => this.forward(x, b, loras[i] ?? null));
    return withDtype(this.be, "bf16", [x], (cx) => {
      const xa = this.loraDown(cx, T, inF, group);
      const ys: CudaTensor[] = [];
      try {
        bases.forEach((base, i) => {
          const w = this.denseWeight(base), bias = base.bias ? asCuda(base.bias, "bias") : null;
          const m = group.members.find((e) => e.index === i), b = m ? f32(m.lora.b, "LoRA b") : null;
          const y = this.be.alloc([T, base.weight.outFeatures], "bf16");
          ys.push(y);
          check(
            this.be.lib.linearFwdXa(cx.ptr, w.ptr, bias?.ptr ?? null, bias?.code ?? 0, m ? columnsAt(xa, m.col0) : null, group.cols,
              b?.ptr ?? null, m?.lora.scale ?? 0, T, inF, base.weight.outFeatures, m?.r ?? 0, y.ptr),
            "tsl_linear_fwd_xa",
          );
        });
      } catch (e) {
        for (const y of ys) this.be.free(y);
        throw e;
      } finally {
        this.be.free(xa);
      }
      return ys;
    });
  }

  /**
   * Backend.linearGroupBackward: per projection dx (+)= dy_i·W_i into one dx (no separate adds),
   * its columns of g = s_i·dy_i·b_i and dB_i; then the adapters' dA and the LoRA share of dx as one
   * GEMM each over the group (tsl_lora_up_group_bwd). x·aᵀ is recomputed once for the group (dB).
   */
  backwardGroup(
    dys: readonly Tensor[], x: Tensor, bases: readonly FrozenLinear[], loras: readonly (LoraAdapter | null)[],
    grads: readonly (LoraGrads | null)[], needDx: boolean,
  ): Tensor | null {
    const T = rowsOf(x), inF = groupInFeatures(x, bases, "linearGroupBackward");
    if (dys.length !== bases.length) throw new Error(`tsloth: linearGroupBackward expects one dy per base (${bases.length}), found ${dys.length}`);
    dys.forEach((dy, i) => {
      if (rowsOf(dy) !== T || lastDim(dy) !== bases[i].weight.outFeatures)
        throw new Error(`tsloth: linearGroupBackward dy ${i} must be [${T}, ${bases[i].weight.outFeatures}], found [${dy.shape}]`);
    });
    // An adapter takes part when dx needs its share or it has gradients of its own.
    const group = adapterGroup(bases.map((_, i) => loras[i] ?? null), (i) => needDx || !!grads[i]);
    if (!needDx && group.members.length === 0) return null;
    return withDtype(this.be, "bf16", [x, ...dys], (cx, ...cdys) => {
      const withDb = group.members.some((m) => grads[m.index]);
      let xa: CudaTensor | null = null, g: CudaTensor | null = null, dx: CudaTensor | null = null;
      try {
        if (withDb) xa = this.loraDown(cx, T, inF, group);
        if (group.members.length) g = this.be.alloc([T, group.cols], "bf16", "workspace");
        if (needDx) dx = this.be.alloc([T, inF], "bf16");
        let dxWritten = false;
        bases.forEach((base, i) => {
          const m = group.members.find((e) => e.index === i);
          if (!dx && !m) return;
          const w = dx ? this.denseWeight(base) : null;
          const gb = m && grads[i] ? f32(grads[i]!.b, "LoRA grad b") : null;
          check(
            this.be.lib.linearBwdXa(cdys[i].ptr, w?.ptr ?? null, m ? f32(m.lora.b, "LoRA b").ptr : null, m?.lora.scale ?? 0, T, inF,
              base.weight.outFeatures, m?.r ?? 0, gb && xa ? columnsAt(xa, m!.col0) : null, group.cols, dxWritten ? 1 : 0,
              dx?.ptr ?? null, m && g ? columnsAt(g, m.col0) : null, gb?.ptr ?? null),
            "tsl_linear_bwd_xa",
          );
          if (dx) dxWritten = true;
        });
        if (g) {
          const das = group.members.map((m) => (grads[m.index] ? f32(grads[m.index]!.a, "LoRA grad a").ptr : 0n));
          check(
            this.be.lib.loraUpGroupBwd(group.members.length, group.aPtrs, group.ranks, BigUint64Array.from(das), cx.ptr, g.ptr, T, inF, dx?.ptr ?? null),
            "tsl_lora_up_group_bwd",
          );
        }
      } catch (e) {
        if (dx) this.be.free(dx);
        throw e;
      } finally {
        if (xa) this.be.free(xa);
        if (g) this.be.free(g);
      }
      return dx;
    });
  }

  /** xa [T, Σr] bf16 (workspace) = x · [a_0; a_1; ...]ᵀ for the group's adapters, one GEMM. */
  private loraDown(cx: CudaTensor, T: number, inF: number, group: AdapterGroup): CudaTensor {
    const xa = this.be.alloc([T, group.cols], "bf16", "workspace");
    try {
      check(this.be.lib.loraDownGroup(group.members.length, group.aPtrs, group.ranks, cx.ptr, T, inF, xa.ptr), "tsl_lora_down_group");
    } catch (e) {
      this.be.free(xa);
      throw e;
    }
    return xa;
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

/** The adapters of a group as the C ABI stacks them: member i's columns of xa and g [T, Σr] start at col0. */
interface AdapterGroup {
  members: { index: number; lora: LoraAdapter; r: number; col0: number }[];
  /** Σr: the row stride of the group's xa and g. */
  cols: number;
  aPtrs: BigUint64Array;
  ranks: Int32Array;
}

function adapterGroup(loras: readonly (LoraAdapter | null)[], takesPart: ((i: number) => boolean) | null): AdapterGroup {
  const members: AdapterGroup["members"] = [];
  let cols = 0;
  loras.forEach((lora, index) => {
    if (!lora || (takesPart && !takesPart(index))) return;
    const r = lora.a.shape[0];
    members.push({ index, lora, r, col0: cols });
    cols += r;
  });
  return {
    members, cols,
    aPtrs: BigUint64Array.from(members.map((m) => f32(m.lora.a, "LoRA a").ptr)),
    ranks: Int32Array.from(members.map((m) => m.r)),
  };
}

/** The address of column `col` of row 0 of a bf16 [T, Σr] tensor (an adapter's block of xa or g). */
function columnsAt(t: CudaTensor, col: number): bigint {
  return t.ptr + BigInt(col * 2);
}

/** The in-features every base of a group shares with x. */
function groupInFeatures(x: Tensor, bases: readonly FrozenLinear[], op: string): number {
  if (bases.length === 0) throw new Error(`tsloth: ${op} needs at least one linear`);
  const inF = lastDim(x);
  bases.forEach((b, i) => {
    if (b.weight.inFeatures !== inF) throw new Error(`tsloth: ${op}: linear ${i} expects ${b.weight.inFeatures} input features, x has ${inF}`);
  });
  return inF;
}

function adapter(lora: LoraAdapter | null): { a: CudaTensor | null; b: CudaTensor | null; r: number } {
  if (!lora) return { a: null, b: null, r: 0 };
  return { a: f32(lora.a, "LoRA a"), b: f32(lora.b, "LoRA b"), r: lora.a.shape[0] };
}
