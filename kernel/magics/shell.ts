// Magics about the notebook's files and shell: %pwd, %cd, %%writefile, %%bash, %%html.
import { spawn } from "node:child_process";
import { appendFileSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { MagicUsageError, type MagicDefinition } from "./types.js";

export const shellMagics: MagicDefinition[] = [
  {
    name: "pwd",
    kind: "line",
    summary: "The kernel's working directory (where imports and relative paths resolve).",
    resultType: "string",
    run: () => process.cwd(),
  },
  {
    name: "cd",
    kind: "line",
    summary: "Change the kernel's working directory.",
    positionals: [{ name: "dir", help: "the new directory", required: true }],
    resultType: "string",
    run(args) {
      const dir = resolve(String(args.dir));
      try {
        process.chdir(dir);
      } catch (e) {
        throw new MagicUsageError(`%cd: cannot enter ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
      return process.cwd();
    },
  },
  {
    name: "writefile",
    kind: "cell",
    summary: "Write the cell's body to a file.",
    positionals: [{ name: "file", help: "path of the file, relative to the working directory", required: true }],
    options: [{ name: "append", type: "boolean", default: false, help: "append instead of replacing the file" }],
    run(args, ctx) {
      const file = resolve(String(args.file));
      const body = ctx.body ?? "";
      mkdirSync(dirname(file), { recursive: true });
      if (args.append) appendFileSync(file, body);
      else {
        // Atomic: a reader never sees half a file.
        const tmp = `${file}.tmp-${process.pid}`;
        writeFileSync(tmp, body);
        renameSync(tmp, file);
      }
      ctx.stdout(`${args.append ? "Appended to" : "Wrote"} ${file} (${Buffer.byteLength(body)} bytes)\n`);
    },
  },
  {
    name: "html",
    kind: "cell",
    summary: "Show the cell's body as HTML.",
    run(_args, ctx) {
      ctx.display({ "text/html": ctx.body ?? "", "text/plain": "<HTML>" });
    },
  },
  {
    name: "bash",
    kind: "cell",
    summary: "Run the cell's body with bash; output streams into the cell.",
    options: [{ name: "timeout", type: "number", default: 0, help: "seconds before the script is stopped (0: no limit)" }],
    run(args, ctx) {
      const timeout = Number(args.timeout);
      if (timeout < 0) throw new MagicUsageError(`%%bash: --timeout expects seconds >= 0, found ${timeout}`);
      return new Promise<void>((done, fail) => {
        const child = spawn("bash", ["-c", ctx.body ?? ""], { stdio: ["ignore", "pipe", "pipe"] });
        child.stdout.on("data", (d: Buffer) => ctx.stdout(d.toString()));
        child.stderr.on("data", (d: Buffer) => ctx.stderr(d.toString()));
        const stop = () => child.kill("SIGTERM");
        ctx.signal.addEventListener("abort", stop, { once: true });
        const timer = timeout > 0 ? setTimeout(stop, timeout * 1000) : undefined;
        child.on("close", (code, signal) => {
          if (timer) clearTimeout(timer);
          ctx.signal.removeEventListener("abort", stop);
          if (code === 0) done();
          else fail(new Error(`bash exited with ${signal ? `signal ${signal}` : `status ${code}`}`));
        });
      });
    },
  },
];
