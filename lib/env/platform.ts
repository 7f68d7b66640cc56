// Which hosted notebook platform tsloth runs on (DESIGN.md, "Environment detection"): Colab when
// any environment variable starts with COLAB_; Kaggle when KAGGLE_KERNEL_RUN_TYPE is set and
// /kaggle/working exists. Saving reads it to free the cached download before a merged save and
// to put temporary files under /tmp on Kaggle (its /kaggle/working is the persisted output).
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";

export type PlatformName = "colab" | "kaggle" | "local";

export interface Platform {
  name: PlatformName;
  /** Where large temporary files go. */
  tempDir: string;
  /** Why this platform was chosen, for %env. */
  reason: string;
  /** True when the user forced it (option or TSLOTH_PLATFORM) rather than detection. */
  forced: boolean;
}

export interface DetectPlatformOptions {
  /** Force a platform, or false/"local" to force both hosted platforms off. */
  force?: PlatformName | false;
  /** Environment to read (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** File existence check (default fs.existsSync), so tests can fake /kaggle/working. */
  exists?: (path: string) => boolean;
}

export const KAGGLE_WORKING_DIR = "/kaggle/working";
const PLATFORM_NAMES: readonly PlatformName[] = ["colab", "kaggle", "local"];

function tempDirFor(name: PlatformName, env: Readonly<Record<string, string | undefined>>): string {
  // Kaggle persists /kaggle/working as the notebook's output; scratch files must not land there.
  if (name === "kaggle") return "/tmp";
  return env.TMPDIR || tmpdir();
}

function made(name: PlatformName, reason: string, forced: boolean, env: Readonly<Record<string, string | undefined>>): Platform {
  return { name, tempDir: tempDirFor(name, env), reason, forced };
}

/** Detects Colab / Kaggle / local. The option wins over TSLOTH_PLATFORM, which wins over detection. */
export function detectPlatform(opts: DetectPlatformOptions = {}): Platform {
  const env = opts.env ?? process.env;
  const exists = opts.exists ?? existsSync;

  if (opts.force !== undefined) {
    const name = opts.force === false ? "local" : opts.force;
    if (!PLATFORM_NAMES.includes(name)) {
      throw new Error(`tsloth: unknown platform "${String(opts.force)}"; expected one of ${PLATFORM_NAMES.join(", ")} (or false).`);
    }
    return made(name, `forced by option (${name})`, true, env);
  }

  const fromEnv = env.TSLOTH_PLATFORM?.trim().toLowerCase();
  if (fromEnv) {
    if (!PLATFORM_NAMES.includes(fromEnv as PlatformName)) {
      throw new Error(`tsloth: TSLOTH_PLATFORM="${env.TSLOTH_PLATFORM}" is not a platform; expected colab, kaggle or local. Unset it to detect automatically.`);
    }
    return made(fromEnv as PlatformName, `forced by TSLOTH_PLATFORM=${fromEnv}`, true, env);
  }

  const colabVar = Object.keys(env).find((k) => k.startsWith("COLAB_") && env[k] !== undefined);
  if (colabVar) return made("colab", `environment variable ${colabVar} is set`, false, env);

  if (env.KAGGLE_KERNEL_RUN_TYPE !== undefined && exists(KAGGLE_WORKING_DIR)) {
    return made("kaggle", `KAGGLE_KERNEL_RUN_TYPE is set and ${KAGGLE_WORKING_DIR} exists`, false, env);
  }
  return made("local", "no Colab or Kaggle markers found", false, env);
}
