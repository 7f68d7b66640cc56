// The LoRA merge (Hu et al. 2021, section 4.1: W' = W + scale · B·A), in fp32 on the host for a
// block of rows, so a projection of any size is merged within a fixed working set.
import type { HostLora } from "./savable-model.js";

/**
 * rows[i - r0, :] += Σ_k (scale · B[i, k]) · A[k, :] for i in [r0, r1), straight into the base row
 * (`rows` holds (r1 - r0) × cols f32 values). Eight (then four, then one) ranks per pass over the
 * row: the row is loaded and stored an eighth as often, which is what bounds this loop in JS
 * (8192 × 2048, r = 16 on a 2-CPU host: 616 ms one rank per pass, 264 ms eight). The products are summed in f64 before the f32 store,
 * so the result is at least as exact as PEFT's fp32 (B·A)·scale, far below bf16/f16 storage precision.
 */
export function addLoraDeltaRows(rows: Float32Array, lora: HostLora, r0: number, r1: number, cols: number): void {
  const { a, b, r, scale } = lora;
  for (let i = r0; i < r1; i++) {
    const row = rows.subarray((i - r0) * cols, (i - r0 + 1) * cols);
    let k = 0;
    for (; k + 8 <= r; k += 8) {
      const o = i * r + k;
      const c0 = scale * b[o]!, c1 = scale * b[o + 1]!, c2 = scale * b[o + 2]!, c3 = scale * b[o + 3]!;
      const c4 = scale * b[o + 4]!, c5 = scale * b[o + 5]!, c6 = scale * b[o + 6]!, c7 = scale * b[o + 7]!;
      const base = k * cols;
      for (let j = 0; j < cols; j++) {
        row[j] += c0 * a[base + j]! + c1 * a[base + cols + j]! + c2 * a[base + 2 * cols + j]! + c3 * a[base + 3 * cols + j]! +
          c4 * a[base + 4 * cols + j]! + c5 * a[base + 5 * cols + j]! + c6 * a[base + 6 * cols + j]! + c7 * a[base + 7 * cols + j]!;
      }
    }
    for (; k + 4 <= r; k += 4) {
      const c0 = scale * b[i * r + k]!, c1 = scale * b[i * r + k + 1]!, c2 = scale * b[i * r + k + 2]!, c3 = scale * b[i * r + k + 3]!;
      const a0 = a.subarray(k * cols, (k + 1) * cols), a1 = a.subarray((k + 1) * cols, (k + 2) * cols);
      const a2 = a.subarray((k + 2) * cols, (k + 3) * cols), a3 = a.subarray((k + 3) * cols, (k + 4) * cols);
      for (let j = 0; j < cols; j++) row[j] += c0 * a0[j]! + c1 * a1[j]! + c2 * a2[j]! + c3 * a3[j]!;
    }
    for (; k < r; k++) {
      const c = scale * b[i * r + k]!;
      const ak = a.subarray(k * cols, (k + 1) * cols);
      for (let j = 0; j < cols; j++) row[j] += c * ak[j]!;
    }
  }
}
