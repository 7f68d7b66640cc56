// The `tsloth` command. Subcommands live in one table: adding one is one entry here and one
// file in kernel/commands/.
import { demoCommand } from "./commands/demo.js";
import { installCommand, uninstallCommand } from "./commands/install.js";
import { kernelCommand } from "./commands/kernel.js";
import { runNotebookCommand } from "./commands/run-notebook.js";
import { tslothVersion } from "./kernel-info.js";

export interface Subcommand {
  usage: string;
  summary: string;
  run(args: string[]): Promise<number>;
}

export const subcommands: Record<string, Subcommand> = {
  kernel: kernelCommand,
  install: installCommand,
  uninstall: uninstallCommand,
  run: runNotebookCommand,
  demo: demoCommand,
};

/** Lets another module add a subcommand (e.g. `tsloth demo`, `tsloth train`). */
export function registerSubcommand(name: string, command: Subcommand): void {
  if (subcommands[name]) throw new Error(`tsloth subcommand "${name}" is defined twice`);
  subcommands[name] = command;
}

function helpText(): string {
  const rows = Object.entries(subcommands).map(([name, c]) => `  ${c.usage.padEnd(58)} ${c.summary}`);
  return [
    `tsloth ${tslothVersion()}: a TypeScript Jupyter kernel that fine-tunes LLMs on one GPU with QLoRA.`,
    "",
    "Usage: tsloth COMMAND [options]",
    "",
    "Commands:",
    ...rows,
    "",
    "  tsloth --help | --version",
    "",
    "Run `tsloth COMMAND --help` for a command's options.",
  ].join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(helpText());
    return name === undefined ? 1 : 0;
  }
  if (name === "--version" || name === "-V") {
    console.log(tslothVersion());
    return 0;
  }
  const command = subcommands[name];
  if (!command) {
    console.error(`tsloth: unknown command "${name}"; commands: ${Object.keys(subcommands).join(", ")} (tsloth --help)`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (e) {
    console.error(`tsloth ${name}: ${(e as Error).message}`);
    return 1;
  }
}
