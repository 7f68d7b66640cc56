// Running a magic from a cell: look it up, parse its arguments, call it with a context.
import { parseMagicArgs } from "./args.js";
import { magicHelp } from "./help.js";
import { findMagic, lookupMagic } from "./registry.js";
import { MagicUsageError, type MagicContext } from "./types.js";

export type ContextFactory = (body: string | undefined) => MagicContext;

export class MagicRunner {
  constructor(private readonly makeContext: ContextFactory) {}

  async runLine(name: string, argLine: string): Promise<unknown> {
    const magic = findMagic(name, "line");
    const args = parseMagicArgs(magic, argLine);
    return await magic.run(args, this.makeContext(undefined));
  }

  async runCell(name: string, argLine: string, body: string): Promise<unknown> {
    const magic = findMagic(name, "cell");
    const args = parseMagicArgs(magic, argLine);
    return await magic.run(args, this.makeContext(body));
  }

  help(name: string): void {
    const magic = lookupMagic(name);
    if (!magic) throw new MagicUsageError(`unknown magic %${name}; %lsmagic lists the magics`);
    this.makeContext(undefined).stdout(magicHelp(magic) + "\n");
  }
}
