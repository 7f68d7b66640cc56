// Help text of one magic, as %help NAME and %name? show it.
import type { MagicDefinition } from "./types.js";

export function magicUsage(magic: MagicDefinition): string {
  const sigil = magic.kind === "cell" ? "%%" : "%";
  const positionals = (magic.positionals ?? []).map((p) => (p.required ? p.name.toUpperCase() : `[${p.name.toUpperCase()}]`));
  const options = (magic.options ?? []).length ? ["[options]"] : [];
  return [sigil + magic.name, ...positionals, ...options].join(" ");
}

export function magicHelp(magic: MagicDefinition): string {
  const lines = [`Usage: ${magicUsage(magic)}`, "", magic.summary];
  if (magic.help) lines.push("", magic.help);
  if (magic.positionals?.length) {
    lines.push("", "Arguments:");
    for (const p of magic.positionals) lines.push(`  ${p.name.toUpperCase().padEnd(22)} ${p.help}${p.required ? "" : " (optional)"}`);
  }
  if (magic.options?.length) {
    lines.push("", "Options:");
    for (const o of magic.options) {
      const flag = o.type === "boolean" ? `--${o.name}` : `--${o.name}=${o.type.toUpperCase()}`;
      const choices = o.choices ? ` [${o.choices.join("|")}]` : "";
      const dflt = o.default !== undefined ? ` (default: ${String(o.default)})` : "";
      lines.push(`  ${flag.padEnd(22)} ${o.help}${choices}${dflt}`);
    }
  }
  if (magic.kind !== "cell") lines.push("", `Bind the result to a variable: x = %${magic.name} ...`);
  return lines.join("\n");
}
