#!/usr/bin/env node
// Entry point of the `tsloth` command: the compiled CLI lives in dist/ (built by `npm run build`).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const cli = new URL("../dist/kernel/cli.js", import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  console.error("tsloth: dist/ is missing; run `npm run build` in " + fileURLToPath(new URL("..", import.meta.url)));
  process.exit(1);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2));
