// %save_merged DIR --method lora: the adapters as a PEFT adapter directory (adapter_config.json +
// adapter_model.safetensors under PEFT's key names, without the ".default" adapter name PEFT
// strips on save), which peft.PeftModel.from_pretrained loads onto the base model.
import { statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hfModulePath } from "../model/weights.js";
import { peftLoraKey, type ResolvedLoraOptions } from "../model/lora.js";
import { writeCheckpointExtras } from "./checkpoint-extras.js";
import { diskShortfalls, diskSpaceError, freeDiskBytes } from "./disk-preflight.js";
import { PlacedShardWriter } from "./placed-shard-writer.js";
import type { SavableModel } from "./savable-model.js";
import { resolveSaveOptions, saveInterrupted, type SaveOptions, type SaveSummary } from "./save-options.js";
import { StagedDirectory } from "./staged-directory.js";

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/** PEFT's LoraConfig fields (peft 0.21) for adapters trained on every layer with one rank. */
export function peftLoraConfig(lora: ResolvedLoraOptions, baseModel: string): Record<string, unknown> {
  return {
    alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: baseModel, bias: "none", fan_in_fan_out: false,
    inference_mode: true, init_lora_weights: true, layer_replication: null, layers_pattern: null, layers_to_transform: null,
    lora_alpha: lora.alpha, lora_bias: false, lora_dropout: 0.0, modules_to_save: null, peft_type: "LORA", r: lora.r,
    rank_pattern: {}, revision: null, target_modules: lora.targets.map((t) => hfModulePath(t).split(".")[1]),
    task_type: "CAUSAL_LM", use_dora: false, use_rslora: lora.rslora,
  };
}

/** The base model as PEFT should find it: the hub id when loaded from the hub, else its directory. */
export function baseModelName(model: SavableModel): string {
  if (model.name && HUB_ID.test(model.name)) return model.name;
  return model.dir ?? model.name ?? "";
}

export async function saveLora(model: SavableModel, options: SaveOptions): Promise<SaveSummary> {
  const started = performance.now();
  const opts = resolveSaveOptions({ ...options, method: "lora" });
  const lora = model.engine.lora;
  if (!lora) throw new Error("tsloth: the model has no LoRA adapters to save; attach them with %lora (attachLora) and train first");
  const be = model.engine.be;
  const plan = lora.slots.flatMap((s) => [
    { name: peftLoraKey(s.layer, s.target, "A"), dtype: "F32" as const, shape: [...s.adapter.a.shape] },
    { name: peftLoraKey(s.layer, s.target, "B"), dtype: "F32" as const, shape: [...s.adapter.b.shape] },
  ]);
  const adapterBytes = plan.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1) * 4, 0);
  const short = diskShortfalls([{ path: opts.dir, bytes: adapterBytes + 1e6, what: "adapters" }], options.freeDiskBytes ?? freeDiskBytes);
  if (short.length) throw diskSpaceError(short, "Free space on that disk or choose another directory.");
  const { staged, lines } = StagedDirectory.begin(opts.dir);
  let peak = 0;
  try {
    const writer = new PlacedShardWriter(staged.path, plan, Number.MAX_SAFE_INTEGER, "positioned", "adapter_model");
    for (const [i, s] of lora.slots.entries()) {
      if (options.signal?.aborted) throw saveInterrupted(opts.dir);
      for (const [which, t] of [["A", s.adapter.a], ["B", s.adapter.b]] as const) {
        const v = be.download(t);
        peak = Math.max(peak, v.byteLength);
        await writer.place(peftLoraKey(s.layer, s.target, which), 0, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
      }
      options.onProgress?.({ phase: "write", done: i + 1, total: lora.slots.length, tensor: peftLoraKey(s.layer, s.target, "A"), bytesWritten: 0 });
    }
    await writer.finish();
    writeCheckpointExtras(staged.path, model.config, model.dir, { quantized4bit: false, modelConfig: false });
    // adapter_config.json last: PEFT treats a directory with it as an adapter.
    writeFileSync(join(staged.path, "adapter_config.json"), JSON.stringify(peftLoraConfig(lora.options, baseModelName(model)), null, 2) + "\n");
    options.onProgress?.({ phase: "commit", done: lora.slots.length, total: lora.slots.length, bytesWritten: adapterBytes });
    staged.commit();
  } catch (e) {
    staged.discard();
    throw e;
  }
  for (const l of lines) options.onLine?.(l);
  const files = StagedDirectory.listFiles(opts.dir);
  return {
    dir: opts.dir, method: "lora", files, bytes: files.reduce((n, f) => n + statSync(f).size, 0), seconds: (performance.now() - started) / 1000,
    peakMemoryBytes: peak, memoryBudgetBytes: 0, serialization: "single-file", baseSource: "adapters only", freedCacheBytes: 0, lines,
  };
}
