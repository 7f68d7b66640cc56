import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assetPath } from "../../lib/paths.js";
import { hfCacheDirs, resolveDatasetPath, resolveModelDir } from "../../lib/formats/resolve-model.js";

/** A cache laid out as huggingface_hub lays it: models--org--name/{refs/main, snapshots/<sha>/...}. */
function fakeCache(): string {
  const root = mkdtempSync(join(tmpdir(), "tsloth-hub-"));
  const repo = join(root, "models--acme--tiny-llama");
  for (const sha of ["1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"]) {
    mkdirSync(join(repo, "snapshots", sha), { recursive: true });
    writeFileSync(join(repo, "snapshots", sha, "config.json"), JSON.stringify({ model_type: "llama", sha }));
  }
  mkdirSync(join(repo, "refs"), { recursive: true });
  writeFileSync(join(repo, "refs", "main"), "1111111111111111111111111111111111111111");
  writeFileSync(join(repo, "refs", "v2"), "2222222222222222222222222222222222222222\n");
  return root;
}

function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved: Record<string, string | undefined> = {};
  for (const k of Object.keys(vars)) {
    saved[k] = process.env[k];
    if (vars[k] === undefined) delete process.env[k];
    else process.env[k] = vars[k];
  }
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe("resolveModelDir", () => {
  it("finds the embedded tiny model by name", () => {
    assert.equal(resolveModelDir("tsloth-tiny"), assetPath("tsloth-tiny"));
  });
  it("follows refs/main to the snapshot in HF_HUB_CACHE", () => {
    const root = fakeCache();
    const dir = withEnv({ HF_HUB_CACHE: root }, () => resolveModelDir("acme/tiny-llama"));
    assert.equal(dir, join(root, "models--acme--tiny-llama", "snapshots", "1111111111111111111111111111111111111111"));
  });
  it("finds the cache under HF_HOME/hub and honours a revision after @", () => {
    const home = mkdtempSync(join(tmpdir(), "tsloth-hfhome-"));
    const root = fakeCache();
    mkdirSync(join(home, "hub"));
    renameSync(join(root, "models--acme--tiny-llama"), join(home, "hub", "models--acme--tiny-llama"));
    const dir = withEnv({ HF_HUB_CACHE: undefined, HUGGINGFACE_HUB_CACHE: undefined, HF_HOME: home }, () => resolveModelDir("acme/tiny-llama@v2"));
    assert.equal(dir, join(home, "hub", "models--acme--tiny-llama", "snapshots", "2222222222222222222222222222222222222222"));
  });
  it("uses the newest snapshot when refs/main is missing, and an explicit cacheDir first", () => {
    const root = fakeCache();
    const repo = join(root, "models--acme--tiny-llama");
    rmSync(join(repo, "refs"), { recursive: true });
    utimesSync(join(repo, "snapshots", "1111111111111111111111111111111111111111"), new Date(2000, 1, 1), new Date(2000, 1, 1));
    const dir = withEnv({ HF_HUB_CACHE: "/nonexistent" }, () => resolveModelDir("acme/tiny-llama", { cacheDir: root }));
    assert.equal(dir, join(repo, "snapshots", "2222222222222222222222222222222222222222"));
    assert.equal(hfCacheDirs(root)[0], root);
  });
  it("accepts a local model directory and refuses one without config.json", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsloth-local-"));
    assert.throws(() => resolveModelDir(dir), /has no config.json; expected a Hugging Face model directory/);
    writeFileSync(join(dir, "config.json"), "{}");
    assert.equal(resolveModelDir(dir), dir);
  });
  it("gives the download command for a hub id that is not cached, and never downloads", () => {
    const root = fakeCache();
    assert.throws(() => withEnv({ HF_HUB_CACHE: root }, () => resolveModelDir("meta-llama/Llama-3.2-1B")), (e: Error) =>
      /model "meta-llama\/Llama-3.2-1B" is not on this machine/.test(e.message) &&
      e.message.includes(root) &&
      e.message.includes("`hf download meta-llama/Llama-3.2-1B`") &&
      e.message.includes("`huggingface-cli download meta-llama/Llama-3.2-1B`"));
    assert.throws(() => resolveModelDir("./no/such/dir"), /model directory .* does not exist/);
  });
});

describe("resolveDatasetPath", () => {
  it("finds the embedded dataset by name and accepts a file path", () => {
    assert.equal(resolveDatasetPath("tsloth-tiny-data"), assetPath("tsloth-tiny-data.jsonl"));
    const f = join(mkdtempSync(join(tmpdir(), "tsloth-ds-")), "d.jsonl");
    writeFileSync(f, `{"text": "hi"}\n`);
    assert.equal(resolveDatasetPath(f), f);
    assert.throws(() => resolveDatasetPath("/no/such.jsonl"), /dataset \/no\/such.jsonl does not exist; pass a .jsonl file/);
  });
});
