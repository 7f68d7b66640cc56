// The two KV cache layouts' bookkeeping: the contiguous cache grows by KV_CACHE_INCREMENT without
// moving what it holds; the paged cache hands out 16-token blocks from a free list, wastes at most
// one block per sequence, takes blocks back, and sizes its pool from free memory times a share.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { OutOfMemoryError } from "../../lib/backend/types.js";
import { ContiguousKvCache } from "../../lib/infer/contiguous-kv-cache.js";
import { KV_BLOCK_SIZE, KV_CACHE_INCREMENT, kvBytesPerToken } from "../../lib/infer/kv-cache.js";
import { PagedKvCache, sizeKvPool } from "../../lib/infer/paged-kv-cache.js";
import { randn } from "../ops/backends.js";
import { tinyConfig } from "../model/random-model.js";

const config = tinyConfig("llama");
const width = config.numKvHeads * config.headDim;

describe("ContiguousKvCache", () => {
  it("preallocates the prompt plus 512 positions, then grows 512 at a time without copying", () => {
    const be = new CpuBackend();
    const cache = new ContiguousKvCache(be, config, 100);
    assert.equal(KV_CACHE_INCREMENT, 512);
    assert.equal(cache.allocatedTokens, Math.ceil((100 + 512) / 16) * 16);
    const first = cache.segments(0)[0];
    const slots = cache.append(7, 100);
    assert.deepEqual(slots, Array.from({ length: 100 }, (_, i) => i));
    // Fill position 5 of layer 0 to see it survive growth.
    const row = randn(1, width);
    const k = be.upload(row, [1, width], "f32", "activations");
    be.kvCacheWrite(cache.segments(0), 16, k, k, be.upload(Int32Array.from([5]), [1], "i32", "activations"));
    cache.append(7, cache.allocatedTokens - 100); // exactly full: no growth yet
    assert.equal(cache.chunkCount, 1);
    const [grown] = cache.append(7, 1);
    assert.equal(cache.chunkCount, 2);
    assert.equal(cache.allocatedTokens, 624 + 512);
    assert.equal(grown, 624);
    assert.equal(cache.segments(0)[0], first, "the first chunk is the same buffer");
    assert.deepEqual(be.download(first.k).subarray(5 * width, 6 * width), row);
    assert.equal(be.memory().current.kv_cache, (624 + 512) * width * 4 * 2 * config.numLayers);
    const { tables, maxBlocks } = cache.blockTables([7]);
    assert.equal(maxBlocks, Math.ceil(625 / 16));
    assert.deepEqual(Array.from(tables), Array.from({ length: maxBlocks }, (_, i) => i));
    assert.throws(() => cache.append(8, 1), /holds one sequence/);
    cache.free();
    assert.equal(be.memory().current.kv_cache, 0);
  });
});

describe("PagedKvCache", () => {
  it("allocates blocks on demand from a free list, wasting under one block per sequence", () => {
    const be = new CpuBackend();
    const cache = new PagedKvCache(be, config, 10);
    const a = cache.append(0, 17); // 2 blocks
    const b = cache.append(1, 3); // 1 block
    assert.equal(cache.freeBlocks, 7);
    assert.equal(new Set([...a, ...b]).size, 20, "distinct slots");
    for (const s of [0, 1]) {
      const { maxBlocks } = cache.blockTables([s]);
      assert.ok(maxBlocks * KV_BLOCK_SIZE - cache.length(s) < KV_BLOCK_SIZE);
    }
    cache.append(1, 13); // fills block 1 of sequence 1 exactly
    assert.equal(cache.freeBlocks, 7);
    cache.append(1, 1);
    assert.equal(cache.freeBlocks, 6);
    const { tables, maxBlocks } = cache.blockTables([0, 1]);
    assert.equal(maxBlocks, 2);
    assert.equal(tables[0 * 2 + 1] * 16 + 0, a[16], "position 16 of sequence 0 is in its second block");
    cache.release(0);
    assert.equal(cache.freeBlocks, 8);
    assert.throws(() => cache.append(2, 9 * 16), /out of blocks/);
    cache.free();
  });

  it("sizes the pool from free memory times the share, capped by what is needed", () => {
    const perBlock = kvBytesPerToken(new CpuBackend(), config) * KV_BLOCK_SIZE;
    const be = new CpuBackend({ deviceBytes: 100 * perBlock });
    assert.equal(sizeKvPool(be, config, 30, 5, 0.9).blocks, 30);
    assert.equal(sizeKvPool(be, config, 500, 5, 0.9).blocks, 90);
    assert.equal(sizeKvPool(be, config, 500, 5, 0.5).blocks, 50);
    assert.throws(() => sizeKvPool(be, config, 500, 60, 0.5), (e: unknown) => e instanceof OutOfMemoryError && /raise gpu_memory_utilization/.test(e.message));
    assert.throws(() => sizeKvPool(be, config, 5, 5, 1.5), /share must be in \(0, 1\]/);
  });
});
