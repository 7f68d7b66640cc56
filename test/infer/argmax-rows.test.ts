// DecodeBackend.argmaxRows, greedy decoding's pick on the device: the first index of each row's
// maximum, NaN never winning, on every backend (the CUDA backend joins when a GPU is present), and
// the same picks as the host's argmax over the downloaded rows.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { asDecodeBackend } from "../../lib/backend/types.js";
import { CudaBackend, cudaAvailable } from "../../lib/backend/cuda/index.js";
import { argmax } from "../../lib/infer/sampling.js";
import { backends, randn, type NamedBackend } from "../ops/backends.js";

const targets: NamedBackend[] = [...backends(), ...(cudaAvailable().ok ? [{ name: "cuda", make: () => new CudaBackend() }] : [])];

for (const { name, make } of targets) {
  describe(`argmaxRows on ${name}`, () => {
    it("picks the first index of each row's maximum, as the host argmax does, over a 128K vocabulary", () => {
      const be = asDecodeBackend(make());
      const rows = 5, cols = 128256;
      const x = randn(41, rows * cols);
      x[0 * cols + 7] = x[0 * cols + 90000] = 9;  // a tie: the lower index wins
      x[1 * cols + 3] = NaN;  // NaN never wins
      x[2 * cols + cols - 1] = 12;  // the last column
      const t = be.upload(x, [rows, cols], "f32", "activations");
      const ids = be.argmaxRows(t);
      const got = Array.from(be.downloadRaw(ids) as Int32Array);
      const want = Array.from({ length: rows }, (_, r) => {
        const row = x.slice(r * cols, (r + 1) * cols).map((v) => (Number.isNaN(v) ? -Infinity : v));
        return argmax(row);
      });
      assert.deepEqual(got, want);
      assert.equal(got[0], 7);
      assert.equal(got[2], cols - 1);
      be.free(t);
      be.free(ids);
    });

    it("gives 0 for a row of NaN", () => {
      const be = asDecodeBackend(make());
      const t = be.upload(new Float32Array(33).fill(NaN), [1, 33], "f32", "activations");
      const ids = be.argmaxRows(t);
      assert.deepEqual(Array.from(be.downloadRaw(ids) as Int32Array), [0]);
      be.free(t);
      be.free(ids);
    });
  });
}
