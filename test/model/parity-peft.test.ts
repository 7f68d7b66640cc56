// tsloth against transformers + peft: the same tiny random checkpoints, the same LoRA adapters
// (B non-zero) and batch; loss and every LoRA gradient must agree within float32 tolerance, with
// the base in 16-bit and in NF4 (bitsandbytes' dequantized weights on the reference side).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpuBackend } from "../../lib/backend/cpu/backend.js";
import { SafetensorsReader } from "../../lib/formats/safetensors-reader.js";
import type { PackedBatch } from "../../lib/model/batch.js";
import { loadLlamaModel } from "../../lib/model/load-model.js";
import { loraParams } from "../../lib/model/lora.js";
import { projectRoot } from "../../lib/paths.js";
import { referencePython } from "../helpers/python.js";

const python = referencePython();
const skip = python ? false : "the reference virtual environment (.venv with torch, transformers, peft, bitsandbytes) is absent; run test/setup/python.sh to create it";

interface Reference {
  sequences: number[][];
  labels: number[][];
  dense: { loss: number; count: number };
  nf4: { loss: number; count: number };
}

/** HF labels are per token and shifted inside the model; tsloth's are already shifted per sample. */
function packedBatch(ref: Reference): PackedBatch {
  const ids: number[] = [], labels: number[] = [], positions: number[] = [], cu = [0];
  ref.sequences.forEach((s, b) => {
    s.forEach((id, t) => {
      ids.push(id);
      positions.push(t);
      labels.push(t + 1 < s.length ? ref.labels[b][t + 1] : -100);
    });
    cu.push(ids.length);
  });
  return { ids: Int32Array.from(ids), labels: Int32Array.from(labels), positions: Int32Array.from(positions), cuSeqlens: Int32Array.from(cu) };
}

describe("parity with transformers + peft", { skip }, () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "tsloth-parity-"));
    const r = spawnSync(python!, [join(projectRoot(), "test", "py", "parity_peft.py"), dir], { encoding: "utf8", timeout: 300_000 });
    assert.equal(r.status, 0, `parity_peft.py failed:\n${r.stderr.slice(-3000)}`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const family of ["llama", "qwen2", "qwen3"]) {
    for (const variant of ["dense", "nf4", "bnb"] as const) {
      const what = { dense: "16-bit base", nf4: "NF4 base quantized on load", bnb: "bitsandbytes 4-bit checkpoint" }[variant];
      it(`${family}, ${what}: loss and every LoRA gradient match`, async () => {
        const root = join(dir, family);
        const ref = JSON.parse(readFileSync(join(root, "reference.json"), "utf8")) as Reference;
        const adapterConfig = JSON.parse(readFileSync(join(root, "adapter", "adapter_config.json"), "utf8"));
        const be = new CpuBackend();
        const model = loadLlamaModel(be, join(root, variant === "bnb" ? "bnb" : "base"), { linears: variant === "dense" ? "dense" : "nf4" });
        const reference = variant === "bnb" ? "nf4" : variant;
        model.attachLora({ r: adapterConfig.r, alpha: adapterConfig.lora_alpha, targets: adapterConfig.target_modules });
        const { params, grads, names } = loraParams(model.lora!);
        const adapters = SafetensorsReader.open(join(root, "adapter", "adapter_model.safetensors"));
        params.forEach((p, k) => {
          const t = be.upload(adapters.readF32(names[k]), p.shape, "f32", "adapters");
          be.copyInto(p, t);
          be.free(t);
        });
        adapters.close();
        const { count, loss } = ref[reference];
        const res = await model.forwardBackward(packedBatch(ref), "unsloth", 1 / count);
        assert.equal(res.targets, count);
        const ours = res.lossSum / count;
        assert.ok(Math.abs(ours - loss) <= 2e-5 * Math.abs(loss), `loss ${ours} vs reference ${loss}`);
        const refGrads = SafetensorsReader.open(join(root, `grads_${reference}.safetensors`));
        assert.equal(refGrads.names().length, names.length);
        names.forEach((name, k) => {
          const want = refGrads.readF32(name);
          const got = be.download(grads[k]);
          let scale = 0, worst = 0;
          for (let i = 0; i < want.length; i++) {
            scale = Math.max(scale, Math.abs(want[i]));
            worst = Math.max(worst, Math.abs(got[i] - want[i]));
          }
          assert.ok(scale > 0, `${name}: the reference gradient is zero`);
          assert.ok(worst <= 1e-4 * scale + 1e-7, `${name}: max difference ${worst} against gradient scale ${scale}`);
        });
        refGrads.close();
      });
    }
  }
});
