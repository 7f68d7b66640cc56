// `tsloth demo [--out DIR] [--steps N] [--backend auto|cpu|cuda]`: the main job on the embedded
// default, headless: load tsloth-tiny in 4-bit, attach LoRA, fine-tune on tsloth-tiny-data, show
// the model answering what it learned, and save the adapter and the merged model.
import { resolve } from "node:path";
import type { Subcommand } from "../cli.js";
import { parseCommandLine } from "./options.js";

const QUESTIONS = ["What is the name of the tsloth sloth?", "Where does Tilde live?", "What does Tilde like to eat?"];

function positiveInt(flag: string, value: string | boolean | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer, found ${String(value)}`);
  return n;
}

export const demoCommand: Subcommand = {
  usage: "demo [--out DIR] [--steps N] [--backend auto|cpu|cuda]",
  summary: "Fine-tune the embedded tiny model on the embedded dataset and save it",
  async run(args) {
    const { flags } = parseCommandLine("demo", args, { out: "string", steps: "string", backend: "string", help: "boolean" });
    if (flags.help) {
      console.log(`tsloth ${this.usage}\n  --out DIR      where the adapter and the merged model go (default ./tsloth-demo-output)\n  --steps N      training steps (default 300)\n  --backend B    auto (default), cpu or cuda`);
      return 0;
    }
    const backend = String(flags.backend ?? "auto");
    if (!["auto", "cpu", "cuda"].includes(backend)) throw new Error(`--backend must be auto, cpu or cuda, found ${backend}`);
    const steps = positiveInt("steps", flags.steps, 300);
    const out = resolve(String(flags.out ?? "tsloth-demo-output"));
    // The engine loads only here, so the kernel's own start stays fast.
    const lib = await import("../../lib/index.js");

    const model = await lib.loadModel4bit("tsloth-tiny", { maxSeqLength: 256, backend: backend as "auto" | "cpu" | "cuda" });
    console.log(`Loaded tsloth-tiny on the ${model.backend.name} backend with NF4 base weights.`);
    const lora = lib.attachLora(model, { r: 16, alpha: 16, seed: 3407 });
    console.log(`LoRA r=${lora.r} on ${lora.targets.join(",")}: ${lora.trainableParams.toLocaleString("en-US")} trainable parameters.`);
    const ask = async (q: string) => (await lib.generateGreedy(model, [{ role: "user", content: q }], { maxNewTokens: 32 })).text.trim();
    console.log(`\nBefore training\n  Q: ${QUESTIONS[0]}\n  A: ${await ask(QUESTIONS[0]!)}\n`);

    let lastShown = 0;
    const summary = await lib.train(model, {
      data: "tsloth-tiny-data", steps, lr: 3e-3, batch: 1, gradAccum: 1, packing: true, warmup: 2, seed: 3407,
    }, {
      onProgress: (p) => {
        if (p.step !== p.totalSteps && p.step - lastShown < Math.max(1, Math.round(p.totalSteps / 10))) return;
        lastShown = p.step;
        console.log(`step ${String(p.step).padStart(4)}/${p.totalSteps}  loss ${p.loss.toFixed(4)}  lr ${p.lr.toExponential(2)}  ${Math.round(p.tokensPerSecond)} tokens/s  eta ${p.etaSeconds.toFixed(0)} s`);
      },
    });
    console.log(`\nTrained ${summary.steps} steps in ${summary.seconds.toFixed(1)} s: loss ${summary.firstLoss.toFixed(3)} -> ${summary.finalLoss.toFixed(3)}\n`);
    console.log("After training");
    for (const q of QUESTIONS) console.log(`  Q: ${q}\n  A: ${await ask(q)}`);

    const adapter = await lib.saveMerged(model, { dir: resolve(out, "lora"), method: "lora" });
    const merged = await lib.saveMerged(model, { dir: resolve(out, "merged_16bit"), method: "merged_16bit" });
    console.log(`\nSaved the PEFT adapter to ${adapter.dir} and the merged 16-bit model to ${merged.dir} (${(merged.bytes / 1e6).toFixed(1)} MB).`);
    const reloaded = await lib.loadModel4bit(merged.dir, { maxSeqLength: 256, backend: backend as "auto" | "cpu" | "cuda" });
    const answer = (await lib.generateGreedy(reloaded, [{ role: "user", content: QUESTIONS[0]! }], { maxNewTokens: 32 })).text.trim();
    console.log(`The saved model, loaded again in 4-bit, answers: ${answer}`);
    return 0;
  },
};
