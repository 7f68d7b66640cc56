// Cross-entropy fused with the LM head on the GPU: kernels-cuda forms logits chunkTokens rows at a
// time in a workspace, so [T, V] logits never exist (tsl_ce_lmhead_fwd/_bwd; _fused for training).
import type { Tensor } from "../types.js";
import type { CudaBackend } from "./backend.js";
import { check } from "./native.js";
import { withDtype } from "./ops.js";
import { asCuda, CudaTensor, lastDim, rowsOf } from "./tensor.js";

function shapes(h: Tensor, head: Tensor, labels: Tensor): { T: number; H: number; V: number; lab: CudaTensor } {
  const T = rowsOf(h), H = lastDim(h), V = head.shape[0];
  if (lastDim(head) !== H) throw new Error(`tsloth: LM head is [${head.shape}], hidden states have ${H} features`);
  const lab = asCuda(labels, "labels");
  if (lab.dtype !== "i32" || lab.numel !== T) throw new Error(`tsloth: labels must be i32 [${T}], found ${lab.dtype} [${lab.shape}]`);
  return { T, H, V, lab };
}

function chunk(n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new Error(`tsloth: chunkTokens must be a positive integer, found ${n}`);
  return n;
}

export function crossEntropyLmHead(be: CudaBackend, h: Tensor, head: Tensor, labels: Tensor, chunkTokens: number): { lossSum: Tensor; lse: Tensor } {
  const { T, H, V, lab } = shapes(h, head, labels);
  return withDtype(be, "bf16", [h, head], (ch, cw) => {
    const lossSum = be.alloc([1], "f32");
    const lse = be.alloc([T], "f32");
    check(be.lib.ceFwd(ch.ptr, cw.ptr, lab.ptr, T, H, V, chunk(chunkTokens), lossSum.ptr, lse.ptr), "tsl_ce_lmhead_fwd");
    return { lossSum, lse };
  });
}

export function crossEntropyLmHeadBackward(
  be: CudaBackend, h: Tensor, head: Tensor, labels: Tensor, lse: Tensor, gradScale: number, chunkTokens: number,
): Tensor {
  const { T, H, V, lab } = shapes(h, head, labels);
  const l = asCuda(lse, "lse");
  return withDtype(be, "bf16", [h, head], (ch, cw) => {
    const dh = be.alloc([T, H], "bf16");
    check(be.lib.ceBwd(ch.ptr, cw.ptr, lab.ptr, l.ptr, T, H, V, chunk(chunkTokens), gradScale, dh.ptr), "tsl_ce_lmhead_bwd");
    return dh;
  });
}

/** Loss and dh together: each chunk's logits formed once (tsl_ce_lmhead_fused). */
export function crossEntropyLmHeadAndGrad(
  be: CudaBackend, h: Tensor, head: Tensor, labels: Tensor, gradScale: number, chunkTokens: number,
): { lossSum: Tensor; dh: Tensor } {
  const { T, H, V, lab } = shapes(h, head, labels);
  return withDtype(be, "bf16", [h, head], (ch, cw) => {
    const lossSum = be.alloc([1], "f32");
    const dh = be.alloc([T, H], "bf16");
    check(be.lib.ceFused(ch.ptr, cw.ptr, lab.ptr, T, H, V, chunk(chunkTokens), gradScale, lossSum.ptr, dh.ptr), "tsl_ce_lmhead_fused");
    return { lossSum, dh };
  });
}

export function lmHeadLogits(be: CudaBackend, h: Tensor, head: Tensor): Tensor {
  const T = rowsOf(h), H = lastDim(h), V = head.shape[0];
  return withDtype(be, "bf16", [h, head], (ch, cw) => {
    const logits = be.alloc([T, V], "f32");
    check(be.lib.gemm(0, 1, T, V, H, 1, ch.ptr, cw.ptr, 1, 0, logits.ptr, 0, null), "tsl_gemm");
    return logits;
  });
}
