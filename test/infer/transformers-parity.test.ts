// Greedy generation against Hugging Face transformers' `generate` on the same weights: a tiny
// random Llama made and saved by transformers (test/infer/py/hf_generate.py), loaded by tsloth in
// 16/32-bit, decoded with each KV cache layout. Runs on the CPU reference everywhere the venv
// exists, and on the CUDA backend too when a GPU is present (against transformers on the GPU). The
// CPU reference computes in f32 like transformers and must match exactly; the CUDA backend computes
// in bf16, so there a divergence is accepted only at a near tie of transformers' own logits.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { cudaAvailable, CudaBackend } from "../../lib/backend/cuda/index.js";
import type { Backend } from "../../lib/backend/types.js";
import { decodeWithKvCache } from "../../lib/infer/decode-loop.js";
import { resolveSampling, Sampler } from "../../lib/infer/sampling.js";
import { loadLlamaModel } from "../../lib/model/load-model.js";
import { projectRoot } from "../../lib/paths.js";
import { referencePython } from "../helpers/python.js";

const python = referencePython();
const NEW = 24;

const targets: { name: string; device: string; make: () => Backend }[] = [{ name: "cpu", device: "cpu", make: () => new CpuBackend() }];
if (cudaAvailable().ok) targets.push({ name: "cuda", device: "cuda", make: () => new CudaBackend() });

describe("greedy generation matches transformers generate", { skip: python ? false : "needs the reference venv (.venv/bin/python with torch + transformers): run test/setup first" }, () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  for (const t of targets) {
    it(`on the ${t.name} backend, both KV layouts, three prompts`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "tsloth-hfgen-"));
      dirs.push(dir);
      const script = join(projectRoot(), "test", "infer", "py", "hf_generate.py");
      const ref = JSON.parse(execFileSync(python!, [script, dir, "--new", String(NEW), "--device", t.device], { encoding: "utf8" }).trim().split("\n").pop()!) as
        { prompts: number[][]; tokens: number[][]; scores: number[][][] };
      const model = loadLlamaModel(t.make(), dir, { linears: "dense" });
      const run = (layout: "contiguous" | "paged") =>
        decodeWithKvCache(model, ref.prompts, { maxNewTokens: NEW, eosTokenIds: [], sampler: new Sampler(resolveSampling({})), layout });
      for (const layout of ["contiguous", "paged"] as const) {
        const got = await run(layout);
        ref.tokens.forEach((want, i) => {
          const k = want.findIndex((id, j) => got[i].ids[j] !== id);
          if (k < 0) return;
          assert.notEqual(t.name, "cpu", `${layout}, prompt ${i}: token ${k} is ${got[i].ids[k]}, transformers chose ${want[k]}`);
          const gap = ref.scores[i][k][want[k]] - ref.scores[i][k][got[i].ids[k]];
          assert.ok(gap < 0.05, `${layout}, prompt ${i}: diverged at token ${k} where transformers' logits differ by ${gap} (not a near tie)`);
          console.log(`# ${t.name} ${layout} prompt ${i}: diverged at ${k}/${NEW}, a near tie (gap ${gap.toFixed(4)})`);
        });
      }
      model.free();
    });
  }
});
