// %save_merged: a thin parser over saveMerged (lib/save), with a progress line updated in place.
import { saveMerged, type SaveProgress } from "../../lib/index.js";
import { currentModel, shownAs } from "./model-state.js";
import type { MagicContext, MagicDefinition } from "./types.js";

const UPDATE_EVERY_MS = 300;

function progressLine(p: SaveProgress): string {
  const width = 30;
  const filled = p.total > 0 ? Math.round((p.done / p.total) * width) : 0;
  const mb = (p.bytesWritten / 1e6).toFixed(1);
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${p.done}/${p.total} tensors, ${mb} MB written (${p.phase})`;
}

function progressDisplay(ctx: MagicContext): (p: SaveProgress) => void {
  let handle: { update(v: unknown): void } | undefined;
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (handle && now - last < UPDATE_EVERY_MS && p.done < p.total) return;
    last = now;
    const bundle = { "text/plain": progressLine(p) };
    if (handle) handle.update(bundle);
    else handle = ctx.display(bundle);
  };
}

export const saveMagics: MagicDefinition[] = [
  {
    name: "save_merged",
    kind: "line",
    summary: "Save the model: LoRA merged into 16-bit (or 4-bit) shards, or a PEFT adapter; atomic, within a memory budget (lib: saveMerged).",
    help: "Example: %save_merged out/tiny-merged --method merged_16bit --max_shard_size 5GB\nA DIR that exists is replaced only once the new save is whole.",
    positionals: [{ name: "dir", help: "output directory", required: true }],
    options: [
      { name: "method", type: "string", default: "merged_16bit", choices: ["merged_16bit", "merged_4bit", "lora"], help: "what to write" },
      { name: "max_shard_size", type: "string", default: "5GB", help: 'largest shard: "5GB", "500MB" or bytes' },
      { name: "maximum_memory_usage", type: "number", default: 0.9, help: "share of free memory the merge may use, in (0, 0.95]" },
      { name: "temporary_location", type: "string", help: "scratch directory (default: where the platform has space)" },
      { name: "force", type: "boolean", default: false, help: "allow merged_4bit, which loses accuracy" },
      { name: "platform", type: "string", choices: ["colab", "kaggle", "local"], help: "force the platform instead of detecting it" },
    ],
    resultType: 'import("tsloth").SaveSummary',
    async run(args, ctx) {
      const model = currentModel(ctx, "save_merged");
      const summary = await saveMerged(model, {
        dir: String(args.dir),
        method: args.method as "merged_16bit" | "merged_4bit" | "lora",
        maxShardSize: String(args.max_shard_size),
        maximumMemoryUsage: Number(args.maximum_memory_usage),
        temporaryLocation: args.temporary_location as string | undefined,
        force: Boolean(args.force),
        platform: args.platform as "colab" | "kaggle" | "local" | undefined,
        onProgress: progressDisplay(ctx),
        onLine: (line) => ctx.stdout(line + "\n"),
        signal: ctx.signal,
      });
      return shownAs(summary, `Saved ${summary.method} to ${summary.dir}: ${summary.files.length} files, ${(summary.bytes / 1e6).toFixed(1)} MB in ${summary.seconds.toFixed(1)} s, peak memory ${(summary.peakMemoryBytes / 1e6).toFixed(1)} MB`);
    },
  },
];
