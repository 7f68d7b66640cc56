import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { backends, checkGradient, project, randn } from "./backends.js";

for (const { name, make } of backends()) {
  describe(`embedding on ${name}`, () => {
    const V = 7, H = 6;
    const ids = Int32Array.from([3, 0, 3, 6, 1]);
    it("gathers rows of the table", () => {
      const be = make();
      const table = randn(1, V * H);
      const y = be.download(be.embedding(be.upload(table, [V, H], "f32", "base_weights"), be.upload(ids, [ids.length], "i32", "activations")));
      for (let t = 0; t < ids.length; t++) for (let j = 0; j < H; j++) assert.equal(y[t * H + j], table[ids[t] * H + j]);
    });
    it("backward scatter-adds into the table gradient (repeated ids sum)", () => {
      const be = make();
      const table = randn(2, V * H), r = randn(3, ids.length * H);
      const idt = be.upload(ids, [ids.length], "i32", "activations");
      const loss = () => project(be.download(be.embedding(be.upload(table, [V, H], "f32", "base_weights"), idt)), r);
      const dTable = be.zeros([V, H], "f32", "adapters");
      be.embeddingBackward(be.upload(r, [ids.length, H], "f32", "activations"), idt, dTable);
      checkGradient("embedding dTable", table, be.download(dTable), loss, { samples: V * H });
    });
    it("refuses a token id outside the vocabulary", () => {
      const be = make();
      const t = be.upload(randn(4, V * H), [V, H], "f32", "base_weights");
      assert.throws(() => be.embedding(t, be.upload(Int32Array.from([V]), [1], "i32", "activations")), /outside the vocabulary/);
    });
  });
}
