// kernels-cuda builds with nothing but nvcc for every target (sm_80, sm_86, sm_89, sm_90 + PTX),
// and the library exports every function of the C header. Skips where nvcc is absent (the CPU-only
// install); the build goes to a temporary directory so a developer's build is left alone.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import koffi from "koffi";
import { projectRoot } from "../../lib/paths.js";

function findNvcc(): string | null {
  for (const c of [process.env.NVCC, "/usr/local/cuda/bin/nvcc"]) if (c && existsSync(c)) return c;
  try {
    return execFileSync("sh", ["-c", "command -v nvcc"], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}

const nvcc = findNvcc();
const root = projectRoot();

describe("kernels-cuda build", { skip: nvcc ? false : "nvcc not found (CPU-only machine)" }, () => {
  it("compiles every .cu for sm_80, sm_86, sm_89, sm_90 and links a library exporting the whole C ABI", { timeout: 900_000 }, () => {
    const out = mkdtempSync(join(tmpdir(), "tsloth-cuda-build-"));
    try {
      const log = execFileSync("bash", [join(root, "kernels-cuda", "build.sh"), out], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"], // compiler remarks stay out of the test report
        env: { ...process.env, NVCC: nvcc!, TSLOTH_CUDA_ARCHS: "80 86 89 90" },
      });
      assert.match(log, /for sm_80, sm_86, sm_89, sm_90 \+ compute_90 PTX/);
      const so = join(out, "libtsloth_cuda.so");
      assert.ok(existsSync(so));
      const header = readFileSync(join(root, "kernels-cuda", "include", "tsloth_cuda.h"), "utf8");
      const names = [...header.matchAll(/^(?:tsl_status|int32_t|const char\*|void)\s+(tsl_\w+)\(/gm)].map((m) => m[1]);
      assert.ok(names.length >= 40, `expected the header's functions, found ${names.length}`);
      const lib = koffi.load(so);
      for (const name of names) assert.doesNotThrow(() => lib.func(`void ${name}(void)`), `${name} is not exported`);
      // The library loads and answers without a GPU: no device is an answer, not a crash.
      const count = lib.func("int32_t tsl_device_count(void)")();
      assert.ok(Number.isInteger(count) && count >= 0);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
