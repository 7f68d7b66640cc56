// Command-line options of subcommands: --flag, --flag VALUE, --flag=VALUE, positionals.
export interface OptionSpec {
  [flag: string]: "boolean" | "string";
}

export interface ParsedCommandLine {
  flags: Record<string, string | boolean>;
  positionals: string[];
}

export function parseCommandLine(command: string, args: string[], spec: OptionSpec, aliases: Record<string, string> = {}): ParsedCommandLine {
  const flags: Record<string, string | boolean> = {};
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const raw = eq < 0 ? arg : arg.slice(0, eq);
    const flag = aliases[raw] ?? raw.replace(/^--?/, "");
    const type = spec[flag];
    if (!type) throw new Error(`unknown option ${raw} (options: ${Object.keys(spec).map((f) => `--${f}`).join(", ")})`);
    if (type === "boolean") flags[flag] = true;
    else if (eq >= 0) flags[flag] = arg.slice(eq + 1);
    else if (i + 1 < args.length) flags[flag] = args[++i];
    else throw new Error(`option --${flag} needs a value`);
  }
  void command;
  return { flags, positionals };
}
