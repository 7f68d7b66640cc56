// %vram, %env and %estimate: thin parsers over vram, env and estimate (lib/api/views.ts).
import { env, estimate, vram } from "../../lib/index.js";
import { listOption, maybeCurrentModel } from "./model-state.js";
import type { MagicDefinition } from "./types.js";

export const memoryMagics: MagicDefinition[] = [
  {
    name: "vram",
    kind: "line",
    summary: "Device memory now, the engine's use by category, host RAM, and the history since start (lib: vram).",
    resultType: 'import("tsloth").Displayable<import("tsloth").VramSnapshot>',
    run(_args, ctx) {
      return vram(maybeCurrentModel(ctx));
    },
  },
  {
    name: "env",
    kind: "line",
    summary: "What tsloth detected: Colab/Kaggle, GPU, driver and CUDA, CPUs, RAM, free disk, backend (lib: env).",
    options: [{ name: "disk", type: "string", help: "comma-separated paths whose free space to show (default: the notebook's directory)" }],
    async run(args, ctx) {
      return env({ backend: maybeCurrentModel(ctx)?.backend.name, diskPaths: listOption(args.disk) ?? [ctx.cwd] });
    },
  },
  {
    name: "estimate",
    kind: "line",
    summary: "Predicted peak memory by category before loading anything, and the nearest settings that fit (lib: estimate).",
    help: "Example: %estimate tsloth-tiny --batch 4 --seq 2048 --checkpoint unsloth",
    positionals: [{ name: "model", help: "local directory, cached hub id, or tsloth-tiny", required: true }],
    options: [
      { name: "batch", type: "integer", default: 1, help: "sequences per micro-batch" },
      { name: "seq", type: "integer", default: 2048, help: "tokens per sequence" },
      { name: "r", type: "integer", default: 16, help: "LoRA rank" },
      { name: "targets", type: "string", default: "q,k,v,o,gate,up,down", help: "comma-separated projections" },
      { name: "checkpoint", type: "string", default: "unsloth", choices: ["unsloth", "true", "off"], help: "gradient checkpointing" },
      { name: "grad_accum", type: "integer", default: 1, help: "kept when suggesting a smaller batch" },
      { name: "gpu_gb", type: "number", help: "GPU memory to fit in, GiB (default: the detected GPU)" },
    ],
    run(args) {
      return estimate(String(args.model), {
        batch: Number(args.batch), seq: Number(args.seq), r: Number(args.r), targets: listOption(args.targets),
        checkpoint: args.checkpoint as "unsloth" | "true" | "off", gradAccum: Number(args.grad_accum),
        gpuBytes: args.gpu_gb === undefined ? undefined : Number(args.gpu_gb) * 2 ** 30,
      });
    },
  },
];
