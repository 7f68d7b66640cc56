// Plot outputs in Debian's classic Notebook 6 (which loads require.js), opened from a saved,
// trusted .ipynb the way a user reopens a notebook: the plots must become interactive from the
// one output that carries plotly.js, whatever the order, without any request leaving the machine.
import assert from "node:assert/strict";
import { type ChildProcess, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium } from "playwright-core";
import { projectRoot } from "../../lib/paths.js";
import { lossPlotBundle } from "../../lib/plots/loss-plot.js";
import { resetPlotlyLibrary } from "../../lib/plots/plotly-library.js";
import { vramPlotBundle } from "../../lib/plots/vram-plot.js";
import { jupyterPython } from "../helpers/python.js";
import { browserTestsUnavailable, CHROMIUM, notebookEnv, startNotebookServer } from "../helpers/notebook-server.js";

const skip = browserTestsUnavailable();

function output(bundle: Record<string, unknown>) {
  return { output_type: "display_data", data: bundle, metadata: {} };
}

function codeCell(source: string, outputs: unknown[]) {
  return { cell_type: "code", execution_count: 1, metadata: {}, source, outputs };
}

describe("plots in a reopened Notebook 6 notebook", { skip }, () => {
  let dir: string;
  let server: ChildProcess | undefined;
  let url: string;
  const env = () => notebookEnv(dir);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "tsloth-nb6-"));
    resetPlotlyLibrary();
    let loss = 2.2;
    const points = Array.from({ length: 60 }, (_, i) => ({ step: i + 1, loss: (loss *= 0.97 + 0.03 * Math.random()), lr: 1e-4 }));
    const withLibrary = lossPlotBundle(points);
    const samples = Array.from({ length: 30 }, (_, i) => ({ t: i, bytes: { base_weights: 5e8, adapters: 2e7, activations: 3e8 * Math.random() } }));
    const without = vramPlotBundle(samples);
    // The small output comes first: a reopened notebook may render it before the library output.
    const nb = {
      nbformat: 4, nbformat_minor: 4,
      metadata: { kernelspec: { name: "python3", display_name: "Python 3", language: "python" } },
      cells: [codeCell("%vram", [output(without)]), codeCell("%train", [output(withLibrary)])],
    };
    const path = join(dir, "plots.ipynb");
    writeFileSync(path, JSON.stringify(nb));
    // Trust is per content (the notary stores signatures of hashes), so the untrusted copy differs.
    writeFileSync(join(dir, "untrusted.ipynb"), JSON.stringify({ ...nb, cells: [...nb.cells, { cell_type: "markdown", metadata: {}, source: "unsigned copy" }] }));
    const sign = spawnSync(jupyterPython(), ["-c", "import sys, nbformat; from nbformat.sign import NotebookNotary as N; nb = nbformat.read(sys.argv[1], 4); N().sign(nb); nbformat.write(nb, sys.argv[1])", path], { env: env(), encoding: "utf8" });
    assert.equal(sign.status, 0, `signing the notebook failed: ${sign.stderr}`);

    const started = await startNotebookServer(dir, env());
    server = started.process;
    url = started.url;
  });

  after(() => {
    if (server?.pid) server.kill("SIGTERM");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("draws both plots interactively under require.js with no outside request", async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 1100 } });
      const outside: string[] = [];
      await page.route("**/*", (route) => {
        const u = route.request().url();
        if (u.startsWith(url) || u.startsWith("data:")) return route.continue();
        outside.push(u);
        return route.abort();
      });
      await page.goto(url + "notebooks/plots.ipynb");
      await page.waitForFunction(`[...document.querySelectorAll(".tsloth-static")].filter((s) => s.style.display === "none").length === 2`, null, { timeout: 60000 });
      assert.equal(await page.evaluate("typeof window.define === 'function' && !!window.define.amd"), true, "Notebook 6 has require.js loaded");
      assert.equal(await page.locator(".output_area .tsloth-plotly .main-svg").count() >= 2, true);
      assert.deepEqual(outside, []);
      mkdirSync(join(projectRoot(), "test-artifacts"), { recursive: true });
      await page.screenshot({ path: join(projectRoot(), "test-artifacts", "notebook6-plots.png"), fullPage: true });
    } finally {
      await browser.close();
    }
  });

  it("shows the static plots in an untrusted notebook, where no script runs", async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
      await page.goto(url + "notebooks/untrusted.ipynb");
      await page.waitForSelector(".output_area img", { timeout: 60000, state: "attached" });
      await page.waitForTimeout(500);
      const widths = await page.locator(".output_area img").evaluateAll((els) => els.map((e) => (e as unknown as { naturalWidth: number }).naturalWidth));
      assert.equal(widths.length, 2);
      for (const w of widths) assert.ok(w >= 700, `static plot decoded (${w}px)`);
      assert.equal(await page.locator(".output_area .main-svg").count(), 0, "no script ran");
      await page.screenshot({ path: join(projectRoot(), "test-artifacts", "notebook6-untrusted.png"), fullPage: true });
    } finally {
      await browser.close();
    }
  });
});