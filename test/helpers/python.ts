// The Python interpreters tests drive: Debian's (with jupyter_client, nbclient) and the project's
// virtual environment (with torch, transformers, peft, bitsandbytes, safetensors, tokenizers).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { projectRoot } from "../../lib/paths.js";

/** Debian's python3, which has the Jupyter client stack installed by test/setup/system.sh. */
export function jupyterPython(): string {
  return process.env.TSLOTH_JUPYTER_PYTHON ?? "/usr/bin/python3";
}

/** The virtual environment's python, or undefined when the references are not installed. */
export function referencePython(): string | undefined {
  const p = process.env.TSLOTH_REF_PYTHON ?? join(projectRoot(), ".venv", "bin", "python");
  return existsSync(p) ? p : undefined;
}
