import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { lossPlotBundle } from "../../lib/plots/loss-plot.js";
import { niceScale } from "../../lib/plots/svg-axes.js";
import { renderChart, svgDocument } from "../../lib/plots/svg-chart.js";
import { vramPlotBundle } from "../../lib/plots/vram-plot.js";
import { parseXml } from "./helpers/xml.js";

function randomLoss(n: number) {
  let loss = 2 + Math.random();
  return Array.from({ length: n }, (_, i) => ({ step: i + 1, loss: (loss *= 0.97 + Math.random() * 0.02), lr: 1e-4 * (1 + Math.random()) }));
}

describe("SVG charts", () => {
  it("picks nice ticks that cover the data", () => {
    const lo = Math.random() * 3;
    const hi = lo + 0.5 + Math.random() * 10;
    const s = niceScale(lo, hi, 5);
    assert.ok(s.min <= lo && s.max >= hi, `${s.min}..${s.max} covers ${lo}..${hi}`);
    const step = s.ticks[1] - s.ticks[0];
    const mantissa = step / 10 ** Math.floor(Math.log10(step));
    assert.ok([1, 2, 2.5, 5].some((m) => Math.abs(m - mantissa) < 1e-9), `step ${step} is 1, 2, 2.5 or 5 x 10^k`);
    assert.ok(s.ticks.length >= 3 && s.ticks.length <= 12);
  });

  it("writes a loss plot that parses as XML and holds the loss and learning-rate series", () => {
    const svg = lossPlotBundle(randomLoss(50), { embedLibrary: "never" })["image/svg+xml"]!;
    const els = parseXml(svg);
    assert.equal(els[0].tag, "svg");
    const series = els.filter((e) => e.attrib["data-series"]).map((e) => e.attrib["data-series"]);
    assert.deepEqual(series, ["loss", "learning rate"]);
    const texts = els.filter((e) => e.tag === "text").map((e) => e.text);
    for (const label of ["Training loss", "step", "loss", "learning rate"]) assert.ok(texts.includes(label), `has text "${label}"`);
    const path = els.find((e) => e.attrib["data-series"] === "loss")!.attrib.d;
    assert.equal(path.split(/[ML]/).filter(Boolean).length, 50, "one vertex per step");
  });

  it("stacks one area per non-empty category, with a legend entry each", () => {
    const G = 1024 ** 3;
    const samples = Array.from({ length: 20 }, (_, i) => ({
      t: i,
      bytes: { base_weights: G * (1 + Math.random()), adapters: G * Math.random(), activations: G * Math.random() * i, kv_cache: 0 },
      deviceUsedBytes: 5 * G * Math.random(),
    }));
    const els = parseXml(vramPlotBundle(samples, { embedLibrary: "never" })["image/svg+xml"]!);
    const areas = els.filter((e) => e.attrib.class === "area").map((e) => e.attrib["data-series"]);
    assert.deepEqual(areas, ["base weights (NF4)", "LoRA adapters", "activations"], "kv_cache is all zero and left out");
    const legend = els.filter((e) => e.attrib.class === "legend").map((e) => e.text);
    assert.deepEqual(legend.sort(), ["LoRA adapters", "activations", "base weights (NF4)", "device in use"].sort());
    assert.ok(els.some((e) => e.tag === "text" && e.text === "GiB"), "axis unit follows the data's size");
  });

  it("escapes titles so any text stays valid XML", () => {
    const title = `loss <run "a" & 'b'>`;
    const svg = svgDocument(400, 300, renderChart({ title, xLabel: "x", yLabel: "y", lines: [{ name: "a<b", color: "#000", x: [1, 2], y: [Math.random(), Math.random()] }] }, { x: 0, y: 0, width: 400, height: 300 }), title);
    const els = parseXml(svg);
    assert.ok(els.some((e) => e.tag === "text" && e.text === title));
    assert.ok(els.some((e) => e.attrib["data-series"] === "a<b"));
  });

  it("draws an empty chart with a 'no data yet' note instead of failing", () => {
    const els = parseXml(lossPlotBundle([], { embedLibrary: "never" })["image/svg+xml"]!);
    assert.ok(els.some((e) => e.text === "no data yet"));
  });
});
