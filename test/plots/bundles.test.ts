import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import { lossPlotBundle } from "../../lib/plots/loss-plot.js";
import { PLOTLY_MIME } from "../../lib/plots/mime-bundle.js";
import { plotlyLibraryPending, resetPlotlyLibrary, takePlotlyLibraryBundle } from "../../lib/plots/plotly-library.js";
import { progressBundle } from "../../lib/plots/progress-bar.js";
import { vramPlotBundle } from "../../lib/plots/vram-plot.js";

const MB = 1024 * 1024;

function randomLoss(n: number) {
  return Array.from({ length: n }, (_, i) => ({ step: i + 1, loss: 1 + Math.random(), lr: Math.random() * 1e-3 }));
}

function randomSamples(n: number) {
  return Array.from({ length: n }, (_, i) => ({ t: i * 0.5, bytes: { base_weights: 4e8 * (1 + Math.random()), optimizer: 5e7 * Math.random(), offload_host: 1e8 * Math.random() } }));
}

/** Script sources a browser would fetch, and link/import URLs. */
function networkReferences(html: string): string[] {
  const refs: string[] = [];
  for (const m of html.matchAll(/<(script|img|link|iframe)\b[^>]*\b(src|href)\s*=\s*["']?([^"'\s>]+)/gi)) {
    if (!m[3].startsWith("data:")) refs.push(m[3]);
  }
  for (const m of html.matchAll(/@import|url\(\s*['"]?https?:/gi)) refs.push(m[0]);
  return refs;
}

describe("plot mime bundles", () => {
  beforeEach(() => resetPlotlyLibrary());

  it("carries Plotly JSON, HTML, SVG and a text summary", () => {
    const points = randomLoss(30);
    const b = lossPlotBundle(points);
    for (const mime of ["text/plain", "text/html", "image/svg+xml", PLOTLY_MIME]) assert.ok(b[mime], `has ${mime}`);
    const fig = b[PLOTLY_MIME]!;
    assert.equal(fig.data.length, 2);
    assert.deepEqual(fig.data[0].y, points.map((p) => p.loss));
    assert.deepEqual(fig.data[1].y, points.map((p) => p.lr));
    assert.equal(fig.data[1].yaxis, "y2", "learning rate on the right-hand axis");
    assert.equal((fig.layout.yaxis2 as { overlaying: string }).overlaying, "y");
    const best = Math.min(...points.map((p) => p.loss));
    assert.match(b["text/plain"], new RegExp(`min ${best.toFixed(4)}`));
    assert.doesNotThrow(() => JSON.parse(JSON.stringify(b)), "bundle is plain JSON");
  });

  it("leaves the learning-rate axis out when no step reports one", () => {
    const fig = lossPlotBundle([{ step: 1, loss: 2.5 }, { step: 2, loss: 2.25 }], { embedLibrary: "never" })[PLOTLY_MIME]!;
    assert.equal(fig.data.length, 1);
    assert.equal(fig.layout.yaxis2, undefined);
  });

  it("stacks VRAM categories in one stackgroup with matching x and y lengths", () => {
    const samples = randomSamples(12);
    const fig = vramPlotBundle(samples, { embedLibrary: "never" })[PLOTLY_MIME]!;
    assert.deepEqual(fig.data.map((t) => t.name), ["base weights (NF4)", "optimizer state", "offloaded (host RAM)"]);
    for (const t of fig.data) {
      assert.equal(t.stackgroup, "memory");
      assert.equal((t.x as number[]).length, 12);
      assert.equal((t.y as number[]).length, 12);
    }
    const unitScale = 1024 ** 2; // totals stay under 9.5e8 B < 1 GiB: the axis is in MiB
    const sum = fig.data.reduce((s, t) => s + (t.y as number[])[5], 0);
    const want = Object.values(samples[5].bytes).reduce((a, c) => a + c, 0) / unitScale;
    assert.ok(Math.abs(sum - want) < 1e-9 * want, `stacked values add up (${sum} vs ${want})`);
  });

  it("puts the plotly library in the first plot output only", () => {
    assert.equal(plotlyLibraryPending(), true);
    const first = lossPlotBundle(randomLoss(5))["text/html"]!;
    const second = vramPlotBundle(randomSamples(5))["text/html"]!;
    const third = lossPlotBundle(randomLoss(5))["text/html"]!;
    assert.ok(first.length > 3 * MB, `first output carries plotly.js (${first.length} chars)`);
    assert.ok(second.length < 100 * 1024 && third.length < 100 * 1024, `later outputs are small (${second.length}, ${third.length})`);
    assert.ok(!second.includes("window.Plotly=Plotly") && !third.includes("window.Plotly = Plotly"));
    assert.equal(plotlyLibraryPending(), false);
  });

  it("embeds the library again after a reset, and always when asked", () => {
    lossPlotBundle(randomLoss(3));
    resetPlotlyLibrary();
    assert.ok(lossPlotBundle(randomLoss(3))["text/html"]!.length > 3 * MB);
    assert.ok(lossPlotBundle(randomLoss(3), { embedLibrary: "always" })["text/html"]!.length > 3 * MB);
    assert.ok(lossPlotBundle(randomLoss(3), { embedLibrary: "never" })["text/html"]!.length < 100 * 1024);
  });

  it("hands out a standalone loader bundle once per process", () => {
    const loader = takePlotlyLibraryBundle();
    assert.ok(loader && (loader["text/html"] as string).length > 3 * MB);
    assert.equal(takePlotlyLibraryBundle(), undefined);
    assert.ok(lossPlotBundle(randomLoss(3))["text/html"]!.length < 100 * 1024, "plots after the loader stay small");
  });

  it("references nothing on the network, in the library output or in later ones", () => {
    const first = lossPlotBundle(randomLoss(5))["text/html"]!;
    const later = vramPlotBundle(randomSamples(5))["text/html"]!;
    assert.deepEqual(networkReferences(first), []);
    assert.deepEqual(networkReferences(later), []);
    assert.ok(!/https?:\/\//.test(later), "a plot output holds no URL at all");
    assert.match(later, /<img class="tsloth-static-img" alt="memory at [^"]*" style="max-width:100%" src="data:image\/svg\+xml;base64,/, "static plot as a data: image");
  });

  it("keeps the library from closing its <script> early", () => {
    const html = lossPlotBundle(randomLoss(2))["text/html"]!;
    const scripts = html.match(/<script\b/gi)!.length;
    const closes = html.match(/<\/script>/gi)!.length;
    assert.equal(scripts, closes);
    assert.equal(scripts, 2, "library + draw script");
    assert.ok(!html.includes("<!--"));
  });

  it("escapes data in the draw script so a series name cannot end it", () => {
    const html = lossPlotBundle(randomLoss(2), { title: "</script><b>x", embedLibrary: "never" })["text/html"]!;
    assert.equal(html.match(/<\/script>/gi)!.length, 1);
  });

  it("renders a progress bar as text and HTML", () => {
    const loss = 1 + Math.random();
    const b = progressBundle({ step: 25, totalSteps: 100, loss, lr: 2e-4, tokensPerSec: 5120, elapsed: 50 });
    assert.match(b["text/plain"], /^\[#{8}\.{22}\]  25% \| step 25\/100/);
    assert.match(b["text/plain"], new RegExp(`loss ${loss.toFixed(4)}`));
    assert.match(b["text/plain"], /lr 2\.00e-4/);
    assert.match(b["text/plain"], /tokens\/s 5120/);
    assert.match(b["text/plain"], /ETA 2m 30s/, "ETA from elapsed per step x steps left");
    assert.match(b["text/html"]!, /width:25\.0%/);
  });

  it("shows done or the reason a run stopped instead of an ETA", () => {
    assert.match(progressBundle({ step: 10, totalSteps: 10, loss: 0.5, elapsed: 9 })["text/plain"], /100% .*\| done$/);
    const stopped = progressBundle({ step: 4, totalSteps: 10, loss: 0.5, elapsed: 9, stopped: "interrupted" });
    assert.doesNotMatch(stopped["text/plain"], /ETA/);
    assert.match(stopped["text/plain"], /interrupted$/);
    assert.match(stopped["text/html"]!, /interrupted/);
  });
});
