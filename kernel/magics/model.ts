// %load_4bit and %lora: thin parsers over loadModel4bit and attachLora (lib/index.ts).
import { attachLora, loadModel4bit, trackMemory } from "../../lib/index.js";
import { currentModel, listOption, setCurrentModel, shownAs } from "./model-state.js";
import type { MagicDefinition } from "./types.js";

export const modelMagics: MagicDefinition[] = [
  {
    name: "load_4bit",
    kind: "line",
    summary: "Load a model with 4-bit NF4 base weights (lib: loadModel4bit).",
    help: "MODEL is a local directory, a Hugging Face id already in the local cache, or tsloth-tiny (the embedded model).\nExample: model = %load_4bit tsloth-tiny --max_seq_length 256",
    positionals: [{ name: "model", help: "local directory, cached hub id, or tsloth-tiny", required: true }],
    options: [
      { name: "max_seq_length", type: "integer", help: "longest sequence trained on or generated (default: min(2048, the model's limit))" },
      { name: "dtype", type: "string", default: "bf16", choices: ["bf16", "f16"], help: "compute dtype on the GPU" },
      { name: "backend", type: "string", default: "auto", choices: ["auto", "cpu", "cuda"], help: "auto: CUDA when a GPU and libtsloth_cuda.so are present" },
    ],
    resultType: 'import("tsloth").Model',
    async run(args, ctx) {
      const model = await loadModel4bit(String(args.model), {
        maxSeqLength: args.max_seq_length === undefined ? undefined : Number(args.max_seq_length),
        dtype: args.dtype as "bf16" | "f16",
        backend: args.backend as "auto" | "cpu" | "cuda",
      });
      setCurrentModel(ctx, model);
      trackMemory(model);
      const c = model.config;
      return shownAs(model, `Loaded ${model.name} (${c.family}, ${c.numLayers} layers, hidden ${c.hiddenSize}, vocab ${c.vocabSize}) on the ${model.backend.name} backend, NF4 base weights, max_seq_length ${model.maxSeqLength}`);
    },
  },
  {
    name: "lora",
    kind: "line",
    summary: "Attach LoRA adapters to the loaded model (lib: attachLora).",
    help: "Example: %lora --r 16 --alpha 16 --targets q,k,v,o,gate,up,down",
    options: [
      { name: "r", type: "integer", default: 16, help: "rank" },
      { name: "alpha", type: "number", default: 16, help: "scale numerator (scale = alpha / r, or alpha / sqrt(r) with --rslora)" },
      { name: "targets", type: "string", default: "q,k,v,o,gate,up,down", help: "comma-separated projections" },
      { name: "seed", type: "integer", default: 3407, help: "initialisation seed" },
      { name: "rslora", type: "boolean", default: false, help: "rank-stabilised scaling" },
    ],
    resultType: 'import("tsloth").LoraSummary',
    run(args, ctx) {
      const model = currentModel(ctx, "lora");
      const s = attachLora(model, {
        r: Number(args.r), alpha: Number(args.alpha), targets: listOption(args.targets),
        seed: Number(args.seed), rslora: Boolean(args.rslora),
      });
      return shownAs(s, `LoRA r=${s.r} alpha=${s.alpha} scale=${s.scale.toFixed(4)} on ${s.targets.join(",")}: ${s.trainableParams.toLocaleString("en-US")} trainable parameters`);
    },
  },
];
