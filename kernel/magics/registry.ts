// The one table of magics. Adding a magic is one registerMagic call (see README.md).
import { MagicUsageError, type MagicDefinition } from "./types.js";

const magics = new Map<string, MagicDefinition>();

export function registerMagic(magic: MagicDefinition): void {
  if (!/^[A-Za-z_]\w*$/.test(magic.name)) throw new Error(`magic names are identifiers; found "${magic.name}"`);
  if (magics.has(magic.name)) throw new Error(`magic %${magic.name} is registered twice`);
  magics.set(magic.name, magic);
}

export function findMagic(name: string, kind: "line" | "cell"): MagicDefinition {
  const magic = magics.get(name);
  const sigil = kind === "cell" ? "%%" : "%";
  if (!magic) throw new MagicUsageError(`unknown magic ${sigil}${name}; %lsmagic lists the magics`);
  if (magic.kind !== "both" && magic.kind !== kind) {
    const other = magic.kind === "cell" ? "%%" : "%";
    throw new MagicUsageError(`${sigil}${name} is not a ${kind} magic; write ${other}${name}`);
  }
  return magic;
}

export function lookupMagic(name: string): MagicDefinition | undefined {
  return magics.get(name);
}

export function listMagics(): MagicDefinition[] {
  return [...magics.values()].sort((a, b) => a.name.localeCompare(b.name));
}
