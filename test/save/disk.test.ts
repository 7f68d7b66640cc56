import assert from "node:assert/strict";
import { existsSync, lstatSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { saveMerged } from "../../lib/save/index.js";
import { fakeHubCache } from "./fake-hf-cache.js";
import { isCompleteCheckpoint, scratchDir, trainedTinyModel } from "./save-fixtures.js";

/** Free space as the save sees it: `bytes` everywhere. */
const freeAt = (bytes: number) => () => bytes;
/** config.json etc. are budgeted at 1 MB (SMALL_FILES_BYTES) plus the tokenizer files. */
const EXTRAS = 1e6 + 60_000;

describe("disk preflight", () => {
  it("refuses a save that does not fit, saying how much is missing where, before writing anything", async () => {
    const model = await trainedTinyModel({ loadIn4bit: true });
    const dir = join(scratchDir("full"), "out");
    await assert.rejects(saveMerged(model, { dir, freeDiskBytes: freeAt(200_000), platform: "local", physicalCpus: 2 }),
      (e: Error) => /not enough disk space to save: .*out needs 1\.\d\d MB \(the saved model .*\) but its disk has 0\.20 MB free: 1\.\d\d MB missing\. Nothing was written/.test(e.message));
    assert.ok(!existsSync(dir));
  });

  it("checks the temporary location too (merged_4bit streams its shards there)", async () => {
    const model = await trainedTinyModel({ loadIn4bit: true });
    const root = scratchDir("tempfull");
    const temp = join(root, "scratch");
    await assert.rejects(
      saveMerged(model, { dir: join(root, "out"), method: "merged_4bit", force: true, temporaryLocation: temp, platform: "local", physicalCpus: 2,
        freeDiskBytes: freeAt(100_000) }),
      /not enough disk space to save: .*out and .*scratch needs .*4-bit shards being written.* missing/);
    assert.ok(!existsSync(join(root, "out")));
    // On Kaggle the scratch space defaults to /tmp (its /kaggle/working is the persisted output).
    await assert.rejects(
      saveMerged(model, { dir: join(root, "out"), method: "merged_4bit", force: true, platform: "kaggle", physicalCpus: 2, freeDiskBytes: freeAt(100_000) }),
      (e: Error) => e.message.includes(" and /tmp needs"));
  });
});

describe("freeing the cached download on Colab and Kaggle", () => {
  async function setup(prefix: string) {
    const root = scratchDir(prefix);
    const cache = fakeHubCache(root);
    const model = await trainedTinyModel({ loadIn4bit: true, dir: cache.snapshotDir, seed: 21 });
    return { root, cache, model };
  }

  it("frees blobs the merge has read, keeps shared ones, and says how much it freed", async () => {
    const { root, cache, model } = await setup("free");
    const reference = await saveMerged(model, { dir: join(root, "reference"), physicalCpus: 2 });
    const outputBytes = statSync(join(root, "reference", "model.safetensors")).size;
    const shards = [...cache.weightBlobs.keys()].sort();
    assert.ok(shards.length >= 3, "the fake download has several shards");
    // Room for the largest shard's worth of output beyond the small files, not for the whole model.
    const free = EXTRAS + 160_000;
    assert.ok(free < outputBytes + EXTRAS);
    const sizes0 = new Map(shards.map((f) => [f, statSync(cache.weightBlobs.get(f)!).size]));
    const summary = await saveMerged(model, { dir: join(root, "out"), freeDiskBytes: freeAt(free), platform: "colab", physicalCpus: 2 });
    assert.deepEqual(readFileSync(join(root, "out", "model.safetensors")), readFileSync(join(root, "reference", "model.safetensors")),
      "every tensor was read before its blob was freed");
    const shared = shards.at(-1)!;
    let expectedFreed = 0;
    for (const f of shards) {
      const blob = cache.weightBlobs.get(f)!;
      if (f === shared) {
        assert.ok(existsSync(blob), "a blob another snapshot links to is kept");
        assert.ok(lstatSync(join(cache.snapshotDir, f)).isSymbolicLink());
      } else {
        assert.ok(!existsSync(blob) && !existsSync(join(cache.snapshotDir, f)), `${f}: blob and link removed`);
        expectedFreed += sizes0.get(f)!;
      }
    }
    assert.ok(existsSync(join(cache.snapshotDir, "tokenizer.json")) && existsSync(join(cache.snapshotDir, "config.json")), "only weight files are freed");
    assert.equal(summary.freedCacheBytes, expectedFreed);
    const line = summary.lines.find((l) => /freed .* of the cached download of tsloth\/tiny-sharded/.test(l));
    assert.ok(line, `one line says how much was freed: ${summary.lines.join(" | ")}`);
    assert.match(line!, new RegExp(`freed ${(summary.freedCacheBytes / 1e6).toFixed(2)} MB`));
    assert.equal(reference.freedCacheBytes, 0, "nothing is freed when the disk has room");
    assert.ok(isCompleteCheckpoint(join(root, "out"), 20));
  });

  it("does not free anything on a local machine: the disk error says what is missing", async () => {
    const { root, cache, model } = await setup("nofree");
    await assert.rejects(saveMerged(model, { dir: join(root, "out"), freeDiskBytes: freeAt(EXTRAS + 160_000), platform: "local", physicalCpus: 2 }),
      /missing\. Nothing was written\. Free space on that disk or choose another directory/);
    for (const blob of cache.weightBlobs.values()) assert.ok(existsSync(blob));
  });

  it("refuses up front when even freeing the download would not make room", async () => {
    const { root, cache, model } = await setup("toosmall");
    await assert.rejects(saveMerged(model, { dir: join(root, "out"), freeDiskBytes: freeAt(EXTRAS + 20_000), platform: "kaggle", physicalCpus: 2 }),
      /Even freeing the cached download of the base model .* as the merge reads it leaves .* missing/);
    for (const blob of cache.weightBlobs.values()) assert.ok(existsSync(blob), "nothing freed when the save cannot succeed");
    assert.ok(!existsSync(join(root, "out")));
  });
});
