// One tsloth-vs-PEFT parity case, shared by the CPU test (float32: tight tolerances) and the CUDA
// test (bf16 activations: bf16 tolerances). The references come from test/py/parity_peft.py:
// transformers + peft compute the loss and every LoRA gradient of tiny random Llama / Qwen2 / Qwen3
// models; this loads the same checkpoint and adapter, runs one forward/backward over the same packed
// batch and reports how far each result is from the reference.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Backend } from "../../lib/backend/types.js";
import { SafetensorsReader } from "../../lib/formats/safetensors-reader.js";
import type { PackedBatch } from "../../lib/model/batch.js";
import { loadLlamaModel } from "../../lib/model/load-model.js";
import { loraParams } from "../../lib/model/lora.js";
import { projectRoot } from "../../lib/paths.js";

export const PARITY_FAMILIES = ["llama", "qwen2", "qwen3"] as const;
export const PARITY_VARIANTS = ["dense", "nf4", "bnb"] as const;
export type ParityVariant = (typeof PARITY_VARIANTS)[number];

export const VARIANT_TITLES: Record<ParityVariant, string> = {
  dense: "16-bit base", nf4: "NF4 base quantized on load", bnb: "bitsandbytes 4-bit checkpoint",
};

/** PyTorch's own distance from its float32 results when it computes in bf16 (autocast). */
export interface Bf16Yardstick {
  loss_gap: number;
  grad_rel_l2: Record<string, number>;
}

interface ReferenceRun {
  loss: number;
  count: number;
  bf16: Bf16Yardstick;
}

interface Reference {
  sequences: number[][];
  labels: number[][];
  dense: ReferenceRun;
  nf4: ReferenceRun;
}

export interface GradientGap {
  name: string;
  /** max |ours − reference| */
  worst: number;
  /** max |reference| */
  scale: number;
  /** ‖ours − reference‖₂ / ‖reference‖₂ */
  relL2: number;
}

export interface ParityResult {
  loss: number;
  referenceLoss: number;
  targets: number;
  referenceTargets: number;
  gradients: GradientGap[];
  /** The same references computed by PyTorch in bf16, against its float32 results. */
  torchBf16: Bf16Yardstick;
}

/** Writes the references under `dir` with the reference Python; returns its error text on failure. */
export function writeParityReferences(python: string, dir: string): string | null {
  const r = spawnSync(python, [join(projectRoot(), "test", "py", "parity_peft.py"), dir], { encoding: "utf8", timeout: 300_000 });
  return r.status === 0 ? null : `parity_peft.py failed:\n${r.stderr.slice(-3000)}`;
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

function gap(name: string, got: Float32Array, want: Float32Array): GradientGap {
  let worst = 0, scale = 0, num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    const d = got[i] - want[i];
    worst = Math.max(worst, Number.isFinite(d) ? Math.abs(d) : Infinity);
    scale = Math.max(scale, Math.abs(want[i]));
    num += d * d;
    den += want[i] * want[i];
  }
  return { name, worst, scale, relL2: den > 0 ? Math.sqrt(num / den) : Infinity };
}

/** One family × variant on `be`: loss and every LoRA gradient beside the reference's. */
export async function runParityCase(be: Backend, dir: string, family: string, variant: ParityVariant): Promise<ParityResult> {
  const root = join(dir, family);
  const ref = JSON.parse(readFileSync(join(root, "reference.json"), "utf8")) as Reference;
  const adapterConfig = JSON.parse(readFileSync(join(root, "adapter", "adapter_config.json"), "utf8"));
  const model = loadLlamaModel(be, join(root, variant === "bnb" ? "bnb" : "base"), { linears: variant === "dense" ? "dense" : "nf4" });
  const reference = variant === "bnb" ? "nf4" : variant;
  try {
    model.attachLora({ r: adapterConfig.r, alpha: adapterConfig.lora_alpha, targets: adapterConfig.target_modules });
    const { params, grads, names } = loraParams(model.lora!);
    const adapters = SafetensorsReader.open(join(root, "adapter", "adapter_model.safetensors"));
    params.forEach((p, k) => {
      const t = be.upload(adapters.readF32(names[k]), p.shape, "f32", "adapters");
      be.copyInto(p, t);
      be.free(t);
    });
    adapters.close();
    const { count, loss, bf16 } = ref[reference];
    const res = await model.forwardBackward(packedBatch(ref), "unsloth", 1 / count);
    const refGrads = SafetensorsReader.open(join(root, `grads_${reference}.safetensors`));
    if (refGrads.names().length !== names.length) throw new Error(`the reference has ${refGrads.names().length} gradients, tsloth ${names.length}`);
    const gradients = names.map((name, k) => gap(name, be.download(grads[k]), refGrads.readF32(name)));
    refGrads.close();
    return { loss: res.lossSum / count, referenceLoss: loss, targets: res.targets, referenceTargets: count, gradients, torchBf16: bf16 };
  } finally {
    model.free();
  }
}
