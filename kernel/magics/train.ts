// %train: a thin parser over train() (lib/index.ts) with the live display of lib/api/live-training.
import { LiveTraining, train, type TrainOptions } from "../../lib/index.js";
import { currentModel, shownAs } from "./model-state.js";
import { MagicUsageError, type MagicDefinition } from "./types.js";

export const trainMagics: MagicDefinition[] = [
  {
    name: "train",
    kind: "line",
    summary: "Fine-tune the LoRA adapters, with a live progress bar, loss and VRAM plots (lib: train).",
    help: "Example: %train --data tsloth-tiny-data --steps 60 --lr 2e-3 --checkpoint unsloth\nInterrupt stops at the next step boundary; the model and optimizer stay usable and a later %train continues.",
    options: [
      { name: "data", type: "string", help: "JSONL file of chats or texts, or tsloth-tiny-data (required)" },
      { name: "steps", type: "integer", help: "optimizer steps (default: one epoch)" },
      { name: "epochs", type: "number", help: "passes over the data (instead of --steps)" },
      { name: "batch", type: "integer", default: 1, help: "sequences per micro-batch (raise --grad_accum first)" },
      { name: "grad_accum", type: "integer", default: 4, help: "micro-batches per optimizer step" },
      { name: "lr", type: "number", default: 2e-4, help: "peak learning rate" },
      { name: "schedule", type: "string", default: "linear", choices: ["linear", "cosine", "constant"], help: "learning-rate schedule after warmup" },
      { name: "warmup", type: "integer", default: 5, help: "warmup steps" },
      { name: "checkpoint", type: "string", default: "unsloth", choices: ["unsloth", "true", "off"], help: "gradient checkpointing" },
      { name: "packing", type: "boolean", default: false, help: "pack short samples up to max_seq_length" },
      { name: "max_seq_length", type: "integer", help: "default: the model's max_seq_length" },
      { name: "seed", type: "integer", default: 3407, help: "data order seed" },
      { name: "clip", type: "number", default: 1, help: "max gradient norm (0: off)" },
      { name: "weight_decay", type: "number", default: 0, help: "AdamW decoupled weight decay" },
      { name: "truncation", type: "string", default: "truncate", choices: ["truncate", "refuse"], help: "what to do with samples over max_seq_length" },
      { name: "resume_from", type: "string", help: "directory written by saveTrainingState" },
    ],
    resultType: 'import("tsloth").TrainSummary',
    async run(args, ctx) {
      if (args.data === undefined) throw new MagicUsageError("%train: --data is required (a JSONL file, or tsloth-tiny-data for the built-in set)");
      const model = currentModel(ctx, "train");
      const options: TrainOptions = {
        data: String(args.data),
        steps: args.steps as number | undefined,
        epochs: args.epochs as number | undefined,
        batch: Number(args.batch),
        gradAccum: Number(args.grad_accum),
        lr: Number(args.lr),
        schedule: args.schedule as TrainOptions["schedule"],
        warmup: Number(args.warmup),
        checkpoint: args.checkpoint as "unsloth" | "true" | "off",
        packing: Boolean(args.packing),
        maxSeqLength: args.max_seq_length as number | undefined,
        seed: Number(args.seed),
        clip: Number(args.clip),
        weightDecay: Number(args.weight_decay),
        truncation: args.truncation as "truncate" | "refuse",
        resumeFrom: args.resume_from as string | undefined,
      };
      let handle: { update(v: unknown): void } | undefined;
      const live = new LiveTraining({
        show: (bundle) => { handle = ctx.display(bundle); },
        update: (bundle) => handle?.update(bundle),
      });
      try {
        const summary = await train(model, options, { onProgress: live.onProgress, onWarning: (m) => ctx.stderr(m + "\n"), signal: ctx.signal });
        live.finish(summary);
        const how = summary.interrupted ? `interrupted after step ${summary.steps} of ${summary.totalSteps}` : `${summary.steps} steps`;
        return shownAs(summary, `Trained ${how}: loss ${summary.firstLoss.toFixed(4)} -> ${summary.finalLoss.toFixed(4)}, ${summary.tokens.toLocaleString("en-US")} tokens in ${summary.seconds.toFixed(1)} s`);
      } catch (err) {
        live.finish(undefined, "error");
        throw err;
      }
    },
  },
];
