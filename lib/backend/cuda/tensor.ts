// The CUDA backend's buffer: a device (or pinned host) pointer from the library's caching
// allocator plus the metadata the Backend interface exposes.
import { DTYPE_BYTES, elementCount, type DType, type MemoryCategory, type Tensor } from "../types.js";

/** tsl_dtype codes of the C ABI. */
export const DTYPE_CODE: Record<DType, number> = { f32: 0, bf16: 1, f16: 2, u8: 3, i32: 4 };

export class CudaTensor implements Tensor {
  private ownFreed = false;
  readonly bytes: number;
  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly category: MemoryCategory,
    /** Device pointer, or pinned host pointer for offload_host. */
    readonly ptr: bigint,
    /** For a view made by reshape: the tensor that owns (and accounts) the storage. */
    readonly base: CudaTensor | null = null,
  ) {
    this.bytes = base ? base.bytes : elementCount(shape) * DTYPE_BYTES[dtype];
  }
  get freed(): boolean {
    return this.base ? this.base.freed : this.ownFreed;
  }
  get owner(): CudaTensor {
    return this.base ? this.base.owner : this;
  }
  get numel(): number {
    return elementCount(this.shape);
  }
  get code(): number {
    return DTYPE_CODE[this.dtype];
  }
  markFreed(): void {
    this.owner.ownFreed = true;
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
