// The CUDA backend's buffer: a device (or pinned host) pointer from the library's caching
// allocator plus the metadata the Backend interface exposes.
import { StoredTensor } from "../stored-tensor.js";
import { elementCount, type DType, type MemoryCategory, type Tensor } from "../types.js";

/** tsl_dtype codes of the C ABI. */
export const DTYPE_CODE: Record<DType, number> = { f32: 0, bf16: 1, f16: 2, u8: 3, i32: 4 };

export class CudaTensor extends StoredTensor<CudaTensor> {
  constructor(
    shape: readonly number[],
    dtype: DType,
    category: MemoryCategory,
    /** Device pointer, or pinned host pointer for offload_host. */
    readonly ptr: bigint,
    base: CudaTensor | null = null,
  ) {
    super(shape, dtype, category, base);
  }
  get numel(): number {
    return elementCount(this.shape);
  }
  get code(): number {
    return DTYPE_CODE[this.dtype];
  }
}

export function asCuda(t: Tensor, what = "tensor"): CudaTensor {
  if (!(t instanceof CudaTensor)) throw new Error(`tsloth: ${what} from another backend was passed to the CUDA backend`);
  if (t.freed) throw new Error(`tsloth: ${what} was used after free`);
  return t;
}

export function isFloat(d: DType): boolean {
  return d === "f32" || d === "bf16" || d === "f16";
}

/** The rows of a [rows, cols] tensor (all dimensions but the last multiplied). */
export function rowsOf(t: Tensor): number {
  return t.shape.length <= 1 ? 1 : elementCount(t.shape.slice(0, -1));
}

export function lastDim(t: Tensor): number {
  return t.shape[t.shape.length - 1] ?? 1;
}
