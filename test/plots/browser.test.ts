// Plot outputs in a real browser (Debian's chromium driven by playwright-core), inserted the way
// notebook frontends insert them: scripts run while the output is still detached (Notebook 6),
// a require.js-style AMD `define` on the page, and outputs arriving in any order.
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Browser, chromium } from "playwright-core";
import { projectRoot } from "../../lib/paths.js";
import { lossPlotBundle } from "../../lib/plots/loss-plot.js";
import { resetPlotlyLibrary } from "../../lib/plots/plotly-library.js";
import { vramPlotBundle } from "../../lib/plots/vram-plot.js";
import { TrainingView } from "../../lib/plots/training-view.js";
import { takePlotlyLibraryBundle } from "../../lib/plots/plotly-library.js";
import { vramBundle } from "../../lib/memory/vram-view.js";
import { vramSnapshot } from "../../lib/memory/vram-snapshot.js";
import { estimateBundle } from "../../lib/memory/estimate-view.js";
import { estimatePeakMemory } from "../../lib/memory/estimator.js";

const CHROMIUM = process.env.TSLOTH_CHROMIUM ?? "/usr/bin/chromium";
const skip = existsSync(CHROMIUM) ? false : `chromium not found at ${CHROMIUM} (test/setup/system.sh installs it)`;

// A frontend's output insertion: parse into a detached node, run its scripts, attach later.
const INSERT_OUTPUT = `(html) => new Promise((resolve) => {
  const area = document.createElement("div");
  area.className = "output";
  area.innerHTML = html;
  for (const old of area.querySelectorAll("script")) {
    const s = document.createElement("script");
    s.textContent = old.textContent;
    document.head.appendChild(s);
    s.remove();
  }
  setTimeout(() => { document.getElementById("cells").appendChild(area); resolve(); }, 120);
})`;

function lossPoints() {
  let loss = 2.4;
  return Array.from({ length: 80 }, (_, i) => ({ step: i + 1, loss: (loss *= 0.975 + Math.random() * 0.03), lr: 2e-4 * Math.min(1, (i + 1) / 10) }));
}

function memorySamples() {
  const M = 1024 ** 2;
  return Array.from({ length: 40 }, (_, i) => ({
    t: i * 0.5,
    bytes: { base_weights: 600 * M, adapters: 40 * M, optimizer: i > 3 ? 80 * M : 0, activations: i > 3 ? (300 + 200 * Math.random()) * M : 0, workspace: 60 * M, offload_host: i > 3 ? 120 * M : 0 },
  }));
}

