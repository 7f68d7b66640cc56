// Batched decode's linear layers (2..16 rows) straight from the 4-bit NF4 codes on tensor cores
// (kernels-cuda/src/nf4_gemm_small.cu): the weights are read once per step, where dequantize + GEMM
// writes and re-reads them in bf16.
import type { Nf4Weight, Tensor } from "../types.js";
import type { CudaBackend } from "./backend.js";
import { check } from "./native.js";
import { withDtype } from "./ops.js";
import { asCuda, type CudaTensor } from "./tensor.js";

/** The most rows the kernel takes (two 8-token tensor-core tiles). */
export const NF4_SMALL_BATCH_MAX_ROWS = 16;

const isPow2 = (v: number): boolean => v > 0 && (v & (v - 1)) === 0;

/** Whether rows of x can take the small-batch kernel for this weight (else dequantize + GEMM). */
export function smallBatchApplies(w: Nf4Weight, x: Tensor, rows: number): boolean {
  // TSLOTH_NF4_SMALL_BATCH=off keeps dequantize + GEMM (to compare the two paths).
  if (rows < 2 || rows > NF4_SMALL_BATCH_MAX_ROWS || process.env.TSLOTH_NF4_SMALL_BATCH === "off") return false;
  if (w.inFeatures % 64 !== 0 || w.blocksize < 64 || !isPow2(w.blocksize)) return false;
  if (w.nested ? !isPow2(w.nested.blocksize) : w.absmax.dtype !== "f32") return false;
  const cx = asCuda(x, "x");
  const aligned = (t: CudaTensor, bytes: bigint): boolean => t.ptr % bytes === 0n;
  return aligned(asCuda(w.packed), 16n) && aligned(asCuda(w.absmax), 4n) && (cx.dtype !== "bf16" || aligned(cx, 16n)) &&
    (!w.nested || aligned(asCuda(w.nested.absmax), 4n));
}

/** y [T, out] = x [T, in] · Wᵀ (+ bias) (+ LoRA) for 2..16 rows, W read once from its 4-bit codes. */
export function nf4GemmSmall(be: CudaBackend, x: Tensor, rows: number, w: Nf4Weight, bias: Tensor | null,
  lora: { a: Tensor; b: Tensor; scale: number } | null): Tensor {
  const packed = asCuda(w.packed, "nf4 packed"), absmax = asCuda(w.absmax, "nf4 absmax"), n = w.nested;
  const cb = bias ? asCuda(bias, "bias") : null;
  const a = lora ? f32(lora.a, "LoRA a") : null, b = lora ? f32(lora.b, "LoRA b") : null;
  return withDtype(be, "bf16", [x], (cx) => {
    const y = be.alloc([rows, w.outFeatures], "bf16");
    check(
      be.lib.nf4GemmSmall(packed.ptr, w.outFeatures, w.inFeatures, w.blocksize, n ? null : absmax.ptr, n ? absmax.ptr : null,
        n ? asCuda(n.absmax).ptr : null, n ? asCuda(n.code).ptr : null, n?.blocksize ?? 0, n?.offset ?? 0, cx.ptr, rows,
        cb?.ptr ?? null, cb?.code ?? 0, a?.ptr ?? null, b?.ptr ?? null, lora?.scale ?? 0, a ? a.shape[0] : 0, y.ptr),
      "tsl_nf4_gemm_small",
    );
    return y;
  });
}

function f32(t: Tensor, what: string): CudaTensor {
  const c = asCuda(t, what);
  if (c.dtype !== "f32") throw new Error(`tsloth: ${what} must be f32 (adapters train in f32), found ${c.dtype}`);
  return c;
}
