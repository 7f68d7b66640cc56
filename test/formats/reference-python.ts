// Runs the Python reference checks of test/py/ in the project's virtual environment (torch,
// transformers, safetensors, tokenizers, bitsandbytes). Tests call `referenceSkip()` first and skip
// with its message when the environment is absent.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { projectRoot } from "../../lib/paths.js";
import { referencePython } from "../helpers/python.js";

/**
 * A skip message when the reference Python or one of `modules` is missing, else false.
 * TSLOTH_REF_PYTHON points the checks at another interpreter (e.g. a GPU machine's python3).
 */
export function referenceSkip(modules: string[]): string | false {
  const py = referencePython();
  if (!py) return "skipped: the reference Python (.venv with torch, transformers, safetensors, tokenizers, bitsandbytes) is absent; run `bash test/setup/python.sh`";
  const probe = `import importlib.util as u, sys; m = [x for x in sys.argv[1:] if u.find_spec(x) is None]; print(" ".join(m))`;
  const r = spawnSync(py, ["-c", probe, ...modules], { encoding: "utf8", timeout: 60_000 });
  const missing = r.status === 0 ? r.stdout.trim() : `(${py} does not run)`;
  return missing ? `skipped: ${py} lacks ${missing}; run \`bash test/setup/python.sh\`` : false;
}

/** Runs test/py/<script> with args; throws with its output when it fails. */
export function runReference(script: string, args: string[], timeoutMs = 300_000): string {
  const py = referencePython();
  if (!py) throw new Error("reference Python is absent");
  const r = spawnSync(py, [join(projectRoot(), "test", "py", script), ...args], {
    encoding: "utf8",
    timeout: timeoutMs,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", HF_HUB_OFFLINE: "1", TRANSFORMERS_VERBOSITY: "error", TOKENIZERS_PARALLELISM: "false" },
    maxBuffer: 64 * 2 ** 20,
  });
  if (r.status !== 0) throw new Error(`${script} ${args.join(" ")} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}
