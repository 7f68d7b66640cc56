// What the cached forward pass needs from a KV cache, whichever its layout: the segments of each
// layer's storage, slots for new tokens, and block tables. Both layouts group positions in blocks
// of KV_BLOCK_SIZE so the same attention op (Backend.pagedAttention) reads either.
import type { Backend, KvSegment, Tensor } from "../backend/types.js";
import type { ModelConfig } from "../formats/hf-config.js";

/** Positions per block: vLLM's default block size (Kwon et al. 2023), small enough that a sequence wastes under one block. */
export const KV_BLOCK_SIZE = 16;

/** Grow step of the contiguous cache: preallocate prompt + 512 tokens, then 512 more (DESIGN.md). */
export const KV_CACHE_INCREMENT = 512;

export interface KvCache {
  readonly blockSize: number;
  /** The storage of one layer, as segments whose blocks are numbered end to end. */
  segments(layer: number): readonly KvSegment[];
  /** Room for `n` more positions of sequence `seq` (allocating blocks as needed); their global slots. */
  append(seq: number, n: number): number[];
  /** Positions cached for a sequence. */
  length(seq: number): number;
  /** Block ids of each sequence's positions, padded to the longest, row-major [seqs, maxBlocks]. */
  blockTables(seqs: readonly number[]): { tables: Int32Array; maxBlocks: number };
  /** Gives a finished sequence's blocks back. */
  release(seq: number): void;
  /** Frees every buffer the cache holds. */
  free(): void;
}

/** Bytes one position takes across all layers (k and v in the backend's compute dtype). */
export function kvBytesPerToken(be: Backend, config: ModelConfig): number {
  const elem = be.computeDtype === "f32" ? 4 : 2;
  return 2 * config.numLayers * config.numKvHeads * config.headDim * elem;
}

/** A k, v pair of [rows, Hkv·D] zeroed buffers per layer, accounted as kv_cache. */
export function allocSegmentPerLayer(be: Backend, config: ModelConfig, rows: number): KvSegment[] {
  const width = config.numKvHeads * config.headDim;
  const out: KvSegment[] = [];
  try {
    for (let l = 0; l < config.numLayers; l++) {
      const k: Tensor = be.zeros([rows, width], be.computeDtype, "kv_cache");
      try {
        out.push({ k, v: be.zeros([rows, width], be.computeDtype, "kv_cache") });
      } catch (e) {
        be.free(k);
        throw e;
      }
    }
  } catch (e) {
    for (const s of out) { be.free(s.k); be.free(s.v); }
    throw e;
  }
  return out;
}

export function roundUpToBlock(n: number): number {
  return Math.ceil(n / KV_BLOCK_SIZE) * KV_BLOCK_SIZE;
}
