// What kernel_info_reply says about tsloth; shared by the shell handler and the socket thread
// (which answers kernel_info on control even while user code blocks the main thread).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { projectRoot } from "../lib/paths.js";
import { PROTOCOL_VERSION } from "./wire/message.js";

let cachedVersion: string | undefined;

export function tslothVersion(): string {
  if (!cachedVersion) {
    const pkg = JSON.parse(readFileSync(join(projectRoot(), "package.json"), "utf8")) as { version: string };
    cachedVersion = pkg.version;
  }
  return cachedVersion;
}

export function kernelInfoContent(): Record<string, unknown> {
  const version = tslothVersion();
  return {
    status: "ok",
    protocol_version: PROTOCOL_VERSION,
    implementation: "tsloth",
    implementation_version: version,
    language_info: {
      name: "typescript",
      version: "5.9",
      mimetype: "text/typescript",
      file_extension: ".ts",
      codemirror_mode: { name: "javascript", typescript: true },
      pygments_lexer: "typescript",
      nbconvert_exporter: "script",
    },
    banner:
      `tsloth ${version}: TypeScript on Node ${process.version}, with QLoRA fine-tuning magics.\n` +
      "Type %lsmagic for magics, %help NAME for one magic's options.",
    help_links: [
      { text: "TypeScript handbook", url: "https://www.typescriptlang.org/docs/handbook/" },
      { text: "Node.js API", url: "https://nodejs.org/docs/latest-v20.x/api/" },
    ],
    debugger: false,
  };
}
