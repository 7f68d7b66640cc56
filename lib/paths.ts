// Where the project's shipped files live, whether running from dist/ or from an installed package.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let cachedRoot: string | undefined;

/** The directory that holds tsloth's package.json (the project or package root). */
export function projectRoot(): string {
  if (cachedRoot) return cachedRoot;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return (cachedRoot = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error("tsloth: cannot find the package root above " + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** Files that ship with the project: the embedded tiny model, its dataset, logos. */
export function assetPath(...parts: string[]): string {
  return join(projectRoot(), "assets", ...parts);
}
