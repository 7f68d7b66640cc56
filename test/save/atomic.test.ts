import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { exchangeDirectories } from "../../lib/save/exchange-directories.js";
import { recoverInterruptedSaves, saveMerged } from "../../lib/save/index.js";
import { isCompleteCheckpoint, scratchDir, trainedTinyModel, visibleEntries } from "./save-fixtures.js";

/** Tensors in the tiny model's merged checkpoint: embedding, final norm, 2 layers × (2 norms + 7 projections). */
const TINY_TENSORS = 2 + 2 * 9;

function childCommand(): { cmd: string; args: string[] } {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith(".ts")) return { cmd: process.execPath, args: ["--import", "tsx", join(dirname(here), "save-child.ts")] };
  return { cmd: process.execPath, args: [join(dirname(here), "save-child.js")] };
}

/** Starts the saving child, kills it with SIGKILL `delayMs` after it is ready; resolves with how many saves completed. */
function saveAndKill(dir: string, delayMs: number, seed: number): Promise<number> {
  const { cmd, args } = childCommand();
  const child = spawn(cmd, [...args, dir, String(seed)], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, TSLOTH_SAVE_CHILD: "1" } });
  let saved = 0;
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      const text = d.toString();
      if (text.includes("ready") && !child.killed) setTimeout(() => child.kill("SIGKILL"), delayMs);
      saved += (text.match(/saved/g) ?? []).length;
    });
    child.on("exit", (code, signal) => {
      if (signal === "SIGKILL") resolve(saved);
      else reject(new Error(`save child exited with ${code}: ${stderr}`));
    });
  });
}

function canSwapDirectoriesIn(root: string): boolean {
  mkdirSync(join(root, "a"));
  mkdirSync(join(root, "b"));
  return exchangeDirectories(join(root, "a"), join(root, "b"));
}

describe("saving is atomic", () => {
  it("replaces an existing save only with a whole new one, and removes the old one after", async () => {
    const dir = join(scratchDir("replace"), "out");
    const model = await trainedTinyModel({ loadIn4bit: false, seed: 3 });
    await saveMerged(model, { dir, physicalCpus: 2 });
    writeFileSync(join(dir, "stale-from-old-save.txt"), "old");
    await saveMerged(model, { dir, maxShardSize: "40KB", physicalCpus: 2 });
    assert.ok(isCompleteCheckpoint(dir, TINY_TENSORS));
    assert.ok(!existsSync(join(dir, "stale-from-old-save.txt")), "the old directory is gone, not merged into");
    assert.ok(!existsSync(join(dir, "model.safetensors")), "no single-file weights left beside the new shards");
    assert.deepEqual(readdirSync(dirname(dir)), ["out"], "no staging or replaced directories left");
  });

  it("refuses to replace a directory that is not an earlier save", async () => {
    const dir = join(scratchDir("foreign"), "notes");
    mkdirSync(dir);
    writeFileSync(join(dir, "thesis.tex"), "precious");
    const model = await trainedTinyModel({ loadIn4bit: false });
    await assert.rejects(saveMerged(model, { dir, physicalCpus: 2 }), /does not look like a saved model.*Choose another directory/);
    assert.equal(readFileSync(join(dir, "thesis.tex"), "utf8"), "precious");
  });

  it("leaves no directory that looks complete when killed with SIGKILL at random points", { timeout: 120_000 }, async () => {
    const root = scratchDir("kill");
    const dir = join(root, "merged");
    const canSwap = canSwapDirectoriesIn(scratchDir("kill-probe"));
    let everSaved = false;
    let killedMidSave = 0;
    // Kill delays spread over a save (about 50-100 ms here) and over several of them in a row.
    const delays = [0, 5, 15, 30, 45, 60, 90, 140, 220, 350].map((d) => d + Math.floor(Math.random() * 20));
    for (const [i, delay] of delays.entries()) {
      const saved = await saveAndKill(dir, delay, i + 1);
      everSaved ||= saved > 0 || existsSync(dir);
      if (existsSync(dir)) assert.ok(isCompleteCheckpoint(dir, TINY_TENSORS), `after a kill at ${delay} ms, ${dir} exists but is not a whole save`);
      else if (everSaved) {
        // Only a filesystem that cannot swap directories has a moment without DIR; the old save is then beside it.
        assert.ok(!canSwap, `after a kill at ${delay} ms, the earlier whole save at ${dir} is gone`);
        const replaced = readdirSync(root).find((e) => e.includes("tsloth-replaced"));
        assert.ok(replaced && isCompleteCheckpoint(join(root, replaced), TINY_TENSORS), `after a kill at ${delay} ms, no whole save is left at or beside ${dir}`);
      }
      for (const e of readdirSync(root)) {
        if (e === "merged") continue;
        killedMidSave++;
        assert.match(e, /^\.merged\.tsloth-(staging|replaced)-\d+$/, "leftovers are hidden and named as a save in progress");
      }
    }
    assert.ok(everSaved, "at least one save completed, so replacement was exercised");
    assert.ok(killedMidSave >= 3, `kills should land inside saves (left staging directories ${killedMidSave} times of ${delays.length})`);
    recoverInterruptedSaves(dir);
    assert.deepEqual(readdirSync(root), ["merged"], "the next save's recovery removes every leftover");
    assert.ok(isCompleteCheckpoint(dir, TINY_TENSORS));
    assert.deepEqual(visibleEntries(dir).filter((f) => f.includes("tmp")), []);
  });

  it("swaps two directories in one step where the system can (Linux, macOS)", () => {
    const root = scratchDir("swap");
    mkdirSync(join(root, "a"));
    mkdirSync(join(root, "b"));
    writeFileSync(join(root, "a", "which"), "a");
    writeFileSync(join(root, "b", "which"), "b");
    const swapped = exchangeDirectories(join(root, "a"), join(root, "b"));
    if (process.platform === "linux" || process.platform === "darwin") assert.ok(swapped, "renameat2/renamex_np swap is available here");
    assert.equal(readFileSync(join(root, "a", "which"), "utf8"), swapped ? "b" : "a");
    assert.equal(readFileSync(join(root, "b", "which"), "utf8"), swapped ? "a" : "b");
    assert.equal(exchangeDirectories(join(root, "a"), join(root, "missing")), false, "a missing side is refused, nothing moved");
    assert.ok(existsSync(join(root, "a", "which")));
  });

  it("puts a replaced directory back when a killed save had moved it aside", async () => {
    const root = scratchDir("restore");
    const dir = join(root, "merged");
    const model = await trainedTinyModel({ loadIn4bit: false });
    await saveMerged(model, { dir, physicalCpus: 2 });
    // The state between the two renames of a commit, left by a process that no longer exists.
    const { renameSync } = await import("node:fs");
    renameSync(dir, join(root, ".merged.tsloth-replaced-999999999"));
    mkdirSync(join(root, ".merged.tsloth-staging-999999999"));
    const lines = recoverInterruptedSaves(dir);
    assert.ok(isCompleteCheckpoint(dir, TINY_TENSORS));
    assert.deepEqual(readdirSync(root), ["merged"]);
    assert.ok(lines.some((l) => /previous save was put back/.test(l)));
  });
});
