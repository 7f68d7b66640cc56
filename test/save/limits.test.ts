import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { saveMerged, type SaveProgress } from "../../lib/save/index.js";
import { isCompleteCheckpoint, scratchDir, trainedTinyModel } from "./save-fixtures.js";

describe("save options are checked before work starts", () => {
  for (const bad of [0, -0.1, 0.96, 1, Number.NaN]) {
    it(`refuses maximum_memory_usage ${bad}`, async () => {
      const model = await trainedTinyModel({ loadIn4bit: false });
      const dir = join(scratchDir("usage"), "out");
      await assert.rejects(saveMerged(model, { dir, maximumMemoryUsage: bad }), /maximum_memory_usage must be a share of free memory in \(0, 0.95\]/);
      assert.ok(!existsSync(dir), "nothing is written");
    });
  }

  it("accepts 0.95 and sizes like 5GB, 500MB and bytes; refuses bad sizes with the accepted forms", async () => {
    const model = await trainedTinyModel({ loadIn4bit: false });
    const root = scratchDir("sizes");
    for (const size of ["5GB", "500MB", 50_000]) await saveMerged(model, { dir: join(root, String(size)), maxShardSize: size, maximumMemoryUsage: 0.95, physicalCpus: 2 });
    assert.equal(readdirSync(join(root, "50000")).filter((f) => /^model-.*safetensors$/.test(f)).length > 1, true);
    for (const bad of ["5 gigs", "-3MB", 0, 1.5]) {
      await assert.rejects(saveMerged(model, { dir: join(root, "bad"), maxShardSize: bad }), /max_shard_size .*(like "5GB"|must be larger)/);
    }
    await assert.rejects(saveMerged(model, { dir: join(root, "bad"), method: "merged_8bit" as never }), /--method must be one of merged_16bit, merged_4bit, lora/);
    await assert.rejects(saveMerged(model, { dir: "" }), /needs an output directory/);
    assert.ok(!existsSync(join(root, "bad")));
  });

  it("refuses merged_4bit unless forced, saying why and what to do instead", async () => {
    const model = await trainedTinyModel({ loadIn4bit: true });
    const dir = join(scratchDir("m4"), "out");
    await assert.rejects(saveMerged(model, { dir, method: "merged_4bit" }), /loses accuracy.*merged_16bit.*--force/);
    assert.ok(!existsSync(dir));
  });
});

describe("the merge's memory budget", () => {
  it("merges in row blocks within a small budget, writing the same bytes, and reports a peak within it", async () => {
    const model = await trainedTinyModel({ loadIn4bit: true });
    const root = scratchDir("budget");
    const roomy = await saveMerged(model, { dir: join(root, "roomy"), physicalCpus: 2 });
    const tight = await saveMerged(model, { dir: join(root, "tight"), availableMemoryBytes: 40_000, maximumMemoryUsage: 0.5, physicalCpus: 2 });
    assert.equal(tight.memoryBudgetBytes, 20_000);
    assert.ok(tight.peakMemoryBytes <= 20_000, `peak ${tight.peakMemoryBytes} within the 20000-byte budget`);
    assert.ok(roomy.peakMemoryBytes > tight.peakMemoryBytes, "a roomy budget merges larger blocks");
    assert.deepEqual(readFileSync(join(root, "tight", "model.safetensors")), readFileSync(join(root, "roomy", "model.safetensors")));
  });

  it("refuses, before writing anything, a budget that cannot hold one row of a projection", async () => {
    const model = await trainedTinyModel({ loadIn4bit: true });
    const dir = join(scratchDir("nobudget"), "out");
    await assert.rejects(saveMerged(model, { dir, availableMemoryBytes: 10_000, maximumMemoryUsage: 0.1, physicalCpus: 2 }),
      /needs at least .* of host memory but maximum_memory_usage 0.1 of .* allows .*Nothing was written\. Raise --maximum_memory_usage/);
    assert.ok(!existsSync(dir));
    assert.deepEqual(readdirSync(join(dir, "..")), []);
  });
});

describe("progress and interrupts", () => {
  it("reports progress per tensor up to the commit", async () => {
    const model = await trainedTinyModel({ loadIn4bit: false });
    const events: SaveProgress[] = [];
    await saveMerged(model, { dir: join(scratchDir("progress"), "out"), onProgress: (p) => events.push({ ...p }), physicalCpus: 2 });
    const merges = events.filter((e) => e.phase === "merge");
    assert.equal(merges.at(-1)!.done, 20);
    assert.ok(merges.every((e, i) => i === 0 || (e.done >= merges[i - 1]!.done && e.bytesWritten > merges[i - 1]!.bytesWritten)));
    assert.equal(events.at(-1)!.phase, "commit");
  });

  it("stops at a block boundary when the signal aborts, leaving the earlier save as it was", async () => {
    const model = await trainedTinyModel({ loadIn4bit: false });
    const root = scratchDir("abort");
    const dir = join(root, "out");
    await saveMerged(model, { dir, maxShardSize: "50KB", physicalCpus: 2 });
    const before = readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f))]);
    const ctl = new AbortController();
    await assert.rejects(
      saveMerged(model, { dir, method: "merged_16bit", signal: ctl.signal, physicalCpus: 2, onProgress: (p) => { if (p.done >= 5) ctl.abort(); } }),
      (e: Error) => e.name === "AbortError" && /interrupted; nothing was changed there/.test(e.message),
    );
    assert.deepEqual(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f))]), before);
    assert.deepEqual(readdirSync(root), ["out"], "the staging directory is removed");
    assert.ok(isCompleteCheckpoint(dir, 20));
  });
});
