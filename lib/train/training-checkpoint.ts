// Save and resume of a LoRA training run: the adapters under their PEFT names
// (adapter_model.safetensors + adapter_config.json), the AdamW moments (optimizer.safetensors) and
// the step counters (trainer_state.json). Files are written atomically, the state file last.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Backend, Tensor } from "../backend/types.js";
import { SafetensorsReader } from "../formats/safetensors-reader.js";
import { writeSafetensorsFile, type TensorToWrite } from "../formats/safetensors-writer.js";
import type { LlamaModel } from "../model/llama.js";
import { loraParams, type ResolvedLoraOptions } from "../model/lora.js";
import { hfModulePath } from "../model/weights.js";
import { AdamWState } from "./optimizer.js";
import type { TrainingState } from "./trainer.js";

const STATE_FILE = "trainer_state.json";

interface SavedState {
  format: "tsloth-lora-training";
  completedSteps: number;
  runSteps: number | null;
  optimizerStep: number;
  lora: ResolvedLoraOptions;
  adamw: { beta1: number; beta2: number; eps: number; weightDecay: number };
}

function f32Tensor(be: Backend, name: string, t: Tensor): TensorToWrite {
  const v = be.download(t);
  return { name, dtype: "F32", shape: [...t.shape], data: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) };
}

function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(value, null, 2));
  renameSync(tmp, path);
}

/** PEFT's adapter_config.json for these adapters (loadable by peft.PeftModel.from_pretrained). */
export function peftAdapterConfig(lora: ResolvedLoraOptions, baseModel: string): Record<string, unknown> {
  return {
    peft_type: "LORA", task_type: "CAUSAL_LM", base_model_name_or_path: baseModel, r: lora.r, lora_alpha: lora.alpha,
    lora_dropout: 0, bias: "none", use_rslora: lora.rslora, fan_in_fan_out: false, inference_mode: true,
    target_modules: lora.targets.map((t) => hfModulePath(t).split(".")[1]),
  };
}

export function saveTrainingCheckpoint(model: LlamaModel, state: TrainingState, dir: string, baseModel = ""): void {
  if (!model.lora) throw new Error("tsloth: no LoRA adapters to save; attach them first");
  mkdirSync(dir, { recursive: true });
  const be = model.be;
  const { params, names } = loraParams(model.lora);
  writeSafetensorsFile(join(dir, "adapter_model.safetensors"), params.map((p, k) => f32Tensor(be, names[k], p)), { format: "pt" });
  writeJsonAtomic(join(dir, "adapter_config.json"), peftAdapterConfig(model.lora.options, baseModel));
  const opt = state.optimizer;
  writeSafetensorsFile(join(dir, "optimizer.safetensors"), [
    ...opt.m.map((t, k) => f32Tensor(be, `${names[k]}.exp_avg`, t)),
    ...opt.v.map((t, k) => f32Tensor(be, `${names[k]}.exp_avg_sq`, t)),
  ]);
  const saved: SavedState = {
    format: "tsloth-lora-training", completedSteps: state.completedSteps, runSteps: state.runSteps, optimizerStep: opt.step, lora: model.lora.options,
    adamw: { beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: opt.weightDecay },
  };
  writeJsonAtomic(join(dir, STATE_FILE), saved);
}

function readInto(be: Backend, reader: SafetensorsReader, name: string, dst: Tensor, dir: string): void {
  if (!reader.has(name)) throw new Error(`tsloth: ${dir} has no tensor "${name}"; it was saved from a different LoRA setup`);
  const values = reader.readF32(name);
  const n = dst.shape.reduce((a, b) => a * b, 1);
  if (values.length !== n) throw new Error(`tsloth: "${name}" in ${dir} has ${values.length} values, the adapter needs ${n}`);
  const t = be.upload(values, dst.shape, "f32", dst.category);
  be.copyInto(dst, t);
  be.free(t);
}

/** Restores adapters and optimizer into `model` (whose LoRA must match the saved one); returns the state to continue from. */
export function loadTrainingCheckpoint(model: LlamaModel, dir: string): TrainingState {
  const statePath = join(dir, STATE_FILE);
  if (!existsSync(statePath)) throw new Error(`tsloth: ${dir} is not a training checkpoint (no ${STATE_FILE}); pass the directory a run was saved to`);
  const saved = JSON.parse(readFileSync(statePath, "utf8")) as SavedState;
  if (!model.lora) model.attachLora(saved.lora);
  const cur = model.lora!.options;
  if (cur.r !== saved.lora.r || cur.targets.join(",") !== saved.lora.targets.join(","))
    throw new Error(`tsloth: the checkpoint in ${dir} has LoRA r=${saved.lora.r} on ${saved.lora.targets.join(",")}, the model has r=${cur.r} on ${cur.targets.join(",")}; attach matching LoRA (or none) before resuming`);
  const be = model.be;
  const { params, grads, names } = loraParams(model.lora!);
  const adapters = SafetensorsReader.open(join(dir, "adapter_model.safetensors"));
  const optim = SafetensorsReader.open(join(dir, "optimizer.safetensors"));
  try {
    params.forEach((p, k) => readInto(be, adapters, names[k], p, dir));
    const opt = new AdamWState(be, params, grads, saved.adamw);
    opt.m.forEach((t, k) => readInto(be, optim, `${names[k]}.exp_avg`, t, dir));
    opt.v.forEach((t, k) => readInto(be, optim, `${names[k]}.exp_avg_sq`, t, dir));
    opt.step = saved.optimizerStep;
    return { optimizer: opt, completedSteps: saved.completedSteps, runSteps: saved.runSteps ?? null };
  } finally {
    adapters.close();
    optim.close();
  }
}
