// A Hugging Face hub cache laid out as huggingface_hub lays it: blobs/<sha256> holding each file
// once, snapshots/<commit>/<file> relative symlinks to them, refs/main naming the commit.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SafetensorsReader } from "../../lib/formats/safetensors-reader.js";
import { ShardedSafetensorsWriter } from "../../lib/formats/safetensors-writer.js";
import { resolveModelDir } from "../../lib/index.js";

export interface FakeCache {
  repoDir: string;
  snapshotDir: string;
  /** Weight files of the snapshot -> their blob path. */
  weightBlobs: Map<string, string>;
}

function addSnapshot(repoDir: string, commit: string, files: Map<string, Buffer>): Map<string, string> {
  const snap = join(repoDir, "snapshots", commit);
  mkdirSync(snap, { recursive: true });
  const blobs = new Map<string, string>();
  for (const [name, data] of files) {
    const sha = createHash("sha256").update(data).digest("hex");
    writeFileSync(join(repoDir, "blobs", sha), data);
    symlinkSync(join("..", "..", "blobs", sha), join(snap, name));
    blobs.set(name, join(repoDir, "blobs", sha));
  }
  return blobs;
}

/** The tiny model re-sharded (about 100 KB shards) into a fake cache under `root`, plus an older snapshot sharing one shard. */
export function fakeHubCache(root: string): FakeCache {
  const tiny = resolveModelDir("tsloth-tiny");
  const shardsDir = join(root, "resharded");
  const reader = SafetensorsReader.open(tiny);
  const writer = new ShardedSafetensorsWriter(shardsDir, { maxShardSize: 100_000 });
  for (const n of reader.names()) {
    const info = reader.info(n);
    writer.add(n, info.dtype, info.shape, reader.readRaw(n));
  }
  reader.close();
  writer.finish();
  const files = new Map<string, Buffer>();
  for (const f of readdirSync(shardsDir)) files.set(f, readFileSync(join(shardsDir, f)));
  for (const f of readdirSync(tiny)) if (!f.endsWith(".safetensors")) files.set(f, readFileSync(join(tiny, f)));
  const repoDir = join(root, "hub", "models--tsloth--tiny-sharded");
  mkdirSync(join(repoDir, "blobs"), { recursive: true });
  mkdirSync(join(repoDir, "refs"), { recursive: true });
  const commit = "a".repeat(40);
  writeFileSync(join(repoDir, "refs", "main"), commit);
  const blobs = addSnapshot(repoDir, commit, files);
  // An older revision whose last shard is the same file: that blob must survive.
  const shardNames = [...files.keys()].filter((f) => /^model-.*\.safetensors$/.test(f)).sort();
  const last = shardNames.at(-1)!;
  addSnapshot(repoDir, "b".repeat(40), new Map([[last, files.get(last)!], ["config.json", files.get("config.json")!]]));
  const weightBlobs = new Map([...blobs].filter(([f]) => f.endsWith(".safetensors")));
  return { repoDir, snapshotDir: join(repoDir, "snapshots", commit), weightBlobs };
}
