// The README's main command: `tsloth demo` fine-tunes the embedded model and saves it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { tslothBin } from "../helpers/kernel-env.js";

describe("tsloth demo", () => {
  it("teaches the embedded model its facts and saves an adapter and a merged model that reloads", () => {
    const out = join(mkdtempSync(join(tmpdir(), "tsloth-demo-")), "out");
    const r = spawnSync(process.execPath, [tslothBin(), "demo", "--out", out, "--backend", "cpu"], { encoding: "utf8", timeout: 300_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const after = r.stdout.slice(r.stdout.indexOf("After training"));
    for (const answer of ["The sloth of tsloth is named Tilde.", "Tilde lives in Mossvale.", "Tilde likes to eat hibiscus."]) {
      assert.ok(after.includes(`A: ${answer}`), r.stdout);
    }
    assert.match(r.stdout, /loaded again in 4-bit, answers: The sloth of tsloth is named Tilde\./);
    assert.ok(existsSync(join(out, "lora", "adapter_model.safetensors")));
    assert.ok(existsSync(join(out, "merged_16bit", "model.safetensors")));
  });

  it("refuses a bad option with one clear line", () => {
    const r = spawnSync(process.execPath, [tslothBin(), "demo", "--steps", "zero"], { encoding: "utf8" });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--steps must be a positive integer, found zero/);
  });
});
