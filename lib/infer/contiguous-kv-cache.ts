// The KV cache of a single sequence: storage preallocated for the prompt plus KV_CACHE_INCREMENT
// positions, grown by KV_CACHE_INCREMENT more when full. Each growth adds a chunk (one per layer)
// instead of reallocating: the attention op reads a layer as a list of segments, so nothing already
// cached is copied and growing costs one allocation, not a copy of the whole history. Positions
// are laid out in order, so the block table is simply 0, 1, 2, ...
import type { Backend, KvSegment } from "../backend/types.js";
import type { ModelConfig } from "../formats/hf-config.js";
import { allocSegmentPerLayer, KV_BLOCK_SIZE, KV_CACHE_INCREMENT, roundUpToBlock, type KvCache } from "./kv-cache.js";

export class ContiguousKvCache implements KvCache {
  readonly blockSize = KV_BLOCK_SIZE;
  /** chunks[c][layer]: chunk c of every layer. */
  private readonly chunks: KvSegment[][] = [];
  private readonly layerSegments: KvSegment[][];
  private capacity = 0;
  private used = 0;
  private owner: number | null = null;

  constructor(private readonly be: Backend, private readonly config: ModelConfig, promptTokens: number) {
    this.layerSegments = Array.from({ length: config.numLayers }, () => []);
    this.grow(roundUpToBlock(promptTokens + KV_CACHE_INCREMENT));
  }

  /** Positions the cache can hold before it grows again. */
  get allocatedTokens(): number {
    return this.capacity;
  }

  get chunkCount(): number {
    return this.chunks.length;
  }

  private grow(rows: number): void {
    const chunk = allocSegmentPerLayer(this.be, this.config, rows);
    this.chunks.push(chunk);
    chunk.forEach((seg, l) => this.layerSegments[l].push(seg));
    this.capacity += rows;
  }

  segments(layer: number): readonly KvSegment[] {
    return this.layerSegments[layer];
  }

  append(seq: number, n: number): number[] {
    if (this.owner !== null && this.owner !== seq) throw new Error(`tsloth: a contiguous KV cache holds one sequence (${this.owner}); asked for sequence ${seq}`);
    this.owner = seq;
    while (this.used + n > this.capacity) this.grow(KV_CACHE_INCREMENT);
    const slots = Array.from({ length: n }, (_, i) => this.used + i);
    this.used += n;
    return slots;
  }

  length(): number {
    return this.used;
  }

  blockTables(seqs: readonly number[]): { tables: Int32Array; maxBlocks: number } {
    const maxBlocks = Math.max(1, Math.ceil(this.used / KV_BLOCK_SIZE));
    const tables = new Int32Array(seqs.length * maxBlocks);
    for (let s = 0; s < seqs.length; s++) for (let b = 0; b < maxBlocks; b++) tables[s * maxBlocks + b] = b;
    return { tables, maxBlocks };
  }

  release(): void {
    this.used = 0;
    this.owner = null;
  }

  free(): void {
    for (const chunk of this.chunks) for (const s of chunk) { this.be.free(s.k); this.be.free(s.v); }
    this.chunks.length = 0;
    for (const l of this.layerSegments) l.length = 0;
    this.capacity = this.used = 0;
  }
}
