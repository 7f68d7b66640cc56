import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { f32ToBf16 } from "../../lib/formats/dtype.js";
import { backends, randn } from "./backends.js";

for (const { name, make } of backends()) {
  describe(`buffers and accounting on ${name}`, () => {
    it("round-trips f32, bf16 (as f32 values), u8 and i32", () => {
      const be = make();
      const x = randn(1, 10);
      assert.deepEqual(be.download(be.upload(x, [2, 5], "f32", "activations")), x);
      const bits = f32ToBf16(x);
      const back = be.download(be.upload(bits, [10], "bf16", "base_weights"));
      for (let i = 0; i < 10; i++) assert.ok(Math.abs(back[i] - x[i]) <= Math.abs(x[i]) / 128);
      assert.deepEqual(be.downloadRaw(be.upload(Uint8Array.from([1, 255]), [2], "u8", "base_weights")), Uint8Array.from([1, 255]));
      assert.deepEqual(be.downloadRaw(be.upload(Int32Array.from([-7, 9]), [2], "i32", "activations")), Int32Array.from([-7, 9]));
    });
    it("refuses data of the wrong array type for the dtype", () => {
      const be = make();
      assert.throws(() => be.upload(new Float32Array(2), [2], "bf16", "activations"), /upload of bf16 expects a Uint16Array, found Float32Array/);
      assert.equal(be.memory().current.activations, 0);
    });
    it("counts current and peak bytes per category, and frees a reshaped view's storage once", () => {
      const be = make();
      const a = be.zeros([4, 8], "f32", "activations");
      const b = be.zeros([16], "bf16", "adapters");
      assert.equal(be.memory().current.activations, 128);
      assert.equal(be.memory().current.adapters, 32);
      const view = be.reshape(a, [32]);
      be.free(view);
      assert.equal(a.freed, true);
      assert.equal(be.memory().current.activations, 0);
      assert.equal(be.memory().peak.activations, 128);
      assert.throws(() => be.free(a), /freed/);
      be.resetPeak();
      assert.equal(be.memory().peak.activations, 0);
      be.free(b);
    });
    it("offloads to host memory and back, accounted as offload_host", async () => {
      const be = make();
      const x = randn(2, 6);
      const dev = be.upload(x, [6], "f32", "activations");
      const toHost = be.copyToHostAsync(dev);
      await toHost.done;
      assert.equal(toHost.tensor.category, "offload_host");
      assert.equal(be.memory().current.offload_host, 24);
      be.free(dev);
      const back = be.copyToDeviceAsync(toHost.tensor, "activations");
      await back.done;
      assert.deepEqual(be.download(back.tensor), x);
      assert.equal(be.memory().peakDeviceTotal, 24, "the device copy was freed before the copy back");
    });
  });
}
