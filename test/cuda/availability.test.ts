// The CUDA backend reports clearly whether it can run, and backend choice follows the option, then
// TSLOTH_BACKEND, then availability. On a machine without a GPU (CI) these pin the "no GPU" path;
// on a GPU machine with the library built they pin the positive path.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import { chooseBackend, CudaBackend, cudaAvailable } from "../../lib/backend/cuda/index.js";

function gpuVisible(): boolean {
  try {
    execFileSync("nvidia-smi", ["-L"], { stdio: "pipe" });
    return true;
  } catch {
    return false;
  }
}

describe("cudaAvailable", () => {
  it("gives a reason that says what is missing, and agrees with the presence of a GPU", () => {
    const a = cudaAvailable();
    assert.equal(typeof a.reason, "string");
    assert.ok(a.reason.length > 0);
    if (!gpuVisible()) {
      assert.equal(a.ok, false);
      assert.match(a.reason, /no GPU|not built|cannot load/);
    }
    if (a.ok) assert.ok(gpuVisible(), "CUDA reported available without a visible GPU");
  });

  it("answers the same on a second call without probing again", () => {
    assert.deepEqual(cudaAvailable(), cudaAvailable());
  });
});

describe("chooseBackend", () => {
  const saved = process.env.TSLOTH_BACKEND;
  const restore = () => {
    if (saved === undefined) delete process.env.TSLOTH_BACKEND;
    else process.env.TSLOTH_BACKEND = saved;
  };

  it("picks cuda exactly when it is available", () => {
    delete process.env.TSLOTH_BACKEND;
    try {
      assert.equal(chooseBackend(), cudaAvailable().ok ? "cuda" : "cpu");
      assert.equal(chooseBackend("auto"), cudaAvailable().ok ? "cuda" : "cpu");
    } finally {
      restore();
    }
  });

  it("honours TSLOTH_BACKEND=cpu and an explicit option over the environment", () => {
    process.env.TSLOTH_BACKEND = "cpu";
    try {
      assert.equal(chooseBackend(), "cpu");
      if (cudaAvailable().ok) assert.equal(chooseBackend("cuda"), "cuda");
    } finally {
      restore();
    }
  });

  it("refuses an unknown TSLOTH_BACKEND with the accepted values", () => {
    process.env.TSLOTH_BACKEND = "tpu";
    try {
      assert.throws(() => chooseBackend(), /TSLOTH_BACKEND must be cpu, cuda or auto, found "tpu"/);
    } finally {
      restore();
    }
  });

  it("explains why when cuda is asked for and cannot run", { skip: cudaAvailable().ok ? "CUDA is available here" : false }, () => {
    assert.throws(() => chooseBackend("cuda"), /CUDA backend was asked for but cannot run: .+/);
    assert.throws(() => new CudaBackend(), /CUDA backend cannot run here: .+/);
  });
});
