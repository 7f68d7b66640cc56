// import/require in cells: packages resolve from the notebook's directory (the kernel's working
// directory) and then from tsloth's own node_modules; ESM-only packages load through import();
// "tsloth" is this project's public API (dist/lib/index.js).
import { existsSync, readFileSync, statSync } from "node:fs";
import { createRequire, isBuiltin } from "node:module";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { projectRoot } from "../../lib/paths.js";

const CONDITIONS = ["node", "import", "default"];

function tslothEntry(): string {
  const entry = join(projectRoot(), "dist", "lib", "index.js");
  if (!existsSync(entry)) {
    throw new Error(`"tsloth" resolves to ${entry}, which is not built; run \`npm run build\` in ${projectRoot()}`);
  }
  return entry;
}

const isFile = (p: string) => existsSync(p) && statSync(p).isFile();

function withExtensions(p: string): string | undefined {
  for (const candidate of [p, `${p}.js`, `${p}.mjs`, `${p}.cjs`, `${p}.json`, join(p, "index.js"), join(p, "index.mjs")]) {
    if (isFile(candidate)) return candidate;
  }
  return undefined;
}

function pickExport(target: unknown): string | undefined {
  if (typeof target === "string") return target;
  if (Array.isArray(target)) return target.map(pickExport).find((t) => t !== undefined);
  if (target && typeof target === "object") {
    for (const [condition, value] of Object.entries(target)) {
      if (CONDITIONS.includes(condition)) {
        const picked = pickExport(value);
        if (picked) return picked;
      }
    }
  }
  return undefined;
}

function resolveExports(exports: unknown, subpath: string): string | undefined {
  const isSubpathMap = exports && typeof exports === "object" && !Array.isArray(exports) && Object.keys(exports).some((k) => k.startsWith("."));
  if (!isSubpathMap) return subpath === "." ? pickExport(exports) : undefined;
  const map = exports as Record<string, unknown>;
  if (subpath in map) return pickExport(map[subpath]);
  for (const [key, value] of Object.entries(map)) {
    const star = key.indexOf("*");
    if (star < 0) continue;
    const [pre, post] = [key.slice(0, star), key.slice(star + 1)];
    if (subpath.startsWith(pre) && subpath.endsWith(post)) {
      const picked = pickExport(value);
      return picked?.replace("*", subpath.slice(pre.length, subpath.length - post.length));
    }
  }
  return undefined;
}

/** The file a bare specifier names, searching node_modules above `fromDir`. */
export function resolvePackage(specifier: string, fromDir: string): string | undefined {
  const parts = specifier.split("/");
  const nameLength = specifier.startsWith("@") ? 2 : 1;
  const name = parts.slice(0, nameLength).join("/");
  const subpath = parts.length > nameLength ? `./${parts.slice(nameLength).join("/")}` : ".";
  for (let dir = resolve(fromDir); ; dir = dirname(dir)) {
    const pkgDir = join(dir, "node_modules", name);
    const pkgJson = join(pkgDir, "package.json");
    if (existsSync(pkgJson)) {
      const pkg = JSON.parse(readFileSync(pkgJson, "utf8")) as { exports?: unknown; main?: string; module?: string };
      if (pkg.exports !== undefined) {
        const target = resolveExports(pkg.exports, subpath);
        return target ? join(pkgDir, target) : undefined;
      }
      return withExtensions(join(pkgDir, subpath === "." ? (pkg.main ?? "index.js") : subpath));
    }
    if (dirname(dir) === dir) return undefined;
  }
}

function resolveSpecifier(specifier: string, fromDir: string): string {
  if (specifier === "tsloth") return tslothEntry();
  if (specifier.startsWith("tsloth/")) return join(projectRoot(), "dist", specifier.slice("tsloth/".length));
  if (specifier.startsWith(".") || specifier.startsWith("/")) {
    const file = withExtensions(resolve(fromDir, specifier));
    if (!file) throw new Error(`cannot find ${specifier} from ${fromDir}`);
    return file;
  }
  const found = resolvePackage(specifier, fromDir) ?? resolvePackage(specifier, projectRoot());
  if (!found) {
    throw new Error(`cannot find package "${specifier}" from ${fromDir}; install it there with \`npm install ${specifier}\``);
  }
  return found;
}

/** `import(specifier)` as a cell means it: relative to the notebook directory. */
export function importFromNotebook(specifier: string, notebookDir = process.cwd()): Promise<unknown> {
  if (specifier.startsWith("node:") || isBuiltin(specifier)) return import(specifier);
  return import(pathToFileURL(resolveSpecifier(specifier, notebookDir)).href);
}

/** `require` for cells, with the same resolution (ESM packages work through Node's require(esm)). */
export function requireFromNotebook(notebookDir = process.cwd()): NodeRequire {
  const base = createRequire(join(notebookDir, "notebook.js"));
  const fromProject = createRequire(join(projectRoot(), "package.json"));
  const cellRequire = ((specifier: string) => {
    if (isBuiltin(specifier)) return base(specifier);
    if (specifier === "tsloth" || specifier.startsWith("tsloth/")) return base(resolveSpecifier(specifier, notebookDir));
    try {
      return base(specifier);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "MODULE_NOT_FOUND") throw e;
      return fromProject(specifier);
    }
  }) as NodeRequire;
  return Object.assign(cellRequire, { resolve: base.resolve, cache: base.cache, main: base.main, extensions: base.extensions });
}
