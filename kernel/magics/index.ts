// Every family of magics, registered once. A new family is one file and one line here.
import { coreMagics } from "./core.js";
import { generateMagics } from "./generate.js";
import { memoryMagics } from "./memory.js";
import { modelMagics } from "./model.js";
import { registerMagic } from "./registry.js";
import { saveMagics } from "./save.js";
import { shellMagics } from "./shell.js";
import { trainMagics } from "./train.js";
import type { MagicDefinition } from "./types.js";

const families: MagicDefinition[][] = [coreMagics, shellMagics, modelMagics, trainMagics, generateMagics, memoryMagics, saveMagics];

let registered = false;

export function registerBuiltinMagics(): void {
  if (registered) return;
  registered = true;
  for (const family of families) for (const magic of family) registerMagic(magic);
}

export { registerMagic, findMagic, listMagics, lookupMagic } from "./registry.js";
export { MagicUsageError } from "./types.js";
export type { MagicArgs, MagicContext, MagicDefinition, MagicOption, MagicPositional, OptionType } from "./types.js";
