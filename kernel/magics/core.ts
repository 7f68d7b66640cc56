// Magics about magics: %lsmagic and %help.
import { magicHelp, magicUsage } from "./help.js";
import { listMagics, lookupMagic } from "./registry.js";
import { MagicUsageError, type MagicDefinition } from "./types.js";

export const coreMagics: MagicDefinition[] = [
  {
    name: "lsmagic",
    kind: "line",
    summary: "List every magic with a one-line summary.",
    run(_args, ctx) {
      const rows = listMagics().map((m) => `${magicUsage(m).padEnd(40)} ${m.summary}`);
      ctx.stdout(`Magics (%help NAME or %NAME? for options):\n${rows.join("\n")}\n`);
    },
  },
  {
    name: "help",
    kind: "line",
    summary: "Show the usage, options and defaults of one magic.",
    positionals: [{ name: "name", help: "the magic's name, with or without %", required: true }],
    run(args, ctx) {
      const name = String(args.name).replace(/^%+/, "");
      const magic = lookupMagic(name);
      if (!magic) throw new MagicUsageError(`%help: unknown magic %${name}; %lsmagic lists the magics`);
      ctx.stdout(magicHelp(magic) + "\n");
    },
  },
];
