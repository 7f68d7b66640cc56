import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PLOTLY_MIME } from "../../lib/plots/mime-bundle.js";
import { TrainingView } from "../../lib/plots/training-view.js";
import { parseXml } from "./helpers/xml.js";

function fakeClock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const memory = () => [
  { t: 0, bytes: { base_weights: 1e8 * (1 + Math.random()), activations: 1e7 * Math.random() } },
  { t: 1, bytes: { base_weights: 1e8 * (1 + Math.random()), activations: 1e7 * Math.random() } },
];

describe("TrainingView", () => {
  it("emits at most one update per interval but keeps every step's loss", () => {
    const clock = fakeClock();
    const view = new TrainingView({ minIntervalMs: 500, now: clock.now });
    let emitted = 0;
    for (let step = 1; step <= 40; step++) {
      clock.advance(100); // ten steps a second
      if (view.update({ step, totalSteps: 40, loss: 3 - step * 0.05 + Math.random() * 0.01, lr: 1e-4 }, memory())) emitted++;
    }
    assert.equal(emitted, 8, "4 seconds at 2 updates a second");
    assert.equal(view.lossPoints().length, 40);
  });

  it("always gives the final state, with the whole loss curve", () => {
    const clock = fakeClock();
    const view = new TrainingView({ now: clock.now });
    const losses = Array.from({ length: 12 }, () => 1 + Math.random());
    losses.forEach((loss, i) => view.update({ step: i + 1, totalSteps: 12, loss, lr: 1e-4, elapsed: i }));
    const final = view.finish(undefined, memory());
    const fig = final[PLOTLY_MIME]!;
    const lossTrace = fig.data.find((t) => t.name === "loss")!;
    assert.deepEqual(lossTrace.y, losses);
    assert.match(final["text/plain"], /step 12\/12 .*done/);
  });

  it("lays loss and memory out as two subplots with their own axes and legends", () => {
    const view = new TrainingView();
    const b = view.update({ step: 1, totalSteps: 5, loss: 2 + Math.random(), lr: 3e-4 }, memory())!;
    const fig = b[PLOTLY_MIME]!;
    const byName = Object.fromEntries(fig.data.map((t) => [t.name, t]));
    assert.equal(byName["loss"].xaxis, "x");
    assert.equal(byName["learning rate"].yaxis, "y3");
    assert.equal(byName["base weights (NF4)"].xaxis, "x2");
    assert.equal(byName["base weights (NF4)"].legend, "legend2");
    assert.ok((fig.layout.yaxis3 as { overlaying: string }).overlaying === "y");
    assert.match(String((fig.layout.title as { text: string }).text), /step 1\/5/, "progress shows in Plotly-only frontends too");
    const els = parseXml(b["image/svg+xml"]!);
    assert.equal(els.filter((e) => e.attrib.class === "chart").length, 2);
    assert.ok((b["text/html"] as string).includes("tsloth-progress"));
    assert.ok((b["text/html"] as string).length < 200 * 1024, "a live frame never carries the plotly library");
  });

  it("refuses to finish a run that reported nothing", () => {
    assert.throws(() => new TrainingView().finish(), /needs a progress event/);
  });
});
