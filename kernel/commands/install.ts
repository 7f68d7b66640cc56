// `tsloth install` / `tsloth uninstall`: the kernelspec Jupyter finds. argv holds absolute paths
// of the Node binary that ran install and of bin/tsloth.js, so the kernel starts the same way
// whatever Node is first on PATH; after moving the project, installing again rewrites them.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir, platform } from "node:os";
import { join, resolve } from "node:path";
import { projectRoot } from "../../lib/paths.js";
import type { Subcommand } from "../cli.js";
import { parseCommandLine, type ParsedCommandLine } from "./options.js";

const LOCATION_OPTIONS = { user: "boolean", "sys-prefix": "boolean", prefix: "string", name: "string", help: "boolean" } as const;
const LOGOS = ["logo-32x32.png", "logo-64x64.png", "logo-svg.svg"];

function userDataDir(): string {
  if (process.env.JUPYTER_DATA_DIR) return process.env.JUPYTER_DATA_DIR;
  if (platform() === "darwin") return join(homedir(), "Library", "Jupyter");
  if (platform() === "win32") return join(process.env.APPDATA ?? homedir(), "jupyter");
  return join(process.env.XDG_DATA_HOME ?? join(homedir(), ".local", "share"), "jupyter");
}

function sysPrefix(): string {
  const env = process.env.VIRTUAL_ENV ?? process.env.CONDA_PREFIX;
  if (env) return env;
  try {
    return execFileSync("python3", ["-c", "import sys; print(sys.prefix)"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("--sys-prefix needs the Python environment Jupyter runs in: activate it (VIRTUAL_ENV/CONDA_PREFIX) or put its python3 on PATH, or use --prefix DIR");
  }
}

/** The kernelspec directory chosen by --user (default), --sys-prefix or --prefix DIR, and --name. */
export function kernelspecDir(flags: ParsedCommandLine["flags"]): { dir: string; name: string } {
  const name = typeof flags.name === "string" ? flags.name : "tsloth";
  if (!/^[a-z0-9._-]+$/i.test(name)) throw new Error(`--name must be letters, digits, ".", "_" or "-"; found "${name}"`);
  const chosen = [flags.user, flags["sys-prefix"], flags.prefix !== undefined].filter(Boolean).length;
  if (chosen > 1) throw new Error("choose one of --user, --sys-prefix, --prefix DIR");
  const base =
    typeof flags.prefix === "string"
      ? join(resolve(flags.prefix), "share", "jupyter")
      : flags["sys-prefix"]
        ? join(sysPrefix(), "share", "jupyter")
        : userDataDir();
  return { dir: join(base, "kernels", name), name };
}

export const installCommand: Subcommand = {
  usage: "install [--user | --sys-prefix | --prefix DIR] [--name NAME]",
  summary: "Install the kernelspec so Jupyter lists the TypeScript (tsloth) kernel.",
  async run(args) {
    const { flags } = parseCommandLine("install", args, { ...LOCATION_OPTIONS, "display-name": "string", "interrupt-mode": "string" });
    if (flags.help) {
      console.log([
        `Usage: tsloth ${this.usage} [--display-name TEXT] [--interrupt-mode message|signal]`,
        "",
        "  --user           in your Jupyter data directory (the default)",
        "  --sys-prefix     in the active Python environment (VIRTUAL_ENV, CONDA_PREFIX, or python3's sys.prefix)",
        "  --prefix DIR     in DIR/share/jupyter/kernels",
        "  --name NAME      kernelspec name (default tsloth)",
      ].join("\n"));
      return 0;
    }
    const mode = flags["interrupt-mode"] ?? "message";
    if (mode !== "message" && mode !== "signal") throw new Error(`--interrupt-mode must be message or signal; found "${String(mode)}"`);
    const { dir, name } = kernelspecDir(flags);
    const root = projectRoot();
    const entry = join(root, "bin", "tsloth.js");
    const spec = JSON.parse(readFileSync(join(root, "kernelspec", "kernel.json"), "utf8")) as { argv: string[]; [k: string]: unknown };
    spec.argv = spec.argv.map((a) => a.replace("{node}", process.execPath).replace("{tsloth}", entry));
    spec.interrupt_mode = mode;
    if (typeof flags["display-name"] === "string") spec.display_name = flags["display-name"];
    spec.metadata = { ...(spec.metadata as object), tsloth: { project: root, node: process.version } };
    const moved = existsSync(join(dir, "kernel.json")) ? previousProject(join(dir, "kernel.json")) : undefined;
    mkdirSync(dir, { recursive: true });
    const tmp = join(dir, `kernel.json.tmp-${process.pid}`);
    writeFileSync(tmp, JSON.stringify(spec, null, 2) + "\n");
    renameSync(tmp, join(dir, "kernel.json"));
    for (const logo of LOGOS) if (existsSync(join(root, "kernelspec", logo))) copyFileSync(join(root, "kernelspec", logo), join(dir, logo));
    console.log(`Installed kernelspec "${name}" in ${dir}`);
    console.log(`  it runs: ${process.execPath} ${entry} kernel -f {connection_file}`);
    if (moved && moved !== root) console.log(`  (updated: it pointed at ${moved} before)`);
    console.log("If you move this project or want another Node binary, run `tsloth install` again with that Node to update the kernelspec.");
    return 0;
  },
};

function previousProject(file: string): string | undefined {
  try {
    const spec = JSON.parse(readFileSync(file, "utf8")) as { metadata?: { tsloth?: { project?: string } } };
    return spec.metadata?.tsloth?.project;
  } catch {
    return undefined;
  }
}

export const uninstallCommand: Subcommand = {
  usage: "uninstall [--user | --sys-prefix | --prefix DIR] [--name NAME]",
  summary: "Remove the kernelspec that `tsloth install` wrote.",
  async run(args) {
    const { flags } = parseCommandLine("uninstall", args, LOCATION_OPTIONS);
    if (flags.help) {
      console.log(`Usage: tsloth ${this.usage}`);
      return 0;
    }
    const { dir, name } = kernelspecDir(flags);
    if (!existsSync(join(dir, "kernel.json"))) {
      console.error(`tsloth uninstall: no kernelspec "${name}" in ${dir}; pass the --user/--sys-prefix/--prefix and --name used at install`);
      return 1;
    }
    rmSync(dir, { recursive: true, force: true });
    console.log(`Removed kernelspec "${name}" from ${dir}`);
    return 0;
  },
};
