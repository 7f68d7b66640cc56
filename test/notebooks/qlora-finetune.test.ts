// notebooks/qlora-finetune.ipynb needs what CI lacks: a GPU and a real checkpoint. It runs on the GPU
// machine in the benchmark command (bench/gpu-notebooks.sh makes a random-init checkpoint in the hub
// cache layout and sets TSLOTH_QLORA_MODEL), and is skipped here with the reason.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cudaAvailable } from "../../lib/backend/cuda/index.js";
import { resolveModelDir } from "../../lib/formats/resolve-model.js";
import { outputsOf, runWithTsloth, textOf } from "./execute.js";

function unavailable(): string | false {
  const gpu = cudaAvailable();
  if (!gpu.ok) return `needs a GPU (${gpu.reason})`;
  const model = process.env.TSLOTH_QLORA_MODEL;
  if (!model) return "needs TSLOTH_QLORA_MODEL: a model directory or a hub id in the local Hugging Face cache";
  try {
    resolveModelDir(model);
  } catch (e) {
    return (e as Error).message;
  }
  return false;
}

describe("notebooks/qlora-finetune.ipynb", { skip: unavailable() }, () => {
  it("fine-tunes the checkpoint on the GPU, shows memory, generates and saves", () => {
    const nb = runWithTsloth("qlora-finetune.ipynb", {});
    assert.match(textOf(outputsOf(nb, "model = %load_4bit")), /on the cuda backend/);
    const train = outputsOf(nb, "%train");
    assert.ok(train.some((o) => o.data?.["application/vnd.plotly.v1+json"]), "the live training display");
    const m = /loss ([\d.]+) -> ([\d.]+)/.exec(textOf(train));
    assert.ok(m && Number(m[2]) < Number(m[1]), `the loss falls: ${textOf(train)}`);
    assert.match(textOf(outputsOf(nb, "%vram")), /base weights/);
    assert.match(textOf(outputsOf(nb, "%save_merged")), /Saved lora/);
    assert.match(textOf(outputsOf(nb, 'import { saveMerged }')), /\[ *\d+, *\d+ *\]/);
  });
});
