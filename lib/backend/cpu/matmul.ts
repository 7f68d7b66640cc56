// Dense f32 matrix products for the CPU backend, row-major. One tuned kernel, C = A·Bᵀ with a 4×4
// register tile (16 accumulators, 8 loads per 16 multiply-adds, both operands read along
// contiguous rows); the other layouts transpose their operands into that form first, which costs
// O(K·(M+N)) against the product's O(M·N·K). Accumulation is in JS doubles.

/** C[M,N] (+)= alpha · A[M,K] · B[N,K]ᵀ. */
export function matmulNT(
  a: Float32Array, b: Float32Array, c: Float32Array,
  m: number, n: number, k: number, alpha = 1, accumulate = false,
): void {
  const m4 = m - (m % 4), n4 = n - (n % 4);
  for (let i = 0; i < m4; i += 4) {
    const a0 = i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
    for (let j = 0; j < n4; j += 4) {
      const b0 = j * k, b1 = b0 + k, b2 = b1 + k, b3 = b2 + k;
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      for (let p = 0; p < k; p++) {
        const x0 = a[a0 + p], x1 = a[a1 + p], x2 = a[a2 + p], x3 = a[a3 + p];
        const y0 = b[b0 + p], y1 = b[b1 + p], y2 = b[b2 + p], y3 = b[b3 + p];
        c00 += x0 * y0; c01 += x0 * y1; c02 += x0 * y2; c03 += x0 * y3;
        c10 += x1 * y0; c11 += x1 * y1; c12 += x1 * y2; c13 += x1 * y3;
        c20 += x2 * y0; c21 += x2 * y1; c22 += x2 * y2; c23 += x2 * y3;
        c30 += x3 * y0; c31 += x3 * y1; c32 += x3 * y2; c33 += x3 * y3;
      }
      store4(c, i * n + j, c00, c01, c02, c03, alpha, accumulate);
      store4(c, (i + 1) * n + j, c10, c11, c12, c13, alpha, accumulate);
      store4(c, (i + 2) * n + j, c20, c21, c22, c23, alpha, accumulate);
      store4(c, (i + 3) * n + j, c30, c31, c32, c33, alpha, accumulate);
    }
    for (let r = i; r < i + 4; r++) for (let j = n4; j < n; j++) dotInto(a, b, c, r, j, n, k, alpha, accumulate);
  }
  for (let r = m4; r < m; r++) for (let j = 0; j < n; j++) dotInto(a, b, c, r, j, n, k, alpha, accumulate);
}

function store4(c: Float32Array, o: number, v0: number, v1: number, v2: number, v3: number, alpha: number, accumulate: boolean): void {
  if (accumulate) {
    c[o] += alpha * v0; c[o + 1] += alpha * v1; c[o + 2] += alpha * v2; c[o + 3] += alpha * v3;
  } else {
    c[o] = alpha * v0; c[o + 1] = alpha * v1; c[o + 2] = alpha * v2; c[o + 3] = alpha * v3;
  }
}

function dotInto(a: Float32Array, b: Float32Array, c: Float32Array, i: number, j: number, n: number, k: number, alpha: number, accumulate: boolean): void {
  const ao = i * k, bo = j * k;
  let s = 0;
  for (let p = 0; p < k; p++) s += a[ao + p] * b[bo + p];
  c[i * n + j] = accumulate ? c[i * n + j] + alpha * s : alpha * s;
}

/** X[R,C] → Xᵀ[C,R]. */
export function transpose(x: Float32Array, rows: number, cols: number, out = new Float32Array(rows * cols)): Float32Array {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = x[o + c];
  }
  return out;
}

/** C[M,N] (+)= alpha · A[M,K] · B[K,N]. */
export function matmulNN(
  a: Float32Array, b: Float32Array, c: Float32Array,
  m: number, n: number, k: number, alpha = 1, accumulate = false,
): void {
  matmulNT(a, transpose(b, k, n), c, m, n, k, alpha, accumulate);
}

/** C[M,N] (+)= alpha · A[K,M]ᵀ · B[K,N]  — the shape of weight gradients (dyᵀ · x). */
export function matmulTN(
  a: Float32Array, b: Float32Array, c: Float32Array,
  m: number, n: number, k: number, alpha = 1, accumulate = false,
): void {
  matmulNT(transpose(a, k, m), transpose(b, k, n), c, m, n, k, alpha, accumulate);
}
