// Interrupts in both kernelspec modes, control and heartbeat while a cell blocks, restart, shutdown.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { installTestKernelspecs, kernelTestsUnavailable, runKernelScript, scriptReport, type KernelTestEnv } from "../helpers/kernel-env.js";

const skip = kernelTestsUnavailable();

describe("kernel interrupt, restart and shutdown", { skip }, () => {
  let setup: KernelTestEnv;
  before(() => {
    setup = installTestKernelspecs();
  });

  it("exits by itself when its frontend dies without a shutdown_request", async () => {
    const r = await runKernelScript("orphan.py", [], setup.env);
    const pid = Number(/kernel (\d+)/.exec(r.stdout)?.[1]);
    assert.ok(pid > 0, scriptReport(r));
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (let waited = 0; alive() && waited < 5000; waited += 100) await new Promise((res) => setTimeout(res, 100));
    const stillAlive = alive();
    if (stillAlive) process.kill(pid, "SIGKILL");
    assert.equal(stillAlive, false, "the orphaned kernel still runs 5 s after its frontend died");
  });

  for (const mode of ["message", "signal"] as const) {
    it(`interrupts while (true) and a long await with interrupt_mode "${mode}", keeping state`, async () => {
      const name = mode === "message" ? setup.messageKernel : setup.signalKernel;
      const r = await runKernelScript("interrupt.py", [name, mode], setup.env);
      assert.equal(r.code, 0, scriptReport(r));
      // message mode also breaks a loop after the cell's first await (through the socket thread)
      assert.equal(r.passed.length, mode === "message" ? 6 : 5, scriptReport(r));
    });
  }
});