describe("plots in chromium", { skip }, () => {
  let browser: Browser;
  before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
  });
  after(async () => browser?.close());

  it("draws every plot interactively from one library output, with no network and under require.js", async () => {
    resetPlotlyLibrary();
    const withLibrary = lossPlotBundle(lossPoints())["text/html"]!;
    const without = vramPlotBundle(memorySamples())["text/html"]!;
    const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
    const requests: string[] = [];
    await page.route("**/*", (route) => {
      requests.push(route.request().url());
      return route.abort();
    });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.setContent(
      `<html><body style="margin:8px"><script>window.defineCalls=0;window.define=function(){window.defineCalls++};window.define.amd={};</script><div id="cells"></div></body></html>`,
    );
    // The plot without the library arrives first (a reopened notebook renders in any order).
    await page.evaluate(`(${INSERT_OUTPUT})(${JSON.stringify(without)})`);
    assert.equal(await page.locator(".tsloth-plotly .main-svg").count(), 0, "waits for the library");
    assert.equal(await page.locator(".tsloth-static img").first().isVisible(), true, "static SVG shows meanwhile");
    await page.evaluate(`(${INSERT_OUTPUT})(${JSON.stringify(withLibrary)})`);
    // Each plot hides its static SVG once Plotly.newPlot has resolved.
    await page.waitForFunction(`[...document.querySelectorAll(".tsloth-static")].filter((s) => s.style.display === "none").length === 2`, null, { timeout: 20000 });
    assert.equal(await page.locator(".tsloth-plotly .main-svg").count() >= 2, true);

    assert.deepEqual(errors, []);
    assert.equal(await page.evaluate("window.defineCalls"), 0, "the library did not register itself with AMD define");
    assert.equal(await page.evaluate("typeof window.Plotly.newPlot"), "function");
    assert.deepEqual(requests, [], "no network request");
    const legend = await page.locator(".tsloth-plotly .legendtext").allTextContents();
    for (const name of ["loss", "learning rate", "base weights (NF4)", "activations"]) assert.ok(legend.includes(name), `legend has ${name}`);
    for (const s of await page.locator(".tsloth-static").all()) assert.equal(await s.isVisible(), false, "static SVG hidden once interactive");

    const dir = join(projectRoot(), "test-artifacts");
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: join(dir, "plots-interactive.png"), fullPage: true });
    await page.close();
  });

  it("keeps the static SVG when no library output is on the page", async () => {
    resetPlotlyLibrary();
    lossPlotBundle(lossPoints()); // this process already sent the library, in an output not on this page
    const html = vramPlotBundle(memorySamples())["text/html"]!;
    const page = await browser.newPage({ viewport: { width: 760, height: 420 } });
    await page.route("**/*", (route) => route.abort());
    await page.setContent(`<html><body><div id="cells"></div></body></html>`);
    await page.evaluate(`(${INSERT_OUTPUT})(${JSON.stringify(html)})`);
    await page.waitForTimeout(300);
    const img = page.locator(".tsloth-static img");
    assert.equal(await img.isVisible(), true);
    assert.ok((await img.evaluate((e) => (e as unknown as { naturalWidth: number }).naturalWidth)) >= 700, "the SVG image decoded");
    await page.screenshot({ path: join(projectRoot(), "test-artifacts", "plots-static.png") });
    await page.close();
  });

  it("renders %vram, a live training frame and %estimate together after a loader output", async () => {
    resetPlotlyLibrary();
    const loader = takePlotlyLibraryBundle()!["text/html"] as string;
    const samples = memorySamples();
    const host = { totalBytes: 32 * 1024 ** 3, availableBytes: 20 * 1024 ** 3, processRssBytes: 2 * 1024 ** 3 };
    const last = samples[samples.length - 1].bytes;
    const snapshot = vramSnapshot({ engine: last, backend: "cpu", gpu: { available: false, reason: "no NVML" }, host });
    const view = new TrainingView();
    const points = lossPoints();
    points.forEach((p, i) => view.update({ step: p.step, totalSteps: 120, loss: p.loss, lr: p.lr, tokensPerSec: 4000 + 100 * Math.random(), elapsed: i * 0.4 }, samples));
    const frame = view.finish(undefined, samples)["text/html"] as string;
    const estimate = estimateBundle(estimatePeakMemory({ hiddenSize: 4096, intermediateSize: 14336, numLayers: 32, numHeads: 32, numKvHeads: 8, headDim: 128, vocabSize: 128256, tieWordEmbeddings: false }, { batch: 4, seq: 2048, r: 16, checkpoint: "off", gpuBytes: 16 * 1024 ** 3 }))["text/html"]!;
    const page = await browser.newPage({ viewport: { width: 1150, height: 900 } });
    await page.route("**/*", (route) => route.abort());
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.setContent(`<html><body style="margin:8px;font-family:sans-serif"><div id="cells"></div></body></html>`);
    for (const html of [loader, vramBundle(snapshot, samples)["text/html"]!, frame, estimate]) await page.evaluate(`(${INSERT_OUTPUT})(${JSON.stringify(html)})`);
    await page.waitForFunction(`[...document.querySelectorAll(".tsloth-static")].filter((s) => s.style.display === "none").length === 2`, null, { timeout: 20000 });
    assert.deepEqual(errors, []);
    assert.equal(await page.locator("table.tsloth-vram tbody tr").count(), 7, "six categories and the device total");
    assert.match((await page.locator(".tsloth-progress").textContent())!, /step 80\/120/);
    assert.match((await page.locator(".tsloth-estimate").textContent())!, /does not fit/);
    await page.screenshot({ path: join(projectRoot(), "test-artifacts", "memory-views.png"), fullPage: true });
    await page.close();
  });
});