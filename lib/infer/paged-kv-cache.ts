// The KV cache of several sequences at once (PagedAttention, Kwon et al. 2023): one pool of
// fixed-size blocks per layer, a block table per sequence and a free list, so sequences of
// different lengths share the pool and each wastes at most one partly filled block. The pool is
// sized from the device's free memory times a user-settable share (vLLM's gpu_memory_utilization),
// and never larger than the work asked for needs.
import { formatBytes, OutOfMemoryError, type DecodeBackend, type KvSegment } from "../backend/types.js";
import type { ModelConfig } from "../formats/hf-config.js";
import { allocSegmentPerLayer, KV_BLOCK_SIZE, kvBytesPerToken, type KvCache } from "./kv-cache.js";

/** Default share of free device memory the pool may take (vLLM's gpu_memory_utilization default). */
export const DEFAULT_KV_MEMORY_SHARE = 0.9;

export interface PoolSizing {
  /** Blocks the pool will hold. */
  blocks: number;
  /** Bytes of one block across all layers (k and v). */
  bytesPerBlock: number;
}

/**
 * Blocks for a pool: what `neededBlocks` asks for, capped by share × free bytes. Throws a clear error
 * when even `minBlocks` (the longest single sequence) does not fit.
 */
export function sizeKvPool(be: DecodeBackend, config: ModelConfig, neededBlocks: number, minBlocks: number, share = DEFAULT_KV_MEMORY_SHARE): PoolSizing {
  if (!(share > 0 && share <= 1)) throw new Error(`tsloth: the KV cache memory share must be in (0, 1], found ${share}`);
  const bytesPerBlock = kvBytesPerToken(be, config) * KV_BLOCK_SIZE;
  const free = be.freeDeviceBytes();
  const affordable = Math.floor((free * share) / bytesPerBlock);
  const blocks = Math.min(neededBlocks, affordable);
  if (blocks < minBlocks) {
    throw new OutOfMemoryError("kv_cache", minBlocks * bytesPerBlock, free,
      `The longest sequence needs ${minBlocks} KV blocks (${formatBytes(minBlocks * bytesPerBlock)}) but ${share} of free memory holds ${affordable}. ` +
      `Lower max_new_tokens, shorten the prompt, or raise gpu_memory_utilization.`);
  }
  return { blocks, bytesPerBlock };
}

export class PagedKvCache implements KvCache {
  readonly blockSize = KV_BLOCK_SIZE;
  private readonly pools: KvSegment[][];
  private readonly freeList: number[];
  private readonly tables = new Map<number, number[]>();
  private readonly lengths = new Map<number, number>();

  constructor(private readonly be: DecodeBackend, config: ModelConfig, readonly totalBlocks: number) {
    this.pools = allocSegmentPerLayer(be, config, totalBlocks * KV_BLOCK_SIZE).map((s) => [s]);
    // Popped from the end: low block ids first, which keeps early sequences' blocks together.
    this.freeList = Array.from({ length: totalBlocks }, (_, i) => totalBlocks - 1 - i);
  }

  get freeBlocks(): number {
    return this.freeList.length;
  }

  segments(layer: number): readonly KvSegment[] {
    return this.pools[layer];
  }

  append(seq: number, n: number): number[] {
    const table = this.tables.get(seq) ?? [];
    const len = this.lengths.get(seq) ?? 0;
    const need = Math.ceil((len + n) / KV_BLOCK_SIZE) - table.length;
    if (need > this.freeList.length) throw new Error(`tsloth: the KV pool is out of blocks (sequence ${seq} needs ${need}, ${this.freeList.length} free)`);
    for (let i = 0; i < need; i++) table.push(this.freeList.pop()!);
    this.tables.set(seq, table);
    this.lengths.set(seq, len + n);
    return Array.from({ length: n }, (_, i) => {
      const p = len + i;
      return table[Math.floor(p / KV_BLOCK_SIZE)] * KV_BLOCK_SIZE + (p % KV_BLOCK_SIZE);
    });
  }

  length(seq: number): number {
    return this.lengths.get(seq) ?? 0;
  }

  blockTables(seqs: readonly number[]): { tables: Int32Array; maxBlocks: number } {
    const maxBlocks = Math.max(1, ...seqs.map((s) => this.tables.get(s)?.length ?? 0));
    const tables = new Int32Array(seqs.length * maxBlocks);
    seqs.forEach((s, i) => tables.set(this.tables.get(s) ?? [], i * maxBlocks));
    return { tables, maxBlocks };
  }

  release(seq: number): void {
    const table = this.tables.get(seq);
    if (table) for (let i = table.length - 1; i >= 0; i--) this.freeList.push(table[i]);
    this.tables.delete(seq);
    this.lengths.delete(seq);
  }

  free(): void {
    for (const [s] of this.pools) { this.be.free(s.k); this.be.free(s.v); }
    this.pools.length = 0;
    this.freeList.length = 0;
    this.tables.clear();
    this.lengths.clear();
  }
}
