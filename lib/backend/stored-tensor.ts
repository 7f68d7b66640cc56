// What every backend's tensor shares: shape, dtype, memory category, and views made by reshape
// that share (and are accounted to) the storage of the tensor that owns it.
import { DTYPE_BYTES, elementCount, type DType, type MemoryCategory, type Tensor } from "./types.js";

export abstract class StoredTensor<Self extends StoredTensor<Self>> implements Tensor {
  private ownFreed = false;
  readonly bytes: number;

  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly category: MemoryCategory,
    /** For a view made by reshape: the tensor that owns (and accounts) the storage. */
    readonly base: Self | null,
  ) {
    this.bytes = base ? base.bytes : elementCount(shape) * DTYPE_BYTES[dtype];
  }

  /** The tensor whose storage this is (itself unless a view). */
  get owner(): Self {
    return this.base ? this.base.owner : (this as unknown as Self);
  }

  /** Freeing a view frees its storage. */
  get freed(): boolean {
    return this.owner.ownFreed;
  }

  markFreed(): void {
    this.owner.ownFreed = true;
  }
}
