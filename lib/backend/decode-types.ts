// The Backend ops generation adds: KV caches and attention over them.
//
// Both KV cache layouts (lib/infer) store keys and values in rows of [Hkv * D] (the layout of the k
// and v projections, after RoPE), grouped in blocks of `blockSize` consecutive positions
// (vLLM's PagedAttention, Kwon et al. 2023). A layer's storage is a list of segments; block ids
// number the blocks of the segments laid end to end (segment 0's blocks first). The paged cache
// has one segment per layer (its pool) and block tables from a free list; the contiguous cache's
// segments are its chunks (prompt + 512 tokens, then 512 more at a time), so growing it adds a
// segment and never copies what is there, and its block table is 0, 1, 2, ...
import type { AttentionShape, Backend, FrozenLinear, HostArray, LoraAdapter, Tensor } from "./types.js";

/** One segment of a layer's KV storage: k and v [rows, Hkv * D], rows a multiple of blockSize. */
export interface KvSegment {
  readonly k: Tensor;
  readonly v: Tensor;
}

/** Where each sequence's cached keys and values are (shared by every layer in one step). */
export interface KvBlockView {
  /** Positions per block (16 in both layouts). */
  readonly blockSize: number;
  /** i32 [B, maxBlocks]: block ids of each sequence's positions 0, blockSize, 2·blockSize, ... */
  readonly blockTables: Tensor;
  /** i32 [B]: positions cached for each sequence, including the tokens of this step. */
  readonly contextLens: Tensor;
  /** The largest entry of contextLens, known on the host (sizes the split of long contexts). */
  readonly maxContextLen: number;
}

/** The ops generation adds to a backend; CpuBackend is their spec and CudaBackend implements them. */
export interface DecodeBackend extends Backend {
  /**
   * Stores new keys and values: for each token t, row slots[t] of the segments (global slot
   * = block id · blockSize + offset in the block) receives k[t] and v[t]. k, v [T, Hkv * D] in any
   * float dtype, converted to the storage dtype; slots i32 [T].
   */
  kvCacheWrite(segments: readonly KvSegment[], blockSize: number, k: Tensor, v: Tensor, slots: Tensor): void;
  /**
   * Causal GQA attention of new queries over the cache (prefill over the cache or decode).
   * q [T, Hq * D], cuQueryLens i32 [B + 1]: sequence b owns query rows cuQueryLens[b] ..
   * cuQueryLens[b+1] − 1, the last n_b = cuQueryLens[b+1] − cuQueryLens[b] of its contextLens[b]
   * positions; query i of b sits at position p = contextLens[b] − n_b + i and attends to the
   * cached positions 0..p:  o = softmax(scale · q kᵀ) v. Returns o [T, Hq * D] (activations).
   * Long contexts may be split along the sequence and merged by log-sum-exp (FlashDecoding).
   */
  pagedAttention(q: Tensor, segments: readonly KvSegment[], view: KvBlockView, cuQueryLens: Tensor, shape: AttentionShape): Tensor;
  /**
   * The residual step between a layer's blocks: sum = add(a, b) and y = rmsnorm(sum, w, eps).y, with
   * exactly their results (no rstd: nothing trains here); one launch on CUDA instead of two.
   */
  addRmsnorm(a: Tensor, b: Tensor, w: Tensor, eps: number): { sum: Tensor; y: Tensor };
  /** Backend.linearGroup, required here: generation runs q/k/v and gate/up through it. */
  linearGroup(x: Tensor, bases: readonly FrozenLinear[], loras: readonly (LoraAdapter | null)[]): Tensor[];
  /** Device bytes free for new allocations (the KV pool is sized from this); Infinity when unbounded. */
  freeDeviceBytes(): number;
  /**
   * Greedy decoding's pick: i32 [rows], the index of each row's largest element of x [rows, cols]
   * (ties: the lowest index; NaN never wins, a row of NaN gives 0), so a greedy step downloads token
   * ids instead of logits.
   */
  argmaxRows(x: Tensor): Tensor;
  /** Overwrites a tensor's contents from the host, in its dtype (the inputs a recorded step reads). */
  uploadInto(dst: Tensor, data: HostArray): void;
  /**
   * Records the ops `body` issues so that they can run again without the host issuing each one
   * (CUDA graphs on the GPU: a decode step's few hundred launches become one). `output` (what body
   * returned) is defined after each replay, which reads its inputs' contents at that time; tensors
   * body allocated and freed stay reserved for the recording. Null where recording is unavailable;
   * throws, leaving the backend usable, when body fails.
   */
  recordStep(body: () => Tensor): { step: RecordedStep; output: Tensor } | null;
  /** Whether replaying a recorded step is faster than issuing it (generation records steps by default only then). */
  readonly stepRecordingPays: boolean;
}

/** A recorded step (DecodeBackend.recordStep). */
export interface RecordedStep {
  /** Runs the recorded work on the inputs' current contents, rewriting the output. */
  replay(): void;
  /** Releases the recording; the output tensor stays the caller's to free. */
  free(): void;
}

/** The backend as a DecodeBackend, or a clear error when it lacks the generation ops. */
export function asDecodeBackend(be: Backend): DecodeBackend {
  const d = be as Partial<DecodeBackend>;
  if (typeof d.kvCacheWrite !== "function" || typeof d.pagedAttention !== "function" || typeof d.freeDeviceBytes !== "function"
    || typeof d.linearGroup !== "function" || typeof d.addRmsnorm !== "function"
    || typeof d.uploadInto !== "function" || typeof d.recordStep !== "function" || typeof d.argmaxRows !== "function")
    throw new Error(`tsloth: the ${be.name} backend has no KV-cache ops (kvCacheWrite, pagedAttention); generate on the cpu or cuda backend`);
  return d as DecodeBackend;
}
