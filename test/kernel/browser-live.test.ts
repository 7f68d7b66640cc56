// What a user sees: Debian's Notebook 6 server and chromium open a notebook on the tsloth kernel,
// run %vram and a short %train on the embedded model, and the plots render in the page (Plotly's
// SVG inside the outputs, not just output JSON). A screenshot is kept in test-artifacts/.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium } from "playwright-core";
import { projectRoot } from "../../lib/paths.js";
import { installTestKernelspecs, kernelTestsUnavailable } from "../helpers/kernel-env.js";
import { browserTestsUnavailable, CHROMIUM, notebookEnv, startNotebookServer } from "../helpers/notebook-server.js";

const skip = browserTestsUnavailable() || kernelTestsUnavailable() || false;

const CELLS = [
  "%load_4bit tsloth-tiny --max_seq_length 128 --backend cpu",
  "%lora --r 8 --alpha 16",
  "%vram",
  "%train --data tsloth-tiny-data --steps 12 --grad_accum 1 --packing --lr 3e-3",
];

describe("the tsloth kernel in a real browser (Notebook 6 + chromium)", { skip }, () => {
  let dir: string;
  let server: ChildProcess | undefined;
  let url: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "tsloth-live-"));
    const kernels = installTestKernelspecs();
    const nb = {
      nbformat: 4, nbformat_minor: 5,
      metadata: { kernelspec: { name: kernels.messageKernel, display_name: "TypeScript (tsloth)", language: "typescript" } },
      cells: CELLS.map((source, i) => ({ cell_type: "code", id: `cell-${i}`, execution_count: null, metadata: {}, source, outputs: [] })),
    };
    writeFileSync(join(dir, "live.ipynb"), JSON.stringify(nb));
    const started = await startNotebookServer(dir, notebookEnv(dir, { JUPYTER_PATH: kernels.env.JUPYTER_PATH }));
    server = started.process;
    url = started.url;
  });

  after(() => {
    if (server?.pid) server.kill("SIGTERM");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("runs %vram and %train and renders their plots in the page", async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
      const outside: string[] = [];
      await page.route("**/*", (route) => {
        const u = route.request().url();
        if (u.startsWith(url) || u.startsWith(url.replace("http", "ws")) || u.startsWith("data:")) return route.continue();
        outside.push(u);
        return route.abort();
      });
      await page.goto(url + "notebooks/live.ipynb");
      await page.waitForFunction("window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel && Jupyter.notebook.kernel.is_connected()", null, { timeout: 60000 });
      await page.evaluate("Jupyter.notebook.execute_all_cells()");
      // Done when every cell has its execution count and the kernel is idle again.
      await page.waitForFunction(
        `Jupyter.notebook.get_cells().every((c) => c.input_prompt_number !== undefined && c.input_prompt_number !== null && c.input_prompt_number !== "*") && document.querySelector("#kernel_indicator_icon.kernel_idle_icon") !== null`,
        null, { timeout: 180000, polling: 500 },
      );
      const errors = await page.locator(".output_error").allTextContents();
      assert.deepEqual(errors, [], "no cell failed");
      const shown = (await page.locator(".output_area").allInnerTexts()).join("\n");
      assert.match(shown, /Loaded tsloth-tiny/);
      assert.match(shown, /Trained 12 steps: loss/);
      // Plotly drew real SVG in the %vram output and in the live training display.
      await page.waitForFunction(`document.querySelectorAll(".output_area .tsloth-plotly .main-svg").length >= 2`, null, { timeout: 30000 });
      const traces = await page.locator(".output_area .tsloth-plotly .main-svg .trace").count();
      assert.ok(traces >= 3, `plotly traces rendered: ${traces}`);
      assert.match(shown, /12\/12/, "the live display's last frame shows the finished run");
      assert.deepEqual(outside, [], "no request left the machine");
      mkdirSync(join(projectRoot(), "test-artifacts"), { recursive: true });
      await page.screenshot({ path: join(projectRoot(), "test-artifacts", "live-notebook.png"), fullPage: true });
    } finally {
      await browser.close();
    }
  });
});
