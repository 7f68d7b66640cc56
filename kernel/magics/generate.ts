// %generate "PROMPT" and %%generate (one prompt per block of the cell, blocks separated by a blank
// line): a thin parser over generate() (lib/index.ts). Text streams into one display per call,
// updated in place; the result (bindable) shows how each prompt ended.
import { generate, type Generation, type GenerateOptions } from "../../lib/index.js";
import { currentModel, shownAs } from "./model-state.js";
import { MagicUsageError, type MagicArgs, type MagicContext, type MagicDefinition } from "./types.js";

const UPDATE_EVERY_MS = 100;

function promptsOf(args: MagicArgs, ctx: MagicContext): string[] {
  if (ctx.body !== undefined) {
    const blocks = ctx.body.split(/\n\s*\n/).map((b) => b.trim()).filter((b) => b.length > 0);
    if (blocks.length === 0) throw new MagicUsageError("%%generate: the cell has no prompt; write one prompt per block, blocks separated by a blank line");
    return blocks;
  }
  if (args.prompt === undefined || String(args.prompt).trim() === "") throw new MagicUsageError('%generate: give a prompt in quotes, e.g. %generate "Once upon a time" (or use %%generate for several)');
  return [String(args.prompt)];
}

/** The streamed text of every prompt, as one display updated at most every UPDATE_EVERY_MS. */
class StreamedText {
  private readonly texts: string[];
  private handle: { update(v: unknown): void } | undefined;
  private last = 0;

  constructor(private readonly ctx: MagicContext, private readonly prompts: string[]) {
    this.texts = prompts.map(() => "");
  }

  push(text: string, index: number): void {
    this.texts[index] += text;
    const now = Date.now();
    if (this.handle && now - this.last < UPDATE_EVERY_MS) return;
    this.last = now;
    this.show();
  }

  show(): void {
    const body = this.prompts.length === 1 ? this.texts[0]! : this.texts.map((t, i) => `[${i + 1}] ${this.prompts[i]}\n${t}`).join("\n\n");
    const bundle = { "text/plain": body };
    if (this.handle) this.handle.update(bundle);
    else this.handle = this.ctx.display(bundle);
  }
}

function ending(g: Generation): string {
  const why = g.finishReason === "eos" ? "stopped at EOS" : g.finishReason === "length" ? "reached the token limit" : "interrupted";
  return `${g.ids.length} new tokens after a ${g.promptTokens}-token prompt, ${why}`;
}

export const generateMagics: MagicDefinition[] = [
  {
    name: "generate",
    kind: "both",
    summary: "Generate from the loaded model (with its LoRA), streaming; KV cache, sampling (lib: generate).",
    help: '%generate "What is the tsloth sloth called?" --chat --max_new_tokens 64\n%%generate --temperature 0.7 --top_p 0.9\nFirst prompt\n\nSecond prompt (prompts are separated by a blank line; several run together on the paged KV cache)',
    positionals: [{ name: "prompt", help: "the prompt, in quotes (line magic)" }],
    options: [
      { name: "max_new_tokens", type: "integer", default: 128, help: "new tokens per prompt at most" },
      { name: "temperature", type: "number", default: 0, help: "0: greedy" },
      { name: "top_p", type: "number", default: 1, help: "nucleus sampling mass" },
      { name: "top_k", type: "integer", default: 0, help: "0 keeps every token" },
      { name: "repetition_penalty", type: "number", default: 1, help: "> 1 discourages repeats" },
      { name: "seed", type: "integer", default: 3407, help: "sampling seed" },
      { name: "chat", type: "boolean", default: false, help: "wrap each prompt as a user message through the chat template" },
      { name: "kv_cache", type: "string", choices: ["contiguous", "paged"], help: "cache layout (default: contiguous for one prompt, paged for several)" },
    ],
    resultType: 'import("tsloth").Generation | import("tsloth").Generation[]',
    async run(args, ctx) {
      const model = currentModel(ctx, "generate");
      const prompts = promptsOf(args, ctx);
      const stream = new StreamedText(ctx, prompts);
      const options: GenerateOptions = {
        maxNewTokens: Number(args.max_new_tokens), temperature: Number(args.temperature), topP: Number(args.top_p),
        topK: Number(args.top_k), repetitionPenalty: Number(args.repetition_penalty), seed: Number(args.seed),
        chat: Boolean(args.chat), kvCache: args.kv_cache as GenerateOptions["kvCache"], signal: ctx.signal,
        onText: (text, i) => stream.push(text, i),
      };
      const results = await generate(model, prompts, options);
      stream.show();
      if (results.length === 1) return shownAs(results[0]!, ending(results[0]!));
      return shownAs(results, results.map((g, i) => `[${i + 1}] ${ending(g)}`).join("\n"));
    },
  },
];
