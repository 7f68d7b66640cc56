// Magic argument lines: shell-like words (quotes, backslash escapes), `--flag value`,
// `--flag=value`, bare `--flag` / `--no-flag` for booleans, and positionals in order.
import { MagicUsageError, type MagicArgs, type MagicDefinition, type MagicOption, type OptionValue } from "./types.js";

export function splitWords(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === "\\" && quote === '"' && i + 1 < line.length) word += line[++i];
      else word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) throw new MagicUsageError(`unterminated ${quote} quote in: ${line.trim()}`);
  if (inWord) words.push(word);
  return words;
}

function convert(magic: string, option: MagicOption, raw: string): OptionValue {
  const bad = (expected: string) =>
    new MagicUsageError(`%${magic}: --${option.name} expects ${expected}, found "${raw}"`);
  switch (option.type) {
    case "boolean":
      if (/^(true|yes|1|on)$/i.test(raw)) return true;
      if (/^(false|no|0|off)$/i.test(raw)) return false;
      throw bad("true or false");
    case "number": {
      const n = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(n)) throw bad("a number");
      return n;
    }
    case "integer": {
      const n = Number(raw);
      if (!/^[+-]?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n)) throw bad("an integer");
      return n;
    }
    case "string":
      if (option.choices && !option.choices.includes(raw)) throw bad(`one of ${option.choices.join(", ")}`);
      return raw;
  }
}

export function parseMagicArgs(magic: MagicDefinition, line: string): MagicArgs {
  const options = magic.options ?? [];
  const positionals = magic.positionals ?? [];
  const args: MagicArgs = {};
  for (const o of options) args[o.name] = o.default;
  const words = splitWords(line);
  const given: string[] = [];
  const find = (name: string) => options.find((o) => o.name === name || o.name === name.replace(/-/g, "_"));
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    if (!word.startsWith("--") || word === "--") {
      given.push(word);
      continue;
    }
    const eq = word.indexOf("=");
    const flag = word.slice(2, eq < 0 ? undefined : eq);
    let option = find(flag);
    if (!option && flag.startsWith("no-") && find(flag.slice(3))?.type === "boolean" && eq < 0) {
      args[find(flag.slice(3))!.name] = false;
      continue;
    }
    if (!option) {
      const known = options.map((o) => `--${o.name}`).join(", ") || "none";
      throw new MagicUsageError(`%${magic.name}: unknown option --${flag} (options: ${known}; see %help ${magic.name})`);
    }
    option = option!;
    if (eq >= 0) args[option.name] = convert(magic.name, option, word.slice(eq + 1));
    else if (option.type === "boolean") args[option.name] = true;
    else if (i + 1 < words.length) args[option.name] = convert(magic.name, option, words[++i]);
    else throw new MagicUsageError(`%${magic.name}: --${option.name} needs a value (${option.type})`);
  }
  if (given.length > positionals.length) {
    throw new MagicUsageError(
      `%${magic.name}: expected at most ${positionals.length} argument(s) (${positionals.map((p) => p.name).join(", ") || "none"}), found ${given.length}: ${given.join(" ")}`,
    );
  }
  positionals.forEach((p, i) => {
    if (i < given.length) args[p.name] = given[i];
    else if (p.required) throw new MagicUsageError(`%${magic.name}: missing argument ${p.name.toUpperCase()} (${p.help})`);
    else args[p.name] = undefined;
  });
  return args;
}
