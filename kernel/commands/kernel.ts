// `tsloth kernel -f CONNECTION_FILE`: what kernel.json runs.
import { existsSync } from "node:fs";
import type { Subcommand } from "../cli.js";
import { parseCommandLine } from "./options.js";

export const kernelCommand: Subcommand = {
  usage: "kernel -f CONNECTION_FILE",
  summary: "Start the Jupyter kernel (what a frontend runs through the kernelspec).",
  async run(args) {
    const { flags } = parseCommandLine("kernel", args, { f: "string", help: "boolean" }, { "--help": "help", "-h": "help" });
    if (flags.help) {
      console.log("Usage: tsloth kernel -f CONNECTION_FILE\n\nStarts the kernel on the ports and key of CONNECTION_FILE (written by a Jupyter frontend).");
      return 0;
    }
    const file = flags.f;
    if (typeof file !== "string") {
      console.error("tsloth kernel: expected -f CONNECTION_FILE (the JSON file a Jupyter frontend writes), found no -f");
      return 2;
    }
    if (!existsSync(file)) {
      console.error(`tsloth kernel: the connection file ${file} does not exist; start the kernel from Jupyter, or pass the file it wrote`);
      return 2;
    }
    const { runKernel } = await import("../server.js");
    const code = await runKernel(file);
    // Timers, sockets or child processes that cells left behind must not keep a dead kernel alive.
    process.exit(code);
  },
};
