// `tsloth run NOTEBOOK.ipynb [--out FILE] [--timeout S]`: executes every code cell through a
// kernel process over the Jupyter protocol and writes the notebook with its outputs.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { basename, dirname, resolve } from "node:path";
import type { Subcommand } from "../cli.js";
import { KernelClient } from "../client/kernel-client.js";
import { launchKernel } from "../client/launch.js";
import { CellOutputs, type Output } from "../client/notebook-outputs.js";
import { parseCommandLine } from "./options.js";

interface NotebookCell {
  cell_type: string;
  source: string | string[];
  id?: string;
  metadata?: Record<string, unknown>;
  outputs?: Output[];
  execution_count?: number | null;
}

interface Notebook {
  nbformat: number;
  nbformat_minor: number;
  metadata: Record<string, unknown>;
  cells: NotebookCell[];
}

const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");

function readNotebook(path: string): Notebook {
  if (!existsSync(path)) throw new Error(`notebook ${path} does not exist`);
  let nb: Notebook;
  try {
    nb = JSON.parse(readFileSync(path, "utf8")) as Notebook;
  } catch (e) {
    throw new Error(`${path} is not a notebook (invalid JSON: ${(e as Error).message})`);
  }
  if (nb.nbformat !== 4 || !Array.isArray(nb.cells)) throw new Error(`${path}: expected an nbformat 4 notebook, found nbformat ${String(nb.nbformat)}`);
  return nb;
}

function withKernelMetadata(nb: Notebook): void {
  nb.metadata.kernelspec ??= { name: "tsloth", display_name: "TypeScript (tsloth)", language: "typescript" };
  nb.metadata.language_info = { name: "typescript", file_extension: ".ts", mimetype: "text/typescript", codemirror_mode: { name: "javascript", typescript: true } };
  if (nb.nbformat_minor >= 5) for (const cell of nb.cells) cell.id ??= randomUUID().slice(0, 8);
}

type CellResult = { status: string; executionCount: number | null; outputs: Output[]; error?: Output };

async function runCell(client: KernelClient, code: string, displays: Map<string, Output[]>, timeoutS: number): Promise<CellResult> {
  const outputs = new CellOutputs(displays);
  return await new Promise((resolve) => {
    let reply: Record<string, unknown> | undefined;
    let idle = false;
    let timer: NodeJS.Timeout | undefined;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      if (timer) clearTimeout(timer);
      client.forget(id);
      const error = outputs.outputs.find((o) => o.output_type === "error");
      resolve({ status: String(reply?.status ?? "error"), executionCount: (reply?.execution_count as number) ?? null, outputs: outputs.outputs, error });
    };
    const id = client.request("shell", "execute_request", { code, silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: true }, (m) => {
      if (m.header.msg_type === "execute_reply") reply = m.content;
      else if (m.header.msg_type === "status" && m.content.execution_state === "idle") idle = true;
      else outputs.add(m);
      if (reply && idle) finish();
    });
    if (timeoutS > 0) {
      timer = setTimeout(() => {
        client.request("control", "interrupt_request", {}, () => undefined);
        outputs.add({ header: { msg_type: "error" }, content: { ename: "TimeoutError", evalue: `the cell ran longer than --timeout ${timeoutS} s and was interrupted`, traceback: [] } } as never);
        setTimeout(finish, 2000);
      }, timeoutS * 1000);
    }
  });
}

export const runNotebookCommand: Subcommand = {
  usage: "run NOTEBOOK.ipynb [--out FILE] [--timeout S]",
  summary: "Execute a notebook headlessly through the kernel; write it with outputs.",
  async run(args) {
    const { flags, positionals } = parseCommandLine("run", args, { out: "string", timeout: "string", help: "boolean" });
    if (flags.help || positionals.length !== 1) {
      console.log(`Usage: tsloth ${this.usage}\n\n  --out FILE    where to write the executed notebook (default NAME.executed.ipynb beside it)\n  --timeout S   seconds one cell may run before it is interrupted (default 0: no limit)`);
      return flags.help ? 0 : 2;
    }
    const input = resolve(positionals[0]);
    const timeout = flags.timeout === undefined ? 0 : Number(flags.timeout);
    if (!Number.isFinite(timeout) || timeout < 0) throw new Error(`--timeout expects seconds >= 0, found "${String(flags.timeout)}"`);
    const out = typeof flags.out === "string" ? resolve(flags.out) : resolve(dirname(input), basename(input, ".ipynb") + ".executed.ipynb");
    const nb = readNotebook(input);
    withKernelMetadata(nb);

    const kernel = await launchKernel(dirname(input));
    const client = new KernelClient(kernel.connection);
    let failed: { index: number; cell: NotebookCell; error?: Output } | undefined;
    try {
      client.connect();
      await Promise.race([client.waitForReady(30000), kernel.exited]).catch((e: Error) => {
        throw new Error(`${e.message}${kernel.process.exitCode === null && kernel.stderr().trim() ? `\nThe kernel's output:\n${kernel.stderr().trim()}` : ""}`);
      });
      const displays = new Map<string, Output[]>();
      for (const [index, cell] of nb.cells.entries()) {
        if (cell.cell_type !== "code") continue;
        const code = Array.isArray(cell.source) ? cell.source.join("") : cell.source;
        const result = await Promise.race([runCell(client, code, displays, timeout), kernel.exited]);
        cell.outputs = result.outputs;
        cell.execution_count = result.executionCount;
        if (result.status !== "ok") {
          failed = { index, cell, error: result.error };
          break;
        }
      }
      client.request("shell", "shutdown_request", { restart: false }, () => undefined);
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      client.close();
      kernel.dispose();
    }
    const tmp = `${out}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(nb, null, 1) + "\n");
    renameSync(tmp, out);
    if (failed) {
      const source = Array.isArray(failed.cell.source) ? failed.cell.source.join("") : failed.cell.source;
      const trace = ((failed.error?.traceback as string[] | undefined) ?? []).map(stripAnsi).join("\n");
      console.error(`tsloth run: cell ${failed.index + 1} of ${input} failed:\n${source}\n${"-".repeat(40)}\n${trace || `${String(failed.error?.ename)}: ${String(failed.error?.evalue)}`}`);
      console.error(`The notebook with outputs up to the failing cell is in ${out}`);
      return 1;
    }
    console.log(`Executed ${input} -> ${out}`);
    return 0;
  },
};
